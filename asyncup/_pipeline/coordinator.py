"""The coordinator: decides single PutObject or multipart, runs the pipeline, cleans up.

    open source -> size known?  -- below threshold --> PutObject
                   size unknown -> read up to threshold -- ended below it --> PutObject
    CreateMultipartUpload -> [producer -> queue -> workers] -> CompleteMultipartUpload
                          \\-- any failure or cancellation --> AbortMultipartUpload (shielded)

With ``resume=PATH`` (a file source) the upload keeps a journal (``_journal``): it starts
from the parts already sent (``_resume``), and a failure or cancellation keeps the multipart
upload for the next attempt instead of aborting it, unless the file itself changed.

The pipeline's stages run under ``_tasks.run_stages``: the first to fail stops the others,
so the caller gets one ``UploadError`` (its ``__cause__`` the original error) and never an
ExceptionGroup. Cancellation is never caught for good: the upload is aborted under
a shield, bounded by ``abort_timeout``, and the cancellation goes on.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from .._concurrency.shield import shielded
from .._concurrency.stages import run_stages
from .._core.checksums import PartDigest
from .._core.errors import IntegrityError, SourceChangedError, UploadError
from .._core.plan import PartPlan, plan_known_size, use_multipart
from .._core.results import UploadResult
from .._core.retry import CORRUPTION_CODES, Failure
from .._core.verify import (
    CompletedPart,
    Verified,
    check_write,
    complete_params,
    digest_params,
    expected_object,
)
from .._s3.client import (
    BadResponseError,
    Response,
    describe,
    error_code,
    sends_from_files,
    summarize,
)
from .._s3.ranges import stream_ranges
from .budget import Buffer
from .job import Job, QueuedPart
from .journal import Header, Journal, Origin, discard, load
from .producer import (
    SourceSizeError,
    check_file_end,
    produce_planned,
    produce_stream,
    read_stream_head,
)
from .resume import StaleSourceError, check_journal, keepable, list_parts, missing, verify_kept
from .sources import PathSource, Source
from .sweeper import abort_twins
from .worker import PartError, run_worker

log = logging.getLogger("asyncup")

Producer = Callable[[MemoryObjectSendStream[QueuedPart]], Awaitable[None]]


async def upload(job: Job, source: Source) -> UploadResult:
    try:
        return await _upload(job, source)
    finally:
        job.emit("done")
        try:
            with anyio.move_on_after(job.config.abort_timeout, shield=True):
                await source.aclose()
        finally:
            job.lease.release_all()


async def _upload(job: Job, source: Source) -> UploadResult:
    config = job.config
    try:
        await source.open()
    except Exception as exc:
        raise _failure(job, exc) from exc
    size = job.total = source.size
    # asyncup's own clients send bodies as they are given: a part buffer is made, pages and
    # all, off the event loop, and a file's parts are sent from the file.
    own = job.mapped_buffers = sends_from_files(job.s3.client)
    if size is not None:
        if not use_multipart(size, config.multipart_threshold):
            return await _put_object(job, source, size)
        if isinstance(source, PathSource) and source.regular and own:
            # Parts are sent from the file itself, none held in memory (sendfile over HTTP).
            stream_ranges(job.s3.client)
            job.in_place = source
        if job.resume_path is not None:
            assert isinstance(source, PathSource)
            return await _resumable(job, source, size)
        plan = plan_known_size(size, config.part_size)  # may refuse: before any request
        return await _multipart(job, lambda send: produce_planned(job, source, plan, send))

    try:
        head, ended = await read_stream_head(job, source)
    except Exception as exc:
        raise _failure(job, exc) from exc
    size = sum(part.length for part in head)
    if ended and not use_multipart(size, config.multipart_threshold):
        body = head[0].body if len(head) == 1 else bytearray().join(p.body for p in head)
        return await _put_body(job, body)
    return await _multipart(job, lambda send: produce_stream(job, source, head, ended, send))


async def _put_object(job: Job, source: Source, size: int) -> UploadResult:
    try:
        body = await job.read_object(source.readinto, size)
        if body is None:
            raise SourceSizeError(
                f"source did not hold the {size} bytes expected (did it change while being read?)",
                None,
            )
    except Exception as exc:
        raise _failure(job, exc) from exc
    return await _put_body(job, body)


async def _put_body(job: Job, body: Buffer) -> UploadResult:
    try:
        digest = await job.digest(body)
        params: dict[str, Any] = {
            "Bucket": job.bucket,
            "Key": job.key,
            "Body": body,
            "ContentLength": len(body),
            **digest_params(job.args, digest),
            **job.args.put,
        }
        verified = Verified()

        def check(response: Response) -> None:
            nonlocal verified
            verified = check_write(job.args, response, digest, "the object")

        retries = _Retries(job.retried(1))
        job.emit("part_started", part_number=1)
        try:
            response = await job.s3.call(
                "put_object",
                params,
                limiter=job.limiter,
                check=check,
                pace=job.pace(len(body)),
                on_retry=retries,
            )
        except Exception as exc:
            if not _may_have_landed(retries.count > 0, exc):
                raise
            found = await _ours_meanwhile(job, "PutObject", partial(_put_matches, job, digest))
            if found is None:
                job.unconfirmed = "PutObject"
                raise
            response, verified = found
    except Exception as exc:
        raise _failure(job, exc) from exc
    await job.progress(len(body), 1)
    return _result(job, response, size=len(body), parts=1, verified=verified)


def _result(
    job: Job, response: Response, *, size: int, parts: int, verified: Verified
) -> UploadResult:
    algorithm = job.args.checksum_algorithm
    return UploadResult(
        bucket=job.bucket,
        key=job.key,
        etag=response["ETag"],
        size=size,
        parts=parts,
        upload_id=job.upload_id,
        version_id=response.get("VersionId"),
        checksum=response.get(f"Checksum{algorithm}") if algorithm else None,
        checksum_algorithm=algorithm,
        checksum_type=job.args.checksum_type,
        etag_verified=verified.etag,
        checksum_verified=verified.checksum,
    )


async def _resumable(job: Job, source: PathSource, size: int) -> UploadResult:
    """A multipart upload of a file that can be resumed from its journal after a crash."""
    assert job.resume_path is not None
    assert source.path is not None
    origin = Origin(path=source.path, size=size, mtime_ns=source.mtime_ns)
    loaded = await load(job.resume_path)  # a journal that cannot be used: ValueError
    if loaded is None:
        return await _begin_resumable(job, source, origin)
    header, recorded = loaded
    try:
        check_journal(header, job, origin)
    except StaleSourceError as exc:
        job.upload_id = header.upload_id
        raise _kept(job, SourceChangedError, exc) from exc
    plan = plan_known_size(size, header.part_size)
    job.upload_id = header.upload_id
    try:
        listed = await list_parts(job)
    except Exception as exc:
        if error_code(exc) != "NoSuchUpload":
            raise _kept(job, UploadError, exc) from exc
        return await _after_upload_gone(job, source, origin, plan, recorded)
    kept = keepable(recorded, listed, plan)
    try:
        await verify_kept(source.path, plan, kept, job.args.checksum_algorithm)
    except StaleSourceError as exc:
        raise _kept(job, SourceChangedError, exc) from exc
    log.info(
        "s3://%s/%s: resuming upload %s, %d of %d parts already sent",
        job.bucket,
        job.key,
        job.upload_id,
        len(kept),
        plan.count,
    )
    job.journal = Journal(job.resume_path, header)
    for number in sorted(kept):
        job.completed[number] = kept[number]
        await job.progress(kept[number].size, number)
    todo = missing(plan, kept)
    return await _multipart(job, lambda send: produce_planned(job, source, plan, send, todo))


async def _after_upload_gone(
    job: Job, source: PathSource, origin: Origin, plan: PartPlan, recorded: dict[int, CompletedPart]
) -> UploadResult:
    """The journal's upload is gone: completed by the run that crashed (its answer lost), or
    aborted by someone. The object says which; if it is not ours, start again."""
    assert job.resume_path is not None
    if set(recorded) == {part.number for part in plan.parts()}:
        job.completed = dict(recorded)
        found = await _completed_meanwhile(job)
        if found is not None:
            await discard(job.resume_path)
            return _completed(job, found)
    log.warning(
        "s3://%s/%s: upload %s from the resume journal is gone; starting again",
        job.bucket,
        job.key,
        job.upload_id,
    )
    job.upload_id = None
    job.completed = {}
    return await _begin_resumable(job, source, origin)


async def _begin_resumable(job: Job, source: PathSource, origin: Origin) -> UploadResult:
    assert job.resume_path is not None
    plan = plan_known_size(origin.size, job.config.part_size)
    path = job.resume_path

    async def start_journal() -> None:
        assert job.upload_id is not None
        header = Header(
            bucket=job.bucket,
            key=job.key,
            upload_id=job.upload_id,
            size=plan.size,
            part_size=plan.part_size,
            checksum_algorithm=job.args.checksum_algorithm,
            checksum_type=job.args.checksum_type,
            origin=origin,
        )
        job.journal = await Journal.create(path, header)

    return await _multipart(
        job, lambda send: produce_planned(job, source, plan, send), created=start_journal
    )


async def _multipart(
    job: Job, produce: Producer, created: Callable[[], Awaitable[None]] | None = None
) -> UploadResult:
    """Create the upload (unless resumed: ``job.upload_id`` is set), send its parts, complete.
    ``created`` runs once the upload exists (a resumable one writes its journal)."""
    cancel: BaseException | None = None
    twins: _Twins | None = None
    if job.upload_id is None:
        # Create runs shielded: cancelled mid-flight, the upload might exist with an id we
        # never learnt, billed until someone aborts it. Waiting for the answer lets us abort.
        create = {"Bucket": job.bucket, "Key": job.key, **job.args.create}
        retries = _Retries()
        began = time.monotonic()
        try:
            response, cancel = await shielded(
                lambda: job.s3.call("create_multipart_upload", create, on_retry=retries),
                job.config.abort_timeout,
            )
        except Exception as exc:
            raise _failure(job, exc) from exc
        job.upload_id = response["UploadId"]
        log.debug("s3://%s/%s: multipart upload %s created", job.bucket, job.key, job.upload_id)
        if retries.count:
            twins = _Twins(took=time.monotonic() - began)
    try:
        if cancel is not None:
            raise cancel
        await anyio.lowlevel.checkpoint()  # an anyio cancellation held off during Create
        if twins is not None:
            await _abort_twins(job, twins)
        if created is not None:
            await created()
        await _run_pipeline(job, produce)
        if job.in_place is not None:
            await check_file_end(job)
        response = await _complete(job)
    except BaseException as exc:
        if job.journal is not None and not isinstance(_cause(exc), SourceSizeError):
            # Kept for the next attempt: its journal says what is already there.
            if isinstance(exc, Exception) and not isinstance(exc, UploadError):
                raise _failure(job, exc, kept=True) from _cause(exc)
            raise

        async def clean_up() -> bool:
            aborted = await _abort(job)
            if twins is not None:
                await _abort_twins(job, twins)
            return aborted

        aborted, cancel = await shielded(clean_up, 2 * job.config.abort_timeout + 1)
        await _discard_journal(job)
        if cancel is not None and isinstance(exc, Exception):
            raise cancel from exc  # cancelled while aborting a failure: cancellation wins
        if isinstance(exc, Exception) and not isinstance(exc, UploadError):
            raise _failure(job, exc, aborted) from _cause(exc)
        if isinstance(exc, UploadError) and exc.abort_succeeded is None:
            exc.abort_succeeded = aborted
        raise
    # Past this point the object exists: nothing to abort any more, nothing to resume.
    await _discard_journal(job)
    if twins is not None:
        await _abort_twins(job, twins)
    return _completed(job, response)


@dataclass(slots=True)
class _Twins:
    """A Create that was retried, whose earlier attempts may have begun uploads unseen."""

    took: float
    began: datetime.datetime | None = None


async def _abort_twins(job: Job, twins: _Twins) -> None:
    """Abort the uploads an earlier attempt of Create may have begun. Run as the upload
    begins and once more as it ends: a late attempt may reach the server after ours."""
    assert job.upload_id is not None
    try:
        with anyio.fail_after(job.config.abort_timeout):
            twins.began, count = await abort_twins(
                job.s3, job.bucket, job.key, job.upload_id, twins.took, twins.began
            )
    except Exception as exc:
        message = summarize(exc)
        log.warning(
            "s3://%s/%s: could not look for a twin upload: %s", job.bucket, job.key, message
        )
        return
    if count:
        log.info(
            "s3://%s/%s: aborted %d upload(s) begun by an earlier attempt of CreateMultipartUpload",
            job.bucket,
            job.key,
            count,
        )


async def _discard_journal(job: Job) -> None:
    if job.journal is not None:
        journal, job.journal = job.journal, None
        with anyio.CancelScope(shield=True):
            await journal.discard()


async def _run_pipeline(job: Job, produce: Producer) -> None:
    send, receive = anyio.create_memory_object_stream[QueuedPart](job.config.read_ahead)
    receivers = [receive.clone() for _ in range(job.config.concurrency)]
    receive.close()
    stages = [partial(produce, send)] + [partial(run_worker, job, r) for r in receivers]
    try:
        await run_stages(stages)
    finally:
        send.close()
        for stream in receivers:
            stream.close()


def _parts_in_order(job: Job) -> list[CompletedPart]:
    numbers = sorted(job.completed)
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"parts are missing before Complete: have {numbers[:5]}...")
    return [job.completed[number] for number in numbers]


async def _complete(job: Job) -> Response:
    def check(response: Response) -> None:
        if not response.get("ETag"):
            raise BadResponseError("CompleteMultipartUpload answered without an ETag")

    retries = _Retries()
    try:
        return await job.s3.call(
            "complete_multipart_upload",
            {
                "Bucket": job.bucket,
                "Key": job.key,
                "UploadId": job.upload_id,
                **complete_params(job.args, _parts_in_order(job)),
                **job.args.complete,
            },
            check=check,
            on_retry=retries,
        )
    except Exception as exc:
        if not _may_have_landed(retries.count > 0, exc):
            raise
        found = await _completed_meanwhile(job)
        if found is None:
            job.unconfirmed = "CompleteMultipartUpload"
            raise
        return found


class _Retries:
    """An ``on_retry`` that counts the retries of one call, and passes each on to ``then``."""

    def __init__(self, then: Callable[[int, Failure], None] | None = None) -> None:
        self.count = 0
        self._then = then

    def __call__(self, attempt: int, failure: Failure) -> None:
        self.count += 1
        if self._then is not None:
            self._then(attempt, failure)


def _may_have_landed(retried: bool, exc: BaseException) -> bool:
    """Whether a write that failed for good may have been done all the same: an attempt was
    retried (its answer may have been lost on the way, the retry then refused), or the last
    one broke off once sent, or was answered in a way that cannot be right."""
    return retried or describe(exc).kind in ("connection", "timeout", "integrity")


async def _completed_meanwhile(job: Job) -> Response | None:
    """Whether the object at the key is this upload's, completed by a Complete whose answer
    was lost: its ETag or checksum must be the one computed from the parts sent."""
    found = await _ours_meanwhile(job, "CompleteMultipartUpload", partial(_complete_matches, job))
    return None if found is None else found[0]


def _complete_matches(job: Job, head: Response) -> Verified | None:
    verified, mismatch = expected_object(job.args, head, _parts_in_order(job))
    return None if mismatch is not None else verified


def _put_matches(job: Job, digest: PartDigest, head: Response) -> Verified | None:
    try:
        return check_write(job.args, head, digest, "the object")
    except BadResponseError:
        return None


async def _ours_meanwhile(
    job: Job, operation: str, matches: Callable[[Response], Verified | None]
) -> tuple[Response, Verified] | None:
    """Ask the object itself (HeadObject with its checksum) whether ``operation`` wrote it,
    its answer lost: only an ETag or checksum that ``matches`` confirms counts as ours."""
    params = {"Bucket": job.bucket, "Key": job.key, "ChecksumMode": "ENABLED", **job.args.part}
    try:
        head: Response = await job.s3.call("head_object", params)
    except Exception:
        return None
    verified = matches(head)
    if verified is None or not (verified.etag or verified.checksum):
        return None
    log.info("s3://%s/%s: %s's answer was lost; the object is ours", job.bucket, job.key, operation)
    return head, verified


def _completed(job: Job, response: Response) -> UploadResult:
    """The result of a completed upload, once S3's answer is checked against the parts."""
    parts = _parts_in_order(job)
    verified, mismatch = expected_object(job.args, response, parts)
    if mismatch is not None:
        raise IntegrityError(
            f"the object was written, but {mismatch}: it may be corrupt",
            bucket=job.bucket,
            key=job.key,
            upload_id=job.upload_id,
        )
    log.debug("s3://%s/%s: completed in %d parts", job.bucket, job.key, len(parts))
    size = sum(part.size for part in parts)
    return _result(job, response, size=size, parts=len(parts), verified=verified)


