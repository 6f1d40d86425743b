"""Workers: take parts off the queue and send each with UploadPart, retrying as needed.

A part is digested (its checksum, or its MD5) in a thread, sent while holding one of the
Uploader's request slots, and its answer checked (``_core.verify.check_write``): an answer that
does not acknowledge the bytes sent re-sends the part. The part's buffer returns to the
pool once the part is acknowledged. A ``FilePart`` has no buffer: it is read from the file
to digest it and again to send it, and a file found shorter, or changed between the two
reads, fails the upload as ``SourceChangedError``. Over TLS, to a store that verifies
checksums sent as trailers, a ``FilePart`` of 1 MiB or more is read once: its checksum is
computed as it is sent and follows it (``_upload_trailed``; a file found shorter fails as
above, a change in place is sent as read, as boto3 sends it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from anyio.streams.memory import MemoryObjectReceiveStream

from .._core.checksums import PartDigest
from .._core.errors import BadResponseError, PartError, ShortSourceError, SourceSizeError
from .._core.retry import CORRUPTION_CODES
from .._core.verify import CompletedPart, digest_params, same_digest
from .._core.wire import THRESHOLD
from .._s3.calls import Response
from .._s3.errors import error_code
from .._s3.payloads import NotTrailed, TrailedPayload, source_shrank
from .._s3.ranges import RangeBody, digest_range
from .integrity import (
    REFUSED,
    Rehash,
    buffer_md5,
    check_answer,
    learn_trailers,
    may_trail,
    range_md5,
)
from .job import FilePart, Job, QueuedPart

log = logging.getLogger("asyncup")


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
    announced = False  # part_started: once per part, whichever way it goes
    if part.length >= THRESHOLD and may_trail(job) and await learn_trailers(job):
        announced = True
        store = job.store
        try:
            completed = await _upload_trailed(job, part)
            # Taken: the store takes trailers, whatever a part sent at the same time was
            # answered (a refusal before any was taken stopped them).
            store.trailed = store.trails = True
            return completed
        except NotTrailed as exc:  # (before any byte, or answered by a redirect)
            log.debug("part %d: no trailer (%s)", part.number, exc)
        except Exception as exc:
            if error_code(exc) not in REFUSED:
                raise
            # Its trailer refused (once the retries are spent): sent again read twice, its
            # checksum in a header. A store that never took a trailed part gets no more of
            # them (each refusal spent attempts and retry quota); after one it took, the
            # bytes changed on the way.
            if not store.trailed:
                store.trails = False
            log.info("part %d: its trailer was refused (%s); sent again", part.number, exc)

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
            return await send_part(
                job, part.number, body, part.length, sent, rehash, announced=announced
            )
        except Exception as exc:
            if source_shrank(exc):
                raise _changed(job, part, "ended inside") from exc
            corrupt = isinstance(exc, BadResponseError) or error_code(exc) in CORRUPTION_CODES
            if corrupt and not same_digest(await digest(algorithm), sent):
                raise _changed(job, part, "changed while sending") from exc
            raise


async def _upload_trailed(job: Job, part: FilePart) -> CompletedPart:
    """A file part read once, its checksum computed as it is sent and sent after it as a
    trailer (``payloads.TrailedPayload``), to a store that verifies trailers: over TLS,
    where each byte was read twice, once for the checksum, once to be encrypted."""
    source, algorithm = job.in_place, job.args.checksum_algorithm
    assert source is not None
    assert source.path is not None
    assert algorithm is not None
    path, fd = source.path, source.fd
    body = TrailedPayload(path, part.offset, part.length, algorithm, fd)
    params: dict[str, Any] = {
        "Bucket": job.bucket,
        "Key": job.key,
        "UploadId": job.upload_id,
        "PartNumber": part.number,
        "Body": body,
        "ContentLength": part.length,
        "ChecksumAlgorithm": algorithm,
        **job.args.part,
    }
    digests: list[PartDigest] = []

    async def rehash() -> bytes:  # (a store that verifies vouches: not expected to be asked)
        md5 = (await digest_range(path, part.offset, part.length, None, fd)).md5
        assert md5 is not None
        return md5

    async def check(response: Response) -> None:
        assert body.digest is not None  # set by the send, before the answer is read
        digest, _ = await check_answer(job, response, body.digest, f"part {part.number}", rehash)
        digests.append(digest)

    try:
        response = await _call(job, part.number, params, part.length, check)
    except Exception as exc:
        if source_shrank(exc):
            raise _changed(job, part, "ended inside") from exc
        raise
    return CompletedPart(part.number, response["ETag"], digests[-1], part.length)


def _changed(job: Job, part: FilePart, what: str) -> SourceSizeError:
    assert job.in_place is not None
    return SourceSizeError(
        f"{job.in_place.path} {what} part {part.number} (bytes {part.offset} to"
        f" {part.offset + part.length} of the {job.total} expected; did it change while"
        " being read?)",
        part.number,
    )


async def send_part(
    job: Job,
    number: int,
    body: object,
    length: int,
    digest: PartDigest,
    rehash: Rehash,
    *,
    announced: bool = False,
) -> CompletedPart:
    """UploadPart ``number`` of ``length`` bytes (a buffer, or ``asyncup.parallel``'s file
    range) with its digest; an answer that does not acknowledge those bytes is retried
    (``integrity.check_answer``: ``rehash`` gives their MD5 where it must be compared).
    ``announced``: its ``part_started`` was emitted already (by a try with a trailer)."""
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

    response = await _call(job, number, params, length, check, announce=not announced)
    return CompletedPart(number, response["ETag"], digest, length)


async def _call(
    job: Job,
    number: int,
    params: dict[str, Any],
    length: int,
    check: Callable[[Response], Awaitable[None]],
    *,
    announce: bool = True,
) -> Response:
    """Part ``number``'s UploadPart, in a request slot, paced, retried."""
    if announce:
        job.emit("part_started", part_number=number)
    return await job.s3.call(
        "upload_part",
        params,
        limiter=job.limiter,
        check=check,
        pace=job.pace(length),
        on_retry=job.retried(number),
    )
