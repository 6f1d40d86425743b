"""Workers: take parts off the queue and send each with UploadPart, retrying as needed.

A part is digested (its checksum, or its MD5) in a thread, sent while holding one of the
Uploader's request slots, and its answer checked (``_core.verify.check_write``): an answer that
does not acknowledge the bytes sent re-sends the part. The part's buffer returns to the
pool once the part is acknowledged. A ``FilePart`` has no buffer: it is read from the file
to digest it and again to send it, and a file found shorter, or changed between the two
reads, fails the upload as ``SourceChangedError``.
"""

from __future__ import annotations

from typing import Any

from anyio.streams.memory import MemoryObjectReceiveStream

from .._core.checksums import PartDigest
from .._core.errors import BadResponseError, PartError, ShortSourceError, SourceSizeError
from .._core.retry import CORRUPTION_CODES
from .._core.verify import CompletedPart, digest_params, same_digest
from .._s3.calls import Response
from .._s3.errors import error_code
from .._s3.payloads import source_shrank
from .._s3.ranges import RangeBody, digest_range
from .integrity import Rehash, buffer_md5, check_answer, range_md5
from .job import FilePart, Job, QueuedPart


async def run_worker(job: Job, receive: MemoryObjectReceiveStream[QueuedPart]) -> None:
    async with receive:
        async for part in receive:
            try:
                completed = job.completed[part.number] = await upload_part(job, part)
                if job.journal is not None:
                    await job.journal.record(completed)
            except Exception as exc:
                raise PartError(part.number) from exc
            number, length = part.number, part.length
            job.recycle(part)
            # An idle worker must not keep its last buffer alive: the budget counts it free.
            del part
            await job.progress(length, number)


async def upload_part(job: Job, part: QueuedPart) -> CompletedPart:
    if isinstance(part, FilePart):
        return await _upload_in_place(job, part)
    digest = await job.digest(part.body)
    return await send_part(job, part.number, part.body, part.length, digest, buffer_md5(part.body))


async def _upload_in_place(job: Job, part: FilePart) -> CompletedPart:
    source = job.in_place
    assert source is not None
    assert source.path is not None
    path, algorithm = source.path, job.args.checksum_algorithm

    async def digest(of: str | None, md5: bool = False) -> PartDigest:
        try:
            return await digest_range(path, part.offset, part.length, of, source.fd, md5=md5)
        except ShortSourceError as exc:
            raise _changed(job, part, "ended inside") from exc

    sent = await digest(algorithm, job.wants_md5)
    rehash = range_md5(
        path, part.offset, part.length, sent, algorithm,
        lambda: _changed(job, part, "changed while sending"), source.fd,
    )  # fmt: skip
    with RangeBody(path, part.offset, part.length, source.fd) as body:
        try:
            return await send_part(job, part.number, body, part.length, sent, rehash)
        except Exception as exc:
            if source_shrank(exc):
                raise _changed(job, part, "ended inside") from exc
            corrupt = isinstance(exc, BadResponseError) or error_code(exc) in CORRUPTION_CODES
            if corrupt and not same_digest(await digest(algorithm), sent):
                raise _changed(job, part, "changed while sending") from exc
            raise


def _changed(job: Job, part: FilePart, what: str) -> SourceSizeError:
    assert job.in_place is not None
    return SourceSizeError(
        f"{job.in_place.path} {what} part {part.number} (bytes {part.offset} to"
        f" {part.offset + part.length} of the {job.total} expected; did it change while"
        " being read?)",
        part.number,
    )


async def send_part(
    job: Job, number: int, body: object, length: int, digest: PartDigest, rehash: Rehash
) -> CompletedPart:
    """UploadPart ``number`` of ``length`` bytes (a buffer, or ``asyncup.parallel``'s file
    range) with its digest; an answer that does not acknowledge those bytes is retried
    (``integrity.check_answer``: ``rehash`` gives their MD5 where it must be compared)."""
    params: dict[str, Any] = {
        "Bucket": job.bucket,
        "Key": job.key,
        "UploadId": job.upload_id,
        "PartNumber": number,
        "Body": body,
        "ContentLength": length,
        **digest_params(job.args, digest),
        **job.args.part,
    }

    async def check(response: Response) -> None:
        nonlocal digest
        digest, _ = await check_answer(job, response, digest, f"part {number}", rehash)

    job.emit("part_started", part_number=number)
    response = await job.s3.call(
        "upload_part",
        params,
        limiter=job.limiter,
        check=check,
        pace=job.pace(length),
        on_retry=job.retried(number),
    )
    return CompletedPart(number, response["ETag"], digest, length)