async def _abort(job: Job) -> bool:
    """Abort the upload and confirm it is gone; parts in flight may land after an abort,
    so abort again until ListParts answers NoSuchUpload. Bounded by ``abort_timeout``."""
    params = {"Bucket": job.bucket, "Key": job.key, "UploadId": job.upload_id, **job.args.control}
    with anyio.move_on_after(job.config.abort_timeout):
        for round_ in range(1, 4):
            try:
                await job.s3.call("abort_multipart_upload", params)
            except Exception as exc:
                if error_code(exc) != "NoSuchUpload":
                    log.warning("aborting upload %s failed: %s", job.upload_id, summarize(exc))
            try:
                await job.s3.call("list_parts", {**params, "MaxParts": 1})
            except Exception as exc:
                if error_code(exc) == "NoSuchUpload":
                    log.info("s3://%s/%s: upload %s aborted", job.bucket, job.key, job.upload_id)
                    return True
                log.warning("confirming abort of %s failed: %s", job.upload_id, summarize(exc))
            await anyio.sleep(0.25 * round_)
    log.error("s3://%s/%s: upload %s may be left behind", job.bucket, job.key, job.upload_id)
    return False


def _cause(exc: BaseException) -> BaseException:
    if isinstance(exc, PartError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _kept(job: Job, kind: type[UploadError], exc: BaseException) -> UploadError:
    """A resumable upload refused or failed before any part was sent: kept as it was."""
    error = kind(
        summarize(exc) if not isinstance(exc, StaleSourceError) else str(exc),
        bucket=job.bucket,
        key=job.key,
        upload_id=job.upload_id,
        code=error_code(exc),
        resume_path=job.resume_path,
    )
    error.__cause__ = exc
    return error


def _failure(
    job: Job, exc: BaseException, aborted: bool | None = None, *, kept: bool = False
) -> UploadError:
    """The UploadError the caller sees for ``exc``."""
    part_number = exc.part_number if isinstance(exc, PartError) else None
    cause = _cause(exc)
    kind: type[UploadError] = UploadError
    if isinstance(cause, SourceSizeError):
        kind = SourceChangedError
        part_number = cause.part_number or part_number
    elif isinstance(cause, BadResponseError) or error_code(cause) in CORRUPTION_CODES:
        kind = IntegrityError
    message = summarize(cause)
    if job.unconfirmed is not None:
        message += (
            f"; an earlier {job.unconfirmed} may have succeeded with its answer lost:"
            " an object may exist at the key, and it could not be confirmed as this upload's"
        )
    error = kind(
        message,
        bucket=job.bucket,
        key=job.key,
        upload_id=job.upload_id,
        part_number=part_number,
        code=error_code(cause),
        abort_succeeded=aborted,
        resume_path=job.resume_path if kept else None,
    )
    error.__cause__ = cause
    return error
