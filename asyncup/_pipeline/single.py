"""PutObject: an object below ``multipart_threshold`` in one request.

The body is read whole (a stream's head is already in memory), its checksum computed off
the event loop, and sent with the Uploader's retries; a PutObject whose answer was lost is
confirmed from the object at the key before it is reported as failed.
"""

from __future__ import annotations

import logging
from functools import partial

from .._core.checksums import Buffer, PartDigest
from .._core.errors import (
    BadResponseError,
    SourceSizeError,
)
from .._core.results import UploadResult
from .._core.verify import (
    Verified,
    check_write,
    put_params,
    same_etag,
)
from .._s3.calls import Response
from .failures import failure, root_cause
from .integrity import buffer_md5, check_answer, learn_for_small
from .job import Job
from .outcome import Retries, may_have_landed, never_sent, ours_meanwhile, result
from .sources import BytesSource, PathSource, Source

log = logging.getLogger("asyncup")


async def put_object(job: Job, source: Source, size: int) -> UploadResult:
    if isinstance(source, BytesSource) and source.frozen is not None:
        return await put_body(job, source.frozen)  # no copy, and no memory of asyncup's
    try:
        body: bytearray | None
        if isinstance(source, PathSource) and source.contents is not None:
            contents, source.contents = source.contents, None  # read when it was opened
            body = contents if len(contents) == size else None
        elif isinstance(source, PathSource):
            body = await job.read_object(source.readinto_and_close, size)
        else:
            body = await job.read_object(source.readinto, size)
        if body is None:
            raise SourceSizeError(
                f"source did not hold the {size} bytes expected (did it change while being read?)",
                None,
            )
    except Exception as exc:
        raise failure(job, exc) from root_cause(exc)
    return await put_body(job, body)


async def put_body(job: Job, body: Buffer | bytes) -> UploadResult:
    try:
        await learn_for_small(job)
        digest = await job.digest(body)
        params = put_params(job.bucket, job.key, body, job.args, digest)

        written: Response | None = None  # the last answer whose ETag the bytes sent disown
        verified = Verified()

        async def check(response: Response) -> None:
            nonlocal digest, verified, written
            written = None
            try:
                digest, verified = await check_answer(
                    job, response, digest, "the object", buffer_md5(body)
                )
            except BadResponseError:
                written = response if response.get("ETag") else None
                raise

        retries = Retries(job.retried(1))
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
            if never_sent(retries, exc):
                job.unsent = "PutObject"
            if isinstance(exc, BadResponseError) and written is not None:
                await remove_corrupt(job, written)
                raise
            if not may_have_landed(retries, exc):
                raise
            found = await ours_meanwhile(job, "PutObject", partial(_put_matches, job, digest))
            if found is None:
                job.unconfirmed = "PutObject"
                raise
            response, verified = found
    except Exception as exc:
        raise failure(job, exc) from root_cause(exc)
    await job.progress(len(body), 1)
    return result(job, response, size=len(body), parts=1, verified=verified)


async def remove_corrupt(job: Job, written: Response) -> None:
    """Every attempt stored other bytes than those sent: delete what the last one wrote (the
    version it made, or the object while it still has the ETag it was answered with), so
    that nothing corrupt is left at the key."""
    params = {"Bucket": job.bucket, "Key": job.key, **job.args.control}
    version = written.get("VersionId")
    try:
        if version in (None, "null"):
            head = await job.s3.call("head_object", {**params, **job.args.part})
            if not same_etag(str(head.get("ETag", "")), str(written["ETag"])):
                job.corrupt = "replaced"  # someone else's object is there now: not ours to delete
                return
            await job.s3.call("delete_object", params)
        else:
            await job.s3.call("delete_object", {**params, "VersionId": version})
    except Exception as exc:
        log.warning("s3://%s/%s: could not delete a corrupt write: %s", job.bucket, job.key, exc)
        job.corrupt = "left"
        return
    job.corrupt = "deleted"


def _put_matches(job: Job, digest: PartDigest, head: Response) -> Verified | None:
    try:
        return check_write(job.args, head, digest, "the object")
    except BadResponseError:
        return None
