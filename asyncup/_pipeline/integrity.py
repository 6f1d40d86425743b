"""Each write's answer checked, and who vouched for its bytes (``_core.verify``).

    before a multipart upload's first part: does the store verify checksums?  (``learn``,
        once per client and algorithm: a 1-byte UploadPart with a wrong checksum, as part
        10,000 of this upload; refused as BadDigest -> it verifies; taken -> it does not,
        and the stray part is never listed in Complete)
    each answer -> the store verifies, and took it               -> "store"
                -> the ETag is an MD5 (no SSE-C/KMS)?  the MD5 of the bytes sent (computed
                   with the checksum where the store is known not to verify, else now, off
                   the event loop) matches?                       -> "asyncup"
                -> neither: integrity="require"                  -> UnverifiedError (aborted)
                            otherwise                            -> accepted; the result says why

A mismatch raises ``BadResponseError``, which ``S3.call`` retries: the write is sent again,
exactly as after a BadDigest, and one that keeps failing fails the upload.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any

import anyio.to_thread

from .._concurrency.shield import shielded
from .._core.checksums import Buffer, PartDigest, digests_inline, md5_of
from .._core.errors import UnverifiedError
from .._core.plan import MAX_PARTS
from .._core.retry import CORRUPTION_CODES
from .._core.verify import (
    Verified,
    check_write,
    etag_is_md5,
    known_to_verify,
    same_digest,
    unverifiable,
    verified_by,
    wrong_checksum,
)
from .._s3.calls import Response
from .._s3.errors import error_code
from .._s3.payloads import NotTrailed, TrailedPayload
from .._s3.ranges import digest_range
from .job import Job

log = logging.getLogger("asyncup")

# What a store that verifies answers a checksum that does not match the bytes.
REFUSED = CORRUPTION_CODES | {"InvalidDigest", "InvalidChecksum"}
# Small objects a client writes, each with its MD5 compared, before it probes its store once.
SMALL_WRITES_BEFORE_PROBE = 16

Rehash = Callable[[], Awaitable[bytes]]
"""The MD5 of a write's bytes, read again (a buffer, or a file range)."""


def _nothing_to_learn(job: Job) -> bool:
    """Whether the store's verification is known (an endpoint of S3 itself: it verifies), or
    need not be (no checksum to probe with, integrity off)."""
    store = job.store
    if store.verifies is not None or job.args.checksum_algorithm is None:
        return True
    if job.config.integrity == "off":
        return True
    if known_to_verify(job.s3.endpoint_url):
        store.verifies = True
        return True
    return False


async def learn(job: Job) -> None:
    """Find out once per client and algorithm whether its store verifies the checksums it is
    sent, using ``job``'s multipart upload (created: its ``upload_id`` is set), or one of its
    own where ``job``'s may hold a part 10,000 already (``_probe_in_place``)."""
    if _nothing_to_learn(job):
        return
    if not _probe_in_place(job):
        await learn_alone(job)
        return
    store = job.store
    async with job.s3.probing:
        if store.verifies is not None:
            return  # another upload found out meanwhile
        store.probed = True
        store.verifies = await _probe(job, job.upload_id)
    _learnt(job, "checksums", store.verifies)


def _probe_in_place(job: Job) -> bool:
    """Whether a probe's byte (part 10,000) may go to ``job``'s own upload: the job created
    it, or it has fewer parts. In an upload the job created, part 10,000 comes after the
    probes, replacing a probe's byte: the checksum probe runs before any part, the trailer
    probe when the first part of 1 MiB or more is sent, parts going out in order (the
    queue holds a few). Not so where a resumed upload, or another host's, holds a part
    10,000 already: on a store that takes the byte, it would replace that part."""
    return job.created_here or (job.parts is not None and job.parts < MAX_PARTS)


