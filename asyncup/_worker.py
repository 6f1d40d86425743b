"""Workers: take parts off the queue and send each with UploadPart, retrying as needed.

A part is digested (MD5, plus the configured checksum) in a thread, sent while holding one
of the Uploader's request slots, and checked: S3 must answer with an ETag, and where its ETags
are MD5s (no SSE-KMS or SSE-C) with the MD5 of what was sent. A wrong answer re-sends the
part. The part's buffer returns to the pool once the part is acknowledged.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from ._checksums import PartDigest, digest_part
from ._errors import AsyncupError
from ._job import CompletedPart, FilledPart, Job
from ._s3 import BadResponseError, Response


class PartError(AsyncupError):
    """Part ``part_number`` failed for good; ``__cause__`` says why."""

    def __init__(self, part_number: int) -> None:
        super().__init__(f"part {part_number} failed")
        self.part_number = part_number


async def run_worker(job: Job, receive: MemoryObjectReceiveStream[FilledPart]) -> None:
    async with receive:
        async for part in receive:
            try:
                job.completed[part.number] = await upload_part(job, part)
            except Exception as exc:
                raise PartError(part.number) from exc
            job.recycle(part)
            await job.progress(part.length)


async def upload_part(job: Job, part: FilledPart) -> CompletedPart:
    algorithm = job.args.checksum_algorithm
    digest = await anyio.to_thread.run_sync(digest_part, part.body, algorithm)
    params: dict[str, Any] = {
        "Bucket": job.bucket,
        "Key": job.key,
        "UploadId": job.upload_id,
        "PartNumber": part.number,
        "Body": part.body,
        "ContentLength": part.length,
        "ContentMD5": digest.content_md5,
        **job.args.part,
    }
    if algorithm is not None:
        params[f"Checksum{algorithm}"] = digest.checksum

    def check(response: Response) -> None:
        check_write(job, response, digest, f"part {part.number}")

    response = await job.s3.call("upload_part", params, limiter=job.limiter, check=check)
    return CompletedPart(
        number=part.number,
        etag=response["ETag"],
        md5=digest.md5,
        checksum=digest.checksum,
        size=part.length,
    )


def etag_is_md5(job: Job, response: Response) -> bool:
    """Whether S3's ETag for this write is the MD5 of its bytes (not under SSE-KMS/SSE-C)."""
    if not job.args.etag_is_md5 or response.get("SSECustomerAlgorithm"):
        return False
    return not str(response.get("ServerSideEncryption", "")).startswith("aws:kms")


def check_write(job: Job, response: Response, digest: PartDigest, what: str) -> None:
    """Reject an UploadPart / PutObject answer that does not acknowledge our bytes."""
    etag = response.get("ETag")
    if not etag:
        raise BadResponseError(f"S3 acknowledged {what} without an ETag")
    if etag_is_md5(job, response) and etag.strip('"').lower() != digest.md5.hex():
        raise BadResponseError(
            f"S3's ETag {etag} for {what} is not the MD5 of the bytes sent ({digest.etag})"
        )
    algorithm = job.args.checksum_algorithm
    echoed = response.get(f"Checksum{algorithm}") if algorithm else None
    if echoed and echoed != digest.checksum:
        raise BadResponseError(
            f"S3's {algorithm} checksum {echoed} for {what} is not that of the bytes sent"
            f" ({digest.checksum})"
        )
