"""Uploader: one S3 client and one budget, shared by every upload that runs through it."""

from __future__ import annotations

import datetime
import logging
import mimetypes
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.to_thread

from .._core.config import TransferConfig
from .._core.params import RoutedArgs, Routes, route
from .._core.results import UploadResult
from .._s3.calls import S3
from .._s3.fast import Fast
from .._s3.identity import Identity, check_identity
from .._s3.limits import AdaptiveLimiter
from .._s3.start import opened
from . import coordinator, memory, sweeper
from .budget import ByteBudget, Lease
from .events import UploadEvent, UploadEvents
from .job import Job, ProgressCallback
from .many import UploadSummary, upload_many
from .opener import Opener
from .pace import Pacer
from .sources import adapt
from .sweeper import PendingUpload

log = logging.getLogger("asyncup")
_types = {"read": False}  # the system's type files read by mimetypes (``Uploader._read_types``)


class Uploader:
    """Uploads to S3 through one client, under one budget, for as long as it is open.

    The budget is shared by every upload running through the Uploader: at most
    ``config.concurrency`` UploadPart/PutObject requests in flight, and at most
    ``config.buffer_budget`` bytes of part buffers, in total. A web backend keeps one
    Uploader for its lifetime::

        async with asyncup.Uploader(endpoint_url="http://127.0.0.1:9000") as up:
            result = await up.upload(b"hello", "bucket", "greeting.txt")

    Args:
        client: an aiobotocore S3 client owned by the caller; never closed by asyncup.
            Without one, the Uploader creates its own (with ``endpoint_url``,
            ``region_name`` and ``client_config``, a ``botocore.config.Config`` merged over
            asyncup's defaults) and closes it on exit. Its own client is the fast one
            (parts sent from threads and straight from files), whoever it signs as.
        profile, session, aws_access_key_id / aws_secret_access_key / aws_session_token,
            credentials: who the Uploader's own client signs as, boto3's ways (at most
            one): a profile of the AWS config files; an aiobotocore ``AioSession`` (used
            as it is), or a botocore or boto3 ``Session`` (its credentials and region);
            explicit keys; or credentials (botocore's or aiobotocore's, refreshable or
            not, or any object with ``get_frozen_credentials()``: a blocking refresh runs
            in a worker thread). Without any of them, the default credential chain.
        config: the TransferConfig for every upload (default: ``TransferConfig()``).
        verify: TLS certificate verification of the Uploader's own client, as boto3's
            ``verify``: None (the default) verifies against ``AWS_CA_BUNDLE`` or else
            botocore's CA bundle, a path to a PEM file against that CA bundle instead, and
            only ``False`` turns verification off. A ``client`` of your own has its own.
    """

    def __init__(
        self,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        config: TransferConfig | None = None,
        region_name: str | None = None,
        client_config: Any = None,
        verify: bool | str | os.PathLike[str] | None = None,
        profile: str | None = None,
        session: Any = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        credentials: Any = None,
    ) -> None:
        if config is not None and not isinstance(config, TransferConfig):
            raise TypeError(f"config must be a TransferConfig; got {type(config).__name__}")
        self._identity = check_identity(
            client,
            Identity(
                profile=profile,
                session=session,
                access_key=aws_access_key_id,
                secret_key=aws_secret_access_key,
                token=aws_session_token,
                credentials=credentials,
            ),
        )
        self.config = config or TransferConfig()
        self._client = client
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._client_config = client_config
        self._verify = _check_verify(verify, client)
        self._stack: AsyncExitStack | None = None
        self._s3: S3 | None = None
        # Requests in flight: at most config.concurrency, fewer while S3 throttles (AIMD).
        self._requests = AdaptiveLimiter(self.config.concurrency)
        self._limiter = self._requests.slots
        self._budget = ByteBudget(self.config.buffer_budget)
        bandwidth = self.config.max_bandwidth
        self._pacer = None if bandwidth is None else Pacer(bandwidth)
        self._opener = Opener()
        self._types_lock = anyio.Lock()
        self._fast_start = False
        """Set by the CLI: its client waits for a request that needs it (``_s3.start``)."""

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("this Uploader is already open")
        stack = AsyncExitStack()
        client, fast = self._client, None
        if client is None:
            try:
                client, fast = await self._own_client(stack)
            except BaseException:
                await stack.aclose()
                raise
        self._stack = stack
        self._s3 = S3(client, self.config, requests=self._requests, fast=fast)
        if (
            client is not None
            and self.config.checksum_algorithm is None
            and _adds_checksums(client)
        ):
            log.warning(
                "checksum_algorithm=None, but this client's botocore adds CRC32 checksum headers"
                " itself: create it with request_checksum_calculation='when_required' for stores"
                " that refuse them"
            )
        return self

    async def _read_types(self) -> None:
        """A path's ContentType is guessed (``_core.params``) by mimetypes, which reads the
        system's type files first: once per process, in a thread, not on the event loop; the
        uploads that come meanwhile wait for it."""
        async with self._types_lock:
            if not _types["read"]:
                await anyio.to_thread.run_sync(mimetypes.init)
                _types["read"] = True

    async def _own_client(self, stack: AsyncExitStack) -> tuple[Any, Fast | None]:
        """The Uploader's own client, opened; or, on a fast start, none yet and the path
        that opens it when first needed (``_s3.start``)."""

        def opening() -> Any:
            from .._s3.client import open_client  # botocore's client side: when needed

            return stack.enter_async_context(
                open_client(
                    self._endpoint_url,
                    self.config,
                    region_name=self._region_name,
                    client_config=self._client_config,
                    verify=self._verify,
                    identity=self._identity,
                )
            )

        fast_start = self._fast_start and self._identity is None and self._client_config is None
        where = (self._endpoint_url, self._region_name, self._verify, self.config.concurrency)
        return await opened(stack, opening, where if fast_start else None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._s3 = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def client(self) -> Any:
        """The aiobotocore S3 client in use (the caller's, or the Uploader's own)."""
        if self._s3 is None:
            raise RuntimeError("use the Uploader in 'async with' first")
        return self._s3.client

    async def upload(
        self,
        source: object,
        bucket: str,
        key: str,
        *,
        extra_args: Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
        on_event: Callable[[UploadEvent], object] | None = None,
        resume: str | os.PathLike[str] | None = None,
    ) -> UploadResult:
        """Upload ``source`` to ``s3://bucket/key``; see ``asyncup.upload`` for the details.

        ``on_event`` receives an ``UploadEvent`` for each part started and done, each retry,
        and the end; an ``UploadEvents`` given here is closed when the upload ends.
        """
        return await self._upload(
            source, bucket, key, extra_args, None, on_progress, on_event, resume
        )

    async def _upload(
        self,
        source: object,
        bucket: str,
        key: str,
        extra_args: Mapping[str, Any] | None,
        routes: Routes | None,
        on_progress: ProgressCallback | None = None,
        on_event: Callable[[UploadEvent], object] | None = None,
        resume: str | os.PathLike[str] | None = None,
    ) -> UploadResult:
        """``upload``; ``routes``: ``extra_args`` already routed (upload_many routes them
        once for all its objects)."""
        if self._s3 is None:
            raise RuntimeError("use the Uploader in 'async with' before calling upload()")
        check_destination(bucket, key)
        adapted = adapt(source)
        if adapted.path is not None and not _types["read"]:
            await self._read_types()
        if routes is None:  # a path may guess its ContentType
            args = route(extra_args, self.config.checksum_algorithm, path=adapted.path)
        else:
            args = routes.for_path(adapted.path)
        if on_progress is not None and not callable(on_progress):
            raise TypeError("on_progress must be callable")
        if on_event is not None and not callable(on_event):
            raise TypeError("on_event must be callable (an UploadEvents, for instance)")
        resume_path = _check_resume(resume, adapted.path)
        job = self._job(
            bucket,
            key,
            args,
            on_progress=on_progress,
            on_event=on_event,
            resume_path=resume_path,
        )
        try:
            return await coordinator.upload(job, adapted)
        finally:
            if isinstance(on_event, UploadEvents):
                on_event.close()
            if self._budget.idle_after(memory.TRIM_AFTER):  # the end of a burst
                await memory.give_back()

    def _job(self, bucket: str, key: str, args: RoutedArgs, **details: Any) -> Job:
        """A Job under this Uploader's client, budget, request slots and pacer (also for
        ``asyncup.parallel``'s hosts)."""
        if self._s3 is None:
            raise RuntimeError("use the Uploader in 'async with' first")
        return Job(
            s3=self._s3,
            bucket=bucket,
            key=key,
            config=self.config,
            args=args,
            limiter=self._limiter,
            lease=Lease(self._budget),
            pacer=self._pacer,
            opener=self._opener,
            **details,
        )

    async def upload_many(
        self,
        items: Iterable[tuple[object, str]] | AsyncIterable[tuple[object, str]],
        bucket: str,
        *,
        extra_args: Mapping[str, Any] | None = None,
        objects_in_flight: int | None = None,
        stop_on_error: bool = False,
    ) -> UploadSummary:
        """Upload many ``(source, key)`` pairs to ``bucket`` under this Uploader's one budget.

        At most ``objects_in_flight`` objects (default: ``config.concurrency``) are open at
        once; small ones go by PutObject, concurrently. A failed object is recorded in the
        summary's ``errors`` and the others go on; with ``stop_on_error`` the first failure
        cancels the rest (their uploads are aborted) and is raised. Example::

            async with asyncup.Uploader() as up:
                summary = await up.upload_many(((p, p.name) for p in paths), "bucket")
            print(f"{len(summary.results)} objects, {summary.size} bytes, {summary.errors}")
        """
        if self._s3 is None:
            raise RuntimeError("use the Uploader in 'async with' before calling upload_many()")
        in_flight = self.config.concurrency if objects_in_flight is None else objects_in_flight
        if isinstance(in_flight, bool) or not isinstance(in_flight, int) or in_flight < 1:
            raise ValueError(f"objects_in_flight must be an int >= 1; got {in_flight!r}")
        routes = Routes(extra_args, self.config.checksum_algorithm)  # refused up front

        async def one(source: object, key: str) -> UploadResult:
            return await self._upload(source, bucket, key, extra_args, routes)

        return await upload_many(
            one, items, objects_in_flight=in_flight, stop_on_error=stop_on_error
        )

    def list_uploads(self, bucket: str, prefix: str = "") -> AsyncIterator[PendingUpload]:
        """The unfinished multipart uploads under ``s3://bucket/prefix``, page by page.

        Example::

            async for upload in up.list_uploads("bucket", "incoming/"):
                print(upload.initiated, upload.key, upload.upload_id)
        """
        if self._s3 is None:
            raise RuntimeError("use the Uploader in 'async with' before calling list_uploads()")
        return sweeper.list_uploads(self._s3, bucket, prefix)

    async def abort_uploads(
        self,
        bucket: str,
        prefix: str = "",
        *,
        older_than: datetime.timedelta,
        dry_run: bool = False,
    ) -> list[tuple[PendingUpload, Exception | None]]:
        """Abort the uploads under ``s3://bucket/prefix`` initiated more than ``older_than``
        ago, 8 at a time; ``(upload, None)`` for each one gone, ``(upload, error)`` for each
        that could not be aborted (see ``asyncup._pipeline.sweeper.abort_uploads``)::

            outcomes = await up.abort_uploads("bucket", older_than=timedelta(days=1))
            failed = [(u.key, e) for u, e in outcomes if e is not None]
        """
        if self._s3 is None:
            raise RuntimeError("use the Uploader in 'async with' before calling abort_uploads()")
        return await sweeper.abort_uploads(
            self._s3, bucket, prefix, older_than=older_than, dry_run=dry_run
        )


def _adds_checksums(client: Any) -> bool:
    config = getattr(getattr(client, "meta", None), "config", None)
    return getattr(config, "request_checksum_calculation", None) == "when_supported"


async def upload_routed(
    uploader: Uploader,
    routes: Routes,
    source: object,
    bucket: str,
    key: str,
    *,
    on_progress: ProgressCallback | None = None,
    on_event: Callable[[UploadEvent], object] | None = None,
    resume: str | os.PathLike[str] | None = None,
) -> UploadResult:
    """``uploader.upload`` of one of many objects whose ``extra_args`` ``routes`` has routed
    once for all, and once per ContentType guessed (as ``upload_many`` routes them): the
    files of ``asyncup cp``, which would otherwise be routed one by one."""
    return await uploader._upload(source, bucket, key, None, routes, on_progress, on_event, resume)


def _check_resume(resume: object, source_path: str | None) -> str | None:
    if resume is None:
        return None
    if not isinstance(resume, str | os.PathLike):
        raise TypeError(f"resume must be a path (str or os.PathLike); got {type(resume).__name__}")
    if source_path is None:
        raise ValueError(
            "resume= needs a file path as the source: a stream or a file object cannot be"
            " read again after a crash"
        )
    return os.fspath(resume)


def _check_verify(verify: object, client: object) -> bool | str | None:
    """boto3's ``verify``, checked before any request: a CA bundle that is not there would
    otherwise fail only at the first request, with botocore's words."""
    if verify is None:
        return None  # botocore's default chain (AWS_CA_BUNDLE, ca_bundle) stays in charge
    if client is not None:
        raise ValueError("verify= applies to the Uploader's own client; configure your client")
    if isinstance(verify, bool):
        return verify  # True: botocore's own CA bundle, whatever AWS_CA_BUNDLE says
    if not isinstance(verify, str | os.PathLike):
        raise TypeError(f"verify must be None, a bool or a CA bundle path; got {verify!r}")
    path = os.fspath(verify)
    if not os.path.isfile(path):
        raise ValueError(f"verify: no CA bundle file at {path!r}")
    return path


def check_destination(bucket: object, key: object) -> None:
    """Refuse a bucket or key S3 would refuse, before any request."""
    if not isinstance(bucket, str) or not bucket:
        raise ValueError(f"bucket must be a non-empty str; got {bucket!r}")
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty str; got {key!r}")
    if len(key.encode("utf-8")) > 1024:
        raise ValueError("key must be at most 1024 bytes of UTF-8 (S3's limit)")
