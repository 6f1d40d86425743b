"""asyncup.dask's upload_many: many files, in batches, from Dask workers, under one
request rate."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from distributed import get_worker

from .._core.config import TransferConfig
from .._core.params import SSE_C_ARGS
from .._core.results import UploadResult
from .._pipeline.many import upload_many as _upload_each
from .._pipeline.pace import Pacer
from .._s3.errors import summarize
from .dask_bridge import (
    Bridge,
    Settings,
    Stopped,
    unless_stopped,
    worker_address,
    worker_uploader,
)
from .dask_parts import coordinator_key
from .spread import requests_for, split_rate

FILES_PER_TASK = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSummary:
    """What ``upload_many`` did: objects and bytes uploaded, one ``(key, error)`` per object
    that failed, the workers that took part, and the time it took."""

    objects: int
    size: int
    errors: tuple[tuple[str, str], ...]
    workers: frozenset[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True, kw_only=True)
class _FilesOutcome:
    worker: str
    objects: int
    size: int
    errors: tuple[tuple[str, str], ...]


async def _send_files(
    settings: Settings,
    bucket: str,
    items: tuple[tuple[str, str], ...],
    extra_args: dict[str, Any],
    rate: float | None,
    stop: str,
) -> _FilesOutcome:
    """A Dask task: upload a batch of ``(path, key)`` files from this worker, at most
    ``rate`` requests per second."""
    worker = worker_address()
    config = settings.config
    extra = dict(extra_args)
    key = settings.sse_customer_key()
    if key is not None:
        extra["SSECustomerKey"] = key
    pacer = None if rate is None else _worker_pacer(stop, rate)

    up = await worker_uploader(settings)

    async def one(source: object, key: str) -> UploadResult:
        if pacer is not None:
            assert isinstance(source, str)
            size = (await anyio.to_thread.run_sync(os.stat, source)).st_size
            cost = requests_for(size, config.multipart_threshold, config.part_size)
            await pacer.take(1000 * cost)
        return await up.upload(source, bucket, key, extra_args=extra)

    async def send() -> Any:
        return await _upload_each(
            one, items, objects_in_flight=config.concurrency, stop_on_error=False
        )

    try:
        summary = await unless_stopped(stop, send)
    except Stopped:
        errors = tuple((k, "stopped by the coordinator") for _, k in items)
        return _FilesOutcome(worker=worker, objects=0, size=0, errors=errors)
    errors = tuple((k, str(exc)) for k, exc in summary.errors)
    return _FilesOutcome(
        worker=worker, objects=len(summary.results), size=summary.size, errors=errors
    )


_PACERS: dict[str, Pacer] = {}


def _worker_pacer(run: str, rate_per_slot: float) -> Pacer:
    """The one pacer of this worker for run ``run``: the tasks it runs one after another (or
    at once, one per thread) share it, so a new task brings no new burst. Its rate is the
    worker's share, one slot's times its threads. The Pacer counts units of a thousandth of
    a request, so that fractional rates stay exact."""
    worker = get_worker()
    name = f"{run}@{worker.address}"
    pacer = _PACERS.get(name)
    if pacer is None:
        while len(_PACERS) >= 64:  # runs long over
            del _PACERS[next(iter(_PACERS))]
        share = rate_per_slot * max(1, worker.state.nthreads)
        pacer = _PACERS[name] = Pacer(max(1, round(share * 1000)))
    return pacer


async def upload_many(
    client: Any,
    paths_or_prefix: str | os.PathLike[str] | Iterable[str | os.PathLike[str] | tuple[str, str]],
    bucket: str,
    prefix: str = "",
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    config: TransferConfig | None = None,
    verify: bool | str | None = None,
    extra_args: Mapping[str, Any] | None = None,
    sse_customer_key_env: str | None = None,
    files_per_task: int = FILES_PER_TASK,
    requests_per_second: float | None = None,
    attempts: int = 2,
) -> ClusterSummary:
    """Upload many files (on a filesystem every worker sees) to ``s3://bucket/prefix...``
    from the workers of ``client``'s cluster, ``files_per_task`` files per task.

    ``paths_or_prefix`` is a directory (every file below it, keyed by its path relative to
    it) or paths (keyed by their file name) or ``(path, key)`` pairs; ``prefix`` goes before
    every key. ``requests_per_second`` is a budget for the whole cluster (S3 takes about
    3,500 writes a second per prefix): each task gets its share of it as split among the
    task slots of the cluster, so together they stay within it however the tasks land. A
    file that fails is reported in ``errors`` and the others go on; a task that fails as a
    whole is run again on another worker, up to ``attempts`` tries. Example::

        summary = await asyncup.dask.upload_many(client, "/shared/photos", "bucket",
                                                 "photos/", requests_per_second=3000)
    """
    if files_per_task < 1 or attempts < 1:
        raise ValueError("files_per_task and attempts must be >= 1")
    coordinator_key(extra_args, sse_customer_key_env)
    settings = Settings(
        endpoint_url=endpoint_url,
        region_name=region_name,
        config=config or TransferConfig(),
        verify=verify,
        sse_customer_key_env=sse_customer_key_env,
    )
    travelling = {k: v for k, v in (extra_args or {}).items() if k not in SSE_C_ARGS}
    bridge = Bridge(client)
    slots = sum((await bridge.slots()).values()) or 1
    rate = None if requests_per_second is None else split_rate(requests_per_second, slots)
    started = time.monotonic()
    run = _FilesRun(bridge, settings, bucket, travelling, rate, attempts)
    try:
        await run.send(_files(paths_or_prefix, prefix), files_per_task, 2 * slots)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await bridge.set_stop(run.stop)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await bridge.clear_stop(run.stop)
    return ClusterSummary(
        objects=run.objects,
        size=run.size,
        errors=tuple(run.errors),
        workers=frozenset(run.workers),
        seconds=time.monotonic() - started,
    )


class _FilesRun:
    def __init__(
        self,
        bridge: Bridge,
        settings: Settings,
        bucket: str,
        extra_args: dict[str, Any],
        rate: float | None,
        attempts: int,
    ) -> None:
        self.bridge = bridge
        self.task_args = (settings, bucket)
        self.extra_args = extra_args
        self.rate = rate
        self.attempts = attempts
        self.stop = f"asyncup-stop-{uuid.uuid4().hex}"
        self.objects = 0
        self.size = 0
        self.errors: list[tuple[str, str]] = []
        self.workers: set[str] = set()

    async def send(
        self, items: AsyncIterator[tuple[str, str]], per_task: int, in_flight: int
    ) -> None:
        """Batches of ``per_task`` files, at most ``in_flight`` tasks submitted at a time
        (the rest of a million files waits here, not on the scheduler)."""
        slots = anyio.Semaphore(in_flight)
        async with anyio.create_task_group() as group:
            batch: list[tuple[str, str]] = []
            async for item in items:
                batch.append(item)
                if len(batch) == per_task:
                    await slots.acquire()
                    group.start_soon(self._batch, tuple(batch), slots)
                    batch = []
            if batch:
                await slots.acquire()
                group.start_soon(self._batch, tuple(batch), slots)

    async def _batch(self, items: tuple[tuple[str, str], ...], slots: anyio.Semaphore) -> None:
        try:
            why = ""
            for attempt in range(1, self.attempts + 1):
                future = self.bridge.submit(
                    _send_files,
                    *self.task_args,
                    items,
                    self.extra_args,
                    self.rate,
                    self.stop,
                    key=f"asyncup-files-{attempt}-{uuid.uuid4().hex}",
                )
                try:
                    outcome: _FilesOutcome = await self.bridge.result(future)
                except Exception as exc:
                    why = f"the task failed: {summarize(exc)}"
                    continue
                self.objects += outcome.objects
                self.size += outcome.size
                self.errors.extend(outcome.errors)
                self.workers.add(outcome.worker)
                return
            self.errors.extend((key, why) for _, key in items)
        finally:
            slots.release()


async def _files(
    paths_or_prefix: str | os.PathLike[str] | Iterable[str | os.PathLike[str] | tuple[str, str]],
    prefix: str,
) -> AsyncIterator[tuple[str, str]]:
    """``(path, key)`` for each file: a directory walked (in threads), or the items given."""
    if isinstance(paths_or_prefix, str | os.PathLike):
        root = os.fspath(paths_or_prefix)
        if not await anyio.to_thread.run_sync(os.path.isdir, root):
            raise ValueError(f"{root} is not a directory (give a list for single files)")
        directories = [root]
        while directories:
            files, subdirectories = await anyio.to_thread.run_sync(_list, directories.pop(), root)
            directories.extend(subdirectories)
            for path, relative in files:
                yield path, prefix + relative
        return
    for item in paths_or_prefix:
        if isinstance(item, tuple):
            yield os.fspath(item[0]), prefix + item[1]
        else:
            path = os.fspath(item)
            yield path, prefix + os.path.basename(path)


def _list(directory: str, root: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The files of ``directory`` (with their paths relative to ``root``, as keys) and its
    subdirectories; symlinks to directories are not followed (no loops)."""
    files: list[tuple[str, str]] = []
    subdirectories: list[str] = []
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                subdirectories.append(entry.path)
            elif entry.is_file():
                files.append((entry.path, os.path.relpath(entry.path, root).replace(os.sep, "/")))
    return files, sorted(subdirectories, reverse=True)
