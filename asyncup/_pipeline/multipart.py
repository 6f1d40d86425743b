"""The multipart lifecycle.

    CreateMultipartUpload (shielded) -> [producer -> queue -> workers] -> Complete
                         \\-- any failure or cancellation --> Abort (shielded), confirmed
                                                           by ListParts: NoSuchUpload

Create and Abort run shielded from cancellation and bounded by ``abort_timeout``: a Create
cancelled mid-flight could leave an upload whose id was never learnt. A Create that was
retried may have begun uploads unseen (its twins): they are aborted as the upload begins and
as it ends. The pipeline's stages run under ``run_stages``: the first to fail stops the
others, so the caller gets one ``UploadError`` and never an ExceptionGroup. With a resume
journal, a failure keeps the upload for the next attempt instead (unless the file changed).

``complete`` and ``abort`` are also the last steps of ``asyncup.parallel``.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream

from .._concurrency.shield import shielded
from .._concurrency.stages import run_stages
from .._core.errors import (
    BadResponseError,
    SourceSizeError,
    UploadError,
)
from .._core.results import UploadResult
from .._core.verify import (
    complete_params,
)
from .._s3.calls import Response
from .._s3.errors import error_code, summarize
from . import integrity
from .failures import failure, root_cause
from .job import Job, QueuedPart
from .outcome import (
    Retries,
    completed,
    completed_meanwhile,
    may_have_landed,
    never_sent,
    parts_in_order,
)
from .producer import check_file_end
from .sweeper import abort_twins
from .worker import run_worker

log = logging.getLogger("asyncup")

Producer = Callable[[MemoryObjectSendStream[QueuedPart]], Awaitable[None]]


async def run(
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
        retries = Retries()
        began = time.monotonic()
        try:
            response, cancel = await shielded(
                lambda: job.s3.call("create_multipart_upload", create, on_retry=retries),
                job.config.abort_timeout,
            )
        except Exception as exc:
            if never_sent(retries, exc):
                job.unsent = "CreateMultipartUpload"
            raise failure(job, exc) from root_cause(exc)
        job.upload_id, job.created_here = response["UploadId"], True
        log.debug("s3://%s/%s: multipart upload %s created", job.bucket, job.key, job.upload_id)
        if retries.reached:
            twins = _Twins(took=time.monotonic() - began)
    try:
        if cancel is not None:
            raise cancel
        await anyio.lowlevel.checkpoint()  # an anyio cancellation held off during Create
        if twins is not None:
            await _abort_twins(job, twins)
        if created is not None:
            await created()
        await integrity.learn(job)
        await run_pipeline(job, produce)
        if job.in_place is not None:
            await check_file_end(job)
        response = await complete(job)
    except BaseException as exc:
        if job.journal is not None and not isinstance(root_cause(exc), SourceSizeError):
            # Kept for the next attempt: its journal says what is already there.
            if isinstance(exc, Exception) and not isinstance(exc, UploadError):
                raise failure(job, exc, kept=True) from root_cause(exc)
            raise

        async def clean_up() -> bool:
            aborted = await abort(job)
            if twins is not None:
                await _abort_twins(job, twins)
            return aborted

        aborted, cancel = await shielded(clean_up, 2 * job.config.abort_timeout + 1)
        await _discard_journal(job)
        if cancel is not None and isinstance(exc, Exception):
            raise cancel from exc  # cancelled while aborting a failure: cancellation wins
        if isinstance(exc, Exception) and not isinstance(exc, UploadError):
            raise failure(job, exc, aborted) from root_cause(exc)
        if isinstance(exc, UploadError) and exc.abort_succeeded is None:
            exc.abort_succeeded = aborted
        raise
    # Past this point the object exists: nothing to abort any more, nothing to resume.
    await _discard_journal(job)
    if twins is not None:
        await _abort_twins(job, twins)
    return completed(job, response)


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


async def run_pipeline(job: Job, produce: Producer) -> None:
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


async def complete(job: Job) -> Response:
    def check(response: Response) -> None:
        if not response.get("ETag"):
            raise BadResponseError("CompleteMultipartUpload answered without an ETag")

    retries = Retries()
    try:
        return await job.s3.call(
            "complete_multipart_upload",
            {
                "Bucket": job.bucket,
                "Key": job.key,
                "UploadId": job.upload_id,
                **complete_params(job.args, parts_in_order(job)),
                **job.args.complete,
            },
            check=check,
            on_retry=retries,
        )
    except Exception as exc:
        if not may_have_landed(retries, exc):
            raise
        found = await completed_meanwhile(job)
        if found is None:
            job.unconfirmed = "CompleteMultipartUpload"
            raise
        return found


async def abort(job: Job) -> bool:
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
