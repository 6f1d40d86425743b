"""What S3 did, confirmed.

A finished upload's result is checked against the parts sent (ETag, whole-object checksum).
A write whose answer may have been lost (it was retried, or broke off once sent) is
confirmed from the object itself: HeadObject with its checksum, and only an ETag or checksum
computed from the parts sent counts as this upload's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from .._core.errors import (
    IntegrityError,
)
from .._core.results import UploadResult
from .._core.retry import Failure
from .._core.verify import (
    CompletedPart,
    Verified,
    expected_object,
    verified_by,
    written,
)
from .._s3.calls import Response
from .._s3.errors import describe
from .job import Job

log = logging.getLogger("asyncup")


class Retries:
    """An ``on_retry`` that counts the retries of one call (``reached``: those whose failed
    attempt may have reached the server), and passes each on to ``then``."""

    def __init__(self, then: Callable[[int, Failure], None] | None = None) -> None:
        self.reached = 0
        self._then = then

    def __call__(self, attempt: int, failure: Failure) -> None:
        if failure.sent:
            self.reached += 1
        if self._then is not None:
            self._then(attempt, failure)


def may_have_landed(retries: Retries, exc: BaseException) -> bool:
    """Whether a write that failed for good may have been done all the same: an attempt that
    reached the server was retried (its answer may have been lost on the way, the retry then
    refused), or the last one broke off once sent, or was answered in a way that cannot be
    right. An attempt that could not connect sent nothing."""
    last = describe(exc)
    return retries.reached > 0 or (
        last.sent and last.kind in ("connection", "timeout", "integrity")
    )


def never_sent(retries: Retries, exc: BaseException) -> bool:
    """Whether no attempt of a call reached the server (each one failed to connect)."""
    return retries.reached == 0 and not describe(exc).sent


async def ours_meanwhile(
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


async def completed_meanwhile(job: Job) -> Response | None:
    """Whether the object at the key is this upload's, completed by a Complete whose answer
    was lost: its ETag or checksum must be the one computed from the parts sent."""
    found = await ours_meanwhile(job, "CompleteMultipartUpload", partial(_complete_matches, job))
    return None if found is None else found[0]


def _complete_matches(job: Job, head: Response) -> Verified | None:
    verified, mismatch = expected_object(job.args, head, parts_in_order(job))
    return None if mismatch is not None else verified


def parts_in_order(job: Job) -> list[CompletedPart]:
    numbers = sorted(job.completed)
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"parts are missing before Complete: have {numbers[:5]}...")
    return [job.completed[number] for number in numbers]


def completed(job: Job, response: Response) -> UploadResult:
    """The result of a completed upload, once S3's answer is checked against the parts."""
    parts = parts_in_order(job)
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
    return result(job, response, size=size, parts=len(parts), verified=verified)


def result(
    job: Job, response: Response, *, size: int, parts: int, verified: Verified
) -> UploadResult:
    return written(
        job.args,
        response,
        verified,
        bucket=job.bucket,
        key=job.key,
        size=size,
        parts=parts,
        upload_id=job.upload_id,
        **_who_verified(job, verified),
    )


def _who_verified(job: Job, verified: Verified) -> dict[str, str | None]:
    """``verified_by`` and ``unverified_reason``: the weakest check of any write of this
    run; with no write in this run, what the object's own answer vouches for."""
    checks = job.write_checks
    if None in checks:
        return {"verified_by": None, "unverified_reason": job.unverified_reason}
    for who in ("asyncup", "store"):
        if who in checks:
            return {"verified_by": who, "unverified_reason": None}
    by = verified_by(verified, verified.checksum)
    reason = None
    if by is None:
        reason = (
            "the parts were sent by an earlier run or by other hosts, and the object's own"
            " checksum or ETag could not be compared"
        )
    return {"verified_by": by, "unverified_reason": reason}
