"""asyncup.dask's upload_parallel: one multipart upload, its parts sent by Dask workers."""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from .._concurrency.shield import shielded
from .._concurrency.stages import run_stages
from .._core.config import TransferConfig
from .._core.errors import AsyncupError, UploadError
from .._core.handle import ParallelUpload, PartResult
from .._core.results import UploadResult
from .._pipeline.uploader import Uploader
from .._s3.errors import error_code, summarize
from . import protocol
from .dask_bridge import (
    STOP_POLL,
    Bridge,
    Settings,
    Stopped,
    unless_stopped,
    worker_address,
    worker_uploader,
)
from .manifest import Manifest, resume
from .spread import batches, parts_per_batch

log = logging.getLogger("asyncup")

BATCH_BYTES = 256 * 1024 * 1024  # a task's share of an upload, by default: ~1-3 s of a NIC


@dataclass(frozen=True, slots=True, kw_only=True)
class _BatchOutcome:
    worker: str
    results: tuple[PartResult, ...] = ()
    failed: dict[int, str] = dataclasses.field(default_factory=dict)
    fatal: bool = False
    code: str | None = None


async def _send_batch(
    settings: Settings, handle: ParallelUpload, numbers: tuple[int, ...], stop: str
) -> _BatchOutcome:
    """A Dask task: send parts ``numbers`` from this worker. Never raises for S3's or the
    file's sake: what failed comes back in the outcome (an exception must pickle)."""
    worker = worker_address()
    try:
        key = settings.sse_customer_key()
        up = await worker_uploader(settings)

        async def send() -> list[PartResult]:
            return await protocol.upload_parts(
                up, handle, numbers, sse_customer_key=key, sender=worker
            )

        results = await unless_stopped(stop, send)
    except protocol.PartsError as exc:
        return _BatchOutcome(
            worker=worker,
            results=tuple(exc.results),
            failed=exc.failed,
            fatal=exc.fatal,
            code=exc.code,
        )
    except (AsyncupError, ValueError, OSError, Stopped) as exc:
        why = "stopped by the coordinator" if isinstance(exc, Stopped) else summarize(exc)
        failed = dict.fromkeys(numbers, why)
        return _BatchOutcome(worker=worker, failed=failed, fatal=True, code=error_code(exc))
    return _BatchOutcome(worker=worker, results=tuple(results))