def may_trail(job: Job) -> bool:
    """Whether ``job``'s file parts may be sent with their checksum in a trailer, each byte
    read once: over TLS (over plain HTTP ``sendfile`` reads each byte once already) from a
    file on asyncup's own client, to a store that verifies checksums (whether it verifies
    trailers is ``learn_trailers``'s)."""
    s3 = job.s3
    return (
        job.in_place is not None
        and job.args.checksum_algorithm is not None
        and job.store.verifies is True
        and job.store.trails is not False
        and (s3.endpoint_url or "").startswith("https:")
        and s3.lean  # (only the lean path frames a trailed body; botocore refuses one)
    )


async def learn_trailers(job: Job) -> bool:
    """Whether the store verifies a checksum sent as a trailer: learnt once per client and
    algorithm, with the first byte of ``job``'s file as part 10,000 of its upload (or of one
    of its own: ``_probe_in_place``), its trailer wrong (S3 itself does, without a probe)."""
    store = job.store
    if store.trails is None and known_to_verify(job.s3.endpoint_url):
        store.trails = True
    if store.trails is not None:
        return store.trails
    async with job.s3.probing:
        if store.trails is None:
            probe, in_place = partial(_probe_trailer, job), _probe_in_place(job)
            try:
                if in_place:
                    store.trails = await probe(job.upload_id)
                else:  # a Create and an Abort: tried once, whatever comes of it
                    store.trails = bool(await _in_upload_of_its_own(job, probe))
            except NotTrailed:
                if not in_place:
                    store.trails = False
                return False  # (in place nothing was sent: another part may learn it)
            _learnt(job, "trailers", store.trails)
    return store.trails is True


async def _probe_trailer(job: Job, upload_id: str | None) -> bool:
    """Send the file's first byte as part 10,000 with a wrong trailer: refused by a store
    that verifies trailers."""
    source, algorithm = job.in_place, job.args.checksum_algorithm
    assert source is not None
    assert source.path is not None
    assert algorithm is not None
    body = TrailedPayload(source.path, 0, 1, algorithm, source.fd, wrong=True)
    try:
        await job.s3.call("upload_part", _probe_part(job, upload_id, body, 1), attempts=1)
    except NotTrailed:
        raise
    except Exception as exc:
        return error_code(exc) in REFUSED
    return False


async def learn_for_small(job: Job) -> None:
    """Before a small object's PutObject: a client that has written
    ``SMALL_WRITES_BEFORE_PROBE`` small objects without knowing (each one's MD5 computed and
    compared with its ETag) probes once, in a multipart upload of its own, so that a store
    that verifies spares it the MD5s."""
    if _nothing_to_learn(job):
        return
    store = job.store
    store.small_writes += 1
    if store.small_writes > SMALL_WRITES_BEFORE_PROBE:
        await learn_alone(job)


async def learn_alone(job: Job) -> None:
    """Find out once per client and algorithm whether its store verifies checksums, in a
    multipart upload of its own (for writes asyncup did not send: ``asyncup.direct``'s
    parts)."""
    store = job.store
    if _nothing_to_learn(job) or store.probed:
        return
    async with job.s3.probing:
        if store.verifies is not None or store.probed:
            return
        store.probed = True
        store.verifies = await _in_upload_of_its_own(job, partial(_probe, job))
    _learnt(job, "checksums", store.verifies)


def _learnt(job: Job, what: str, answer: bool | None) -> None:
    algorithm, url = job.args.checksum_algorithm, job.s3.endpoint_url
    log.debug("%s verifies %s %s: %s", url, algorithm, what, answer)


