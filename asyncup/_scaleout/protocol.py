"""One multipart upload fed by many hosts, on no engine in particular.

S3 takes UploadPart for one UploadId from any host; one coordinator completes. This module
is that protocol, for a file every host can read at the same path (a shared filesystem),
with asyncup's own client, retries and checksums on every host::

    coordinator   handle = await begin(up, path, bucket, key)      CreateMultipartUpload
                  manifest = await Manifest.create(PATH, handle)   (optional: crash-safe)
    any worker    results = await upload_parts(up, handle, [5, 6, 7, 8])
                      each part: checksum read from its file range in a thread, then
                      UploadPart with the range streamed in slices (never held whole)
    coordinator   await manifest.record(results)
                  result = await complete(up, handle, all_results)
                      ListParts (every page) -> for each part the result S3 kept ->
                      sizes and checksums against the plan -> CompleteMultipartUpload
               or await abort(up, handle)      Abort until ListParts says NoSuchUpload

The handle (``ParallelUpload``) pickles and serializes to JSON; credentials and SSE-C keys
never travel in it (see ``asyncup._core.handle``). ``up`` is an open ``asyncup.Uploader`` on each
host. Engines sit on top: ``asyncup.dask`` schedules batches of parts on Dask workers; a Ray
adapter would call the same four functions from its tasks.

Example (one process standing in for many)::

    async with asyncup.Uploader() as up:
        handle = await parallel.begin(up, "/shared/big.bin", "bucket", "big.bin")
        numbers = list(range(1, handle.part_count + 1))
        halves = [numbers[0::2], numbers[1::2]]          # each half to another host
        results = [r for half in halves for r in await parallel.upload_parts(up, handle, half)]
        result = await parallel.complete(up, handle, results)
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from .._core.errors import ShortSourceError, SourceChangedError, SourceSizeError, UploadError
from .._core.handle import HANDLE_ARGS, ParallelUpload, PartResult
from .._core.params import EVERY_REQUEST_ARGS, RoutedArgs, route
from .._core.plan import Part
from .._core.results import UploadResult
from .._core.verify import CompletedPart
from .._pipeline import integrity, multipart
from .._pipeline.failures import failure, root_cause
from .._pipeline.integrity import range_md5
from .._pipeline.job import Job
from .._pipeline.outcome import completed, completed_meanwhile
from .._pipeline.resume import list_parts
from .._pipeline.uploader import Uploader, check_destination
from .._pipeline.worker import send_part
from .._s3.errors import error_code, summarize
from .._s3.ranges import RangeBody, digest_range, stream_ranges
from .hosts import check_source, create_upload, host_args, host_job, stat_file
from .spread import checked_numbers, plan, reconcile

log = logging.getLogger("asyncup")

FATAL_CODES = frozenset({"NoSuchUpload", "NoSuchBucket"})


class PartsError(UploadError):
    """Some parts of an ``upload_parts`` call failed for good.

    ``results`` are the parts that went (they count: pass them to ``complete``), ``failed``
    maps each other part number to why; ``fatal`` says the upload cannot go on (it is gone,
    or the file changed), so sending the parts again elsewhere is pointless.
    """

    def __init__(
        self,
        message: str,
        *,
        results: list[PartResult],
        failed: dict[int, str],
        fatal: bool,
        **details: Any,
    ) -> None:
        super().__init__(message, **details)
        self.results = results
        self.failed = failed
        self.fatal = fatal


class MissingPartsError(UploadError):
    """``complete`` found parts S3 does not hold as any result reported them: send
    ``part_numbers`` (again) and complete with all the results."""

    def __init__(self, message: str, *, part_numbers: tuple[int, ...], **details: Any) -> None:
        super().__init__(message, **details)
        self.part_numbers = part_numbers


async def begin(
    up: Uploader,
    path: str | os.PathLike[str],
    bucket: str,
    key: str,
    *,
    extra_args: Mapping[str, Any] | None = None,
    part_size: int | None = None,
) -> ParallelUpload:
    """Create the multipart upload of the file at ``path`` and return its handle.

    The plan cuts the file into parts of ``part_size`` (default: the Uploader's), grown as
    needed to stay within 10,000 parts; a file over 48.8 TiB is refused before any request.
    ``extra_args`` as for ``asyncup.upload``. Cancelled while Create is in flight, the
    upload is aborted once its id is known.
    """
    check_destination(bucket, key)
    path = os.fspath(path)
    size, mtime_ns = await anyio.to_thread.run_sync(stat_file, path)
    cut = plan(size, part_size or up.config.part_size)
    args = route(extra_args, up.config.checksum_algorithm, path=path)
    job = host_job(up, bucket, key, None, args)
    upload_id = await create_upload(up, job)
    handle = ParallelUpload(
        bucket=bucket,
        key=key,
        upload_id=upload_id,
        path=path,
        size=size,
        mtime_ns=mtime_ns,
        part_size=cut.part_size,
        part_count=cut.count,
        checksum_algorithm=args.checksum_algorithm,
        checksum_type=args.checksum_type,
        request_args=tuple(sorted((k, v) for k, v in args.complete.items() if k in HANDLE_ARGS)),
        sse_customer_key_md5=args.part.get("SSECustomerKeyMD5"),
    )
    return handle


async def upload_parts(
    up: Uploader,
    handle: ParallelUpload,
    part_numbers: Iterable[int],
    *,
    sse_customer_key: str | bytes | None = None,
    sender: str | None = None,
) -> list[PartResult]:
    """Send parts ``part_numbers`` of ``handle``'s upload from this host; their results in
    part order.

    Up to ``up.config.concurrency`` parts go at once, each through the Uploader's request
    slots, retries and bandwidth cap. A part's checksum is computed from its file range in a
    worker thread, then the range is streamed in 1 MiB slices read in threads: memory stays
    at a few MiB per part in flight whatever the part size, and the event loop never reads
    or hashes. The file must be as the handle says (size, mtime), else
    ``SourceChangedError`` before any request. Under SSE-C the key comes from
    ``sse_customer_key`` or this host's ``ASYNCUP_SSE_CUSTOMER_KEY``, and must be the one the
    upload was created with. Parts that fail for good raise ``PartsError`` once the others
    are done (at once when the upload is gone or the file changed); ``sender`` labels the
    results (default ``host:pid``).
    """
    numbers = checked_numbers(part_numbers, handle.part_count)
    job = host_job(
        up, handle.bucket, handle.key, handle.upload_id, host_args(handle, sse_customer_key)
    )
    await check_source(job, handle)
    job.parts = handle.part_count
    await integrity.learn(job)
    stream_ranges(job.s3.client)
    label = sender or f"{socket.gethostname()}:{os.getpid()}"
    results: dict[int, PartResult] = {}
    failures: dict[int, Exception] = {}
    pending = iter(numbers)

    async def send_parts(group: TaskGroup) -> None:
        for number in pending:
            try:
                completed = await _send_part(job, handle.path, handle.part(number))
            except Exception as exc:
                failures[number] = exc
                if _is_fatal(exc):
                    group.cancel_scope.cancel()
                continue
            results[number] = PartResult.of(completed, label)

    async with anyio.create_task_group() as group:
        for _ in range(min(up.config.concurrency, len(numbers))):
            group.start_soon(send_parts, group)
    if failures:
        raise _parts_error(job, numbers, results, failures)
    return [results[number] for number in numbers]


async def complete(
    up: Uploader,
    handle: ParallelUpload,
    results: Iterable[PartResult],
    *,
    sse_customer_key: str | bytes | None = None,
) -> UploadResult:
    """Complete the upload with the parts S3 holds, once each is checked against the plan.

    ListParts (every page) says which bytes S3 kept for each part: the last writer's when a
    part was sent twice, so the result with that ETag is the one listed in Complete. Every
    planned part must be held at its planned size as a result reported it (else
    ``MissingPartsError``: send those parts and call again), and results for one part must
    agree on its checksum (else ``SourceChangedError``: the file changed under the
    senders). The object's checksum (or ETag) is then checked against the parts'. An
    upload found gone whose object is already this one (completed by a coordinator that
    died before it could say so) is accepted. Nothing is aborted here on failure.
    """
    results = list(results)
    job = host_job(
        up, handle.bucket, handle.key, handle.upload_id, host_args(handle, sse_customer_key)
    )
    try:
        listed = await list_parts(job)
    except Exception as exc:
        if error_code(exc) == "NoSuchUpload":
            found = await _completed_earlier(job, handle, results)
            if found is not None:
                return found
        raise failure(job, exc) from root_cause(exc)
    reconciled = reconcile(handle.plan, results, listed)
    divergent, missing = reconciled.divergent, reconciled.missing
    where: dict[str, Any] = {
        "bucket": handle.bucket,
        "key": handle.key,
        "upload_id": handle.upload_id,
    }
    if divergent:
        raise SourceChangedError(
            f"parts {list(divergent)[:10]} were sent with different bytes by different"
            f" senders: {handle.path} changed while the upload ran",
            part_number=divergent[0],
            **where,
        )
    if missing:
        raise MissingPartsError(
            f"S3 does not hold parts {list(missing)[:10]} ({len(missing)} in all) as any"
            " result reported them",
            part_numbers=missing,
            part_number=missing[0],
            **where,
        )
    job.completed = {number: r.completed() for number, r in reconciled.chosen.items()}
    try:
        response = await multipart.complete(job)
    except Exception as exc:
        raise failure(job, exc) from root_cause(exc)
    return completed(job, response)


async def abort(up: Uploader, handle: ParallelUpload) -> bool:
    """Abort the upload, again until ListParts answers NoSuchUpload (parts in flight may
    land after an abort: stop the senders first). True once it is confirmed gone."""
    control = {k: v for k, v in handle.request_args if k in EVERY_REQUEST_ARGS}
    args = RoutedArgs(control=control, part=dict(control), complete=dict(control))
    return await multipart.abort(host_job(up, handle.bucket, handle.key, handle.upload_id, args))


async def _send_part(job: Job, path: str, part: Part) -> CompletedPart:
    algorithm = job.args.checksum_algorithm
    digest = await digest_range(path, part.offset, part.length, algorithm, md5=job.wants_md5)

    changed = f"{path} changed while part {part.number} was sent"
    rehash = range_md5(
        path, part.offset, part.length, digest, algorithm,
        lambda: SourceSizeError(changed, part.number),
    )  # fmt: skip

    with RangeBody(path, part.offset, part.length) as body:
        return await send_part(job, part.number, body, part.length, digest, rehash)


def _is_fatal(exc: BaseException) -> bool:
    changed = ShortSourceError | SourceChangedError | SourceSizeError
    return isinstance(exc, changed) or error_code(exc) in FATAL_CODES


def _parts_error(
    job: Job,
    numbers: tuple[int, ...],
    results: dict[int, PartResult],
    failures: dict[int, Exception],
) -> PartsError:
    first = min(failures)
    cause = failures[first]
    fatal = any(_is_fatal(exc) for exc in failures.values())
    failed = {number: summarize(exc) for number, exc in failures.items()}
    for number in numbers:
        if number not in results and number not in failed:
            failed[number] = "not sent: the upload could not go on"
    error = PartsError(
        f"{len(failed)} of {len(numbers)} parts failed; part {first}: {summarize(cause)}",
        results=[results[n] for n in sorted(results)],
        failed=dict(sorted(failed.items())),
        fatal=fatal,
        bucket=job.bucket,
        key=job.key,
        upload_id=job.upload_id,
        part_number=first,
        code=error_code(cause),
    )
    error.__cause__ = cause
    return error


async def _completed_earlier(
    job: Job, handle: ParallelUpload, results: list[PartResult]
) -> UploadResult | None:
    """The upload is gone: if every part has a result, the object at the key may be this
    upload, completed by a coordinator whose answer was lost. Its ETag or checksum says."""
    latest = {result.number: result for result in results}
    if set(latest) != set(range(1, handle.part_count + 1)):
        return None
    job.completed = {number: result.completed() for number, result in latest.items()}
    found = await completed_meanwhile(job)
    return None if found is None else completed(job, found)