async def upload_parallel(
    client: Any,
    path: str | os.PathLike[str],
    bucket: str,
    key: str,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    config: TransferConfig | None = None,
    verify: bool | str | None = None,
    extra_args: Mapping[str, Any] | None = None,
    sse_customer_key_env: str | None = None,
    manifest: str | os.PathLike[str] | None = None,
    parts_per_task: int | None = None,
    attempts: int = 2,
    on_part: Callable[[PartResult], object] | None = None,
) -> UploadResult:
    """Upload the file at ``path`` (the same path on every worker) to ``s3://bucket/key``
    as one multipart upload whose parts are sent by the workers of ``client``'s cluster.

    ``endpoint_url``, ``region_name``, ``config`` and ``verify`` make the S3 client of the
    coordinator and of every worker; credentials come from each host's own chain. Each task
    sends ``parts_per_task`` parts (default: about 256 MiB' worth), ``config.concurrency``
    at a time; parts that fail are sent again on another worker, up to ``attempts`` tries.
    ``on_part`` sees each part acknowledged (its ``sender`` is the worker's address).
    Under SSE-C (``extra_args={"SSECustomerKey": ...}``, on the coordinator) every worker
    reads the key from its environment variable ``sse_customer_key_env``.

    With ``manifest=PATH`` the handle and each part acknowledged are kept in a file: a
    failure or cancellation keeps the upload (``UploadError.resume_path``), and the same
    call again, from any coordinator, sends only what is missing. Without one, a failure or
    cancellation stops the senders and aborts the upload. Example::

        async with distributed.Client(asynchronous=True) as client:
            result = await asyncup.dask.upload_parallel(
                client, "/shared/big.bin", "bucket", "big.bin", manifest="/shared/big.manifest"
            )
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1; got {attempts}")
    local_key = coordinator_key(extra_args, sse_customer_key_env)
    settings = Settings(
        endpoint_url=endpoint_url,
        region_name=region_name,
        config=config or TransferConfig(),
        verify=verify,
        sse_customer_key_env=sse_customer_key_env,
    )
    async with settings.uploader() as up:
        handle, kept, todo, journal = await _start(up, path, bucket, key, extra_args, manifest)
        run = _PartsRun(Bridge(client), settings, handle, journal, on_part, attempts)
        run.results.extend(kept)
        per_task = parts_per_task or parts_per_batch(handle.plan, BATCH_BYTES)
        try:
            await run.send(todo, per_task)
            result = await _complete(up, run, per_task, local_key)
        except BaseException as exc:
            await _give_up(up, run, exc)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await run.bridge.clear_stop(run.stop)
        if journal is not None:
            await journal.discard()
        return result


def coordinator_key(extra_args: Mapping[str, Any] | None, env: str | None) -> Any:
    key = (extra_args or {}).get("SSECustomerKey")
    if key is not None and env is None:
        raise ValueError(
            "SSE-C: the workers need the key too, and it never travels with a task; set"
            " sse_customer_key_env to the environment variable that holds it on every worker"
        )
    return key


async def _start(
    up: Uploader,
    path: str | os.PathLike[str],
    bucket: str,
    key: str,
    extra_args: Mapping[str, Any] | None,
    manifest: str | os.PathLike[str] | None,
) -> tuple[ParallelUpload, list[PartResult], tuple[int, ...], Manifest | None]:
    """A new upload, or the one a manifest records (a coordinator taking over)."""
    sse_key = (extra_args or {}).get("SSECustomerKey")
    if manifest is not None:
        try:
            resumed = await resume(up, manifest, sse_customer_key=sse_key)
        except UploadError as exc:
            if exc.code != "NoSuchUpload":
                raise
            resumed = None  # aborted by someone: start again
        if resumed is not None:
            handle = resumed.manifest.handle
            if (handle.bucket, handle.key, handle.path) != (bucket, key, os.fspath(path)):
                raise ValueError(f"the manifest {manifest} is for another upload")
            return handle, resumed.results, resumed.todo, resumed.manifest
    handle = await protocol.begin(up, path, bucket, key, extra_args=extra_args)
    journal = None
    if manifest is not None:
        try:
            journal = await Manifest.create(manifest, handle)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await protocol.abort(up, handle)
            raise
    return handle, [], tuple(range(1, handle.part_count + 1)), journal


async def _complete(up: Uploader, run: _PartsRun, per_task: int, key: Any) -> UploadResult:
    """Complete; parts S3 turns out not to hold as reported are sent again (twice at most)."""
    for _ in range(2):
        try:
            return await protocol.complete(up, run.handle, run.results, sse_customer_key=key)
        except protocol.MissingPartsError as exc:
            log.warning("%s; sending them again", exc)
            await run.send(exc.part_numbers, per_task)
    return await protocol.complete(up, run.handle, run.results, sse_customer_key=key)


async def _give_up(up: Uploader, run: _PartsRun, exc: BaseException) -> None:
    """Stop the senders, then abort the upload (or keep it, with a manifest). Runs to its
    end even when cancelled (bounded by ``abort_timeout``)."""

    async def clean_up() -> bool | None:
        await run.halt(min(up.config.abort_timeout, 2 * STOP_POLL + 1))
        if run.journal is not None:
            return None
        return await protocol.abort(up, run.handle)

    aborted, _ = await shielded(clean_up, 2 * up.config.abort_timeout + 1)
    if isinstance(exc, UploadError):
        if run.journal is not None:
            exc.resume_path = run.journal.path
        elif exc.abort_succeeded is None:
            exc.abort_succeeded = aborted


class _PartsRun:
    """The batches of one upload in flight on the cluster, and the results they brought."""

    def __init__(
        self,
        bridge: Bridge,
        settings: Settings,
        handle: ParallelUpload,
        journal: Manifest | None,
        on_part: Callable[[PartResult], object] | None,
        attempts: int,
    ) -> None:
        self.bridge = bridge
        self.settings = settings
        self.handle = handle
        self.journal = journal
        self.on_part = on_part
        self.attempts = attempts
        self.results: list[PartResult] = []
        self.futures: set[Any] = set()
        self.stop = f"asyncup-stop-{uuid.uuid4().hex}"

    async def send(self, numbers: Iterable[int], per_task: int) -> None:
        runs = batches(sorted(numbers), per_task)
        await run_stages([partial(self._batch, numbers) for numbers in runs])

    async def _batch(self, numbers: tuple[int, ...]) -> None:
        tried: set[str] = set()
        todo, why, code = numbers, "", None
        for attempt in range(1, self.attempts + 1):
            outcome = await self._attempt(todo, tried, attempt)
            if isinstance(outcome, str):
                why = outcome  # the task died (its worker did, too often) or raised
                continue
            tried.add(outcome.worker)
            await self._record(outcome.results)
            if not outcome.failed:
                return
            todo = tuple(sorted(outcome.failed))
            why, code = outcome.failed[todo[0]], outcome.code
            if outcome.fatal:
                break
        raise UploadError(
            f"parts {list(todo)[:10]} failed on {len(tried) or 'no'} worker(s): {why}",
            bucket=self.handle.bucket,
            key=self.handle.key,
            upload_id=self.handle.upload_id,
            part_number=todo[0],
            code=code,
        )

    async def _attempt(
        self, numbers: tuple[int, ...], tried: set[str], attempt: int
    ) -> _BatchOutcome | str:
        others = None
        if tried:  # the parts failed there: somewhere else, if the cluster has somewhere
            others = [w for w in await self.bridge.slots() if w not in tried] or None
        name = f"asyncup-parts-{self.handle.upload_id[:12]}-{numbers[0]}-{numbers[-1]}"
        where: dict[str, Any] = {}
        if others is not None:  # preferred, not required: the others may die too
            where = {"workers": others, "allow_other_workers": True}
        future = self.bridge.submit(
            _send_batch,
            self.settings,
            self.handle,
            numbers,
            self.stop,
            key=f"{name}-{attempt}-{uuid.uuid4().hex[:8]}",
            **where,
        )
        # Held until the task has ended: a future let go is released on the scheduler, which
        # would free its slot for the next batch while the task itself runs on.
        self.futures.add(future)
        try:
            outcome: _BatchOutcome = await self.bridge.result(future)
        except Exception as exc:
            self.futures.discard(future)
            return f"the task failed: {summarize(exc)}"
        self.futures.discard(future)
        return outcome

    async def _record(self, results: Iterable[PartResult]) -> None:
        results = list(results)
        self.results.extend(results)
        if self.journal is not None:
            await self.journal.record(results)
        if self.on_part is not None:
            for result in results:
                self.on_part(result)

    async def halt(self, limit: float) -> None:
        """Stop every task of this run: the signal first (running tasks see it within
        ``STOP_POLL`` and drop what they are sending; tasks that start later send nothing),
        then wait for them, at most ``limit`` seconds, then cancel what is left."""
        await self.bridge.set_stop(self.stop)
        futures = list(self.futures)
        with anyio.move_on_after(limit):
            for future in futures:
                try:
                    await self.bridge.result(future)
                except Exception:
                    log.debug("a stopped task ended with an error", exc_info=True)
        await self.bridge.cancel([f for f in futures if not f.done()])