async def _in_upload_of_its_own(
    job: Job, probe: Callable[[str], Awaitable[bool | None]]
) -> bool | None:
    """``probe`` in a multipart upload of its own: created, probed, aborted (the Create and
    the Abort shielded and bounded by ``abort_timeout``; an upload left over is the
    sweeper's to remove). None where it could not be created."""
    s3, limit = job.s3, job.config.abort_timeout
    create = {"Bucket": job.bucket, "Key": job.key, **job.args.create}
    try:
        created, cancel = await shielded(
            partial(s3.call, "create_multipart_upload", create, attempts=1), limit
        )
    except Exception as exc:
        log.debug("no probe of the store (CreateMultipartUpload: %s)", error_code(exc))
        return None
    abort = {"Bucket": job.bucket, "Key": job.key, "UploadId": created["UploadId"]}
    said = None
    try:
        if cancel is None:
            said = await probe(created["UploadId"])
    finally:
        with contextlib.suppress(Exception):
            _, late = await shielded(
                partial(s3.call, "abort_multipart_upload", abort | job.args.control), limit
            )
            cancel = cancel or late
    if cancel is not None:
        raise cancel
    return said


async def _probe(job: Job, upload_id: str | None) -> bool | None:
    """Send one byte as part 10,000 with a checksum it does not have: a store that verifies
    refuses it; one that takes it does not verify. None: the answer said neither."""
    algorithm = job.args.checksum_algorithm
    assert algorithm is not None  # _nothing_to_learn
    body = b"\0"
    params = _probe_part(job, upload_id, body, 1)
    params[f"Checksum{algorithm}"] = wrong_checksum(algorithm, body)
    try:
        await job.s3.call("upload_part", params, attempts=1)
    except Exception as exc:
        return True if error_code(exc) in REFUSED else None
    return False


def _probe_part(job: Job, upload_id: str | None, body: object, length: int) -> dict[str, Any]:
    """A probe's UploadPart: part 10,000 of ``upload_id``, with ``job``'s algorithm."""
    return {
        "Bucket": job.bucket,
        "Key": job.key,
        "UploadId": upload_id,
        "PartNumber": MAX_PARTS,
        "Body": body,
        "ContentLength": length,
        "ChecksumAlgorithm": job.args.checksum_algorithm,
        **job.args.part,
    }


async def check_answer(
    job: Job, response: Response, digest: PartDigest, what: str, rehash: Rehash
) -> tuple[PartDigest, Verified]:
    """Check one write's answer (``check_write``), and compare its ETag with the MD5 where
    the store does not vouch for the bytes. Returns the digest, with the MD5 if one was
    computed (the whole object's ETag is then checked too, after Complete), and what of the
    answer matched."""
    verified = check_write(job.args, response, digest, what)
    by_store = job.store.verifies is True  # (never learnt for no checksum)
    if (
        verified_by(verified, by_store) is None
        and job.config.integrity != "off"
        and digest.md5 is None
        and etag_is_md5(job.args, response)
    ):
        digest = replace(digest, md5=await rehash())
        verified = check_write(job.args, response, digest, what)
    by = verified_by(verified, by_store)
    if by is None:
        reason = unverifiable(job.args, response, job.config.integrity)
        if job.config.integrity == "require":
            raise UnverifiedError(f"{what} could not be verified: {reason} (integrity='require')")
        job.unverified_reason = job.unverified_reason or reason
    job.write_checks.add(by)
    return digest, verified


def range_md5(
    path: str,
    offset: int,
    length: int,
    sent: PartDigest,
    algorithm: str | None,
    changed: Callable[[], Exception],
    fd: int | None = None,
) -> Rehash:
    """``Rehash`` of a file range already sent. Its checksum is read again too, and must be
    the one sent (else ``changed()`` is raised): a file changed between the first read and
    the send would otherwise pass, its MD5 read now matching the bytes that went out."""

    async def rehash() -> bytes:
        again = await digest_range(path, offset, length, algorithm, fd, md5=True)
        if not same_digest(again, sent):
            raise changed()
        assert again.md5 is not None
        return again.md5

    return rehash


def buffer_md5(body: Buffer | bytes | memoryview) -> Rehash:
    """``Rehash`` of a part still in memory."""

    async def rehash() -> bytes:
        if digests_inline(None, len(body)):
            return md5_of(body)
        return await anyio.to_thread.run_sync(md5_of, body)

    return rehash
