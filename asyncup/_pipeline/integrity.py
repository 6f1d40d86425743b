"""Each write's answer checked, and who vouched for its bytes (``_core.verify``).

    answer -> echoed checksum matches?            -> "store"
           -> the ETag is an MD5 (no SSE-C/KMS)?   -> the MD5 of the bytes sent (computed
                                                      along with the checksum once the store
                                                      is known to echo nothing, else now, off
                                                      the event loop) matches?  -> "asyncup"
           -> neither: integrity="require"        -> UnverifiedError (the upload is aborted)
                       otherwise                  -> accepted; the result says why

A mismatch raises ``BadResponseError``, which ``S3.call`` retries: the write is sent again,
exactly as after a BadDigest, and one that keeps failing fails the upload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio.to_thread

from .._core.checksums import Buffer, PartDigest, digests_inline, md5_of
from .._core.errors import UnverifiedError
from .._core.verify import check_write, etag_is_md5, unverifiable, verified_by
from .._s3.calls import Response
from .job import Job

Rehash = Callable[[], Awaitable[bytes]]
"""The MD5 of a write's bytes, read again (a buffer, or a file range)."""


async def check_answer(
    job: Job, response: Response, digest: PartDigest, what: str, rehash: Rehash
) -> PartDigest:
    """Check one write's answer (``check_write``), learn from it whether the store echoes
    checksums, and compare its ETag with the MD5 where nothing else vouches for the bytes.
    Returns the digest, with the MD5 if one was computed (the whole object's ETag is then
    checked too, after Complete)."""
    verified = check_write(job.args, response, digest, what)
    job.s3.echo.learn(job.args.checksum_algorithm, response)
    if (
        verified_by(verified) is None
        and job.config.integrity != "off"
        and digest.md5 is None
        and etag_is_md5(job.args, response)
    ):
        digest = replace(digest, md5=await rehash())
        verified = check_write(job.args, response, digest, what)
    by = verified_by(verified)
    if by is None:
        reason = unverifiable(job.args, response, job.config.integrity)
        if job.config.integrity == "require":
            raise UnverifiedError(f"{what} could not be verified: {reason} (integrity='require')")
        job.unverified_reason = job.unverified_reason or reason
    job.write_checks.add(by)
    return digest


def buffer_md5(body: Buffer | memoryview) -> Rehash:
    """``Rehash`` of a part still in memory."""

    async def rehash() -> bytes:
        if digests_inline(None, len(body)):
            return md5_of(body)
        return await anyio.to_thread.run_sync(md5_of, body)

    return rehash
