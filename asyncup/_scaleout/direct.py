"""Direct uploads: a client without credentials sends the parts to presigned URLs; the
backend begins, signs, verifies and completes (the data never passes through it).

    begin(up, bucket, key, size)         refusals first (SSE-C, sizes, 10,000 parts, URL
                                         lifetime), then CreateMultipartUpload -> handle
    sign_parts(up, handle, ...)          presigned UploadPart URLs, a batch at a time: the
                                         parts asked for, or those S3 does not hold yet
                                         (ListParts, every page: resume)
    complete(up, handle, reported)       ListParts -> ``_core.direct.check_parts`` -> refused
                                         part by part (nothing completed), or Complete,
                                         its answer checked as ``upload()`` checks it
    abort(up, handle)                    Abort until ListParts answers NoSuchUpload

A client that never comes back leaves an unfinished multipart upload like any other: the
sweeper (``asyncup uploads abort --older-than``) removes it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Mapping
from typing import Any

import anyio.to_thread

from .._core.checksums import PartDigest, RunningDigest
from .._core.direct import (
    BATCH,
    MAX_BATCH,
    DirectUpload,
    PartURL,
    Refusals,
    ReportedPart,
    check_checksum,
    check_expires_in,
    check_parts,
    direct_plan,
    refuse_sse_c,
)
from .._core.errors import BadResponseError, IntegrityError, UploadError
from .._core.params import CONDITIONAL_ARGS, EVERY_REQUEST_ARGS, RoutedArgs, route
from .._core.results import UploadResult
from .._core.verify import CompletedPart
from .._pipeline import integrity, multipart
from .._pipeline.failures import failure, root_cause
from .._pipeline.job import Job
from .._pipeline.outcome import completed, completed_meanwhile
from .._pipeline.resume import list_parts
from .._pipeline.single import remove_corrupt
from .._pipeline.uploader import Uploader, check_destination
from .._s3.calls import Response
from .._s3.errors import error_code
from .._s3.presign import presign_part
from .hosts import create_upload, host_job

READ_SLICE = 1024 * 1024  # read back and hashed a slice at a time, each in a worker thread


class PartsRefusedError(UploadError):
    """``complete`` refused the parts a client reported: nothing was completed, the upload
    is still there. Each tuple names parts: ``missing`` (S3 does not hold them, or no
    report names them), ``extra`` (outside the plan, or reported twice), ``wrong_size``
    (held at another size than planned), ``mismatched`` (the ETag or checksum reported is
    not what S3 holds). Sign those parts again (``sign_parts(up, handle, numbers)``),
    have the client send them, and complete again."""

    def __init__(self, message: str, *, refusals: Refusals, **details: Any) -> None:
        super().__init__(message, **details)
        self.missing = refusals.missing
        self.extra = refusals.extra
        self.wrong_size = refusals.wrong_size
        self.mismatched = refusals.mismatched


async def begin(
    up: Uploader,
    bucket: str,
    key: str,
    size: int,
    *,
    part_size: int | None = None,
    extra_args: Mapping[str, Any] | None = None,
    expires_in: int = 3600,
) -> DirectUpload:
    """Create the multipart upload of an object of ``size`` bytes that a client will send.

    ``part_size``: as given (refused if it needs more than 10,000 parts); by default the
    Uploader's, grown to stay within 10,000 parts. ``extra_args`` as for ``upload()``: the
    object's attributes, ChecksumAlgorithm (default the Uploader's ``checksum_algorithm``;
    None for none), IfNoneMatch, RequestPayer, ExpectedBucketOwner; SSE-C is refused.
    ``expires_in``: how long each URL lives (at most 7 days). Everything is checked before
    the first request. Cancelled while Create is in flight, the upload is aborted.
    """
    check_destination(bucket, key)
    refuse_sse_c(extra_args)
    check_expires_in(expires_in)
    cut = direct_plan(size, part_size or up.config.part_size, exact=part_size is not None)
    extra = dict(extra_args or {})
    algorithm = up.config.checksum_algorithm
    if "ChecksumAlgorithm" in extra and extra["ChecksumAlgorithm"] is None:
        algorithm = extra.pop("ChecksumAlgorithm")  # None said explicitly: no checksum
    args = route(extra, algorithm)
    job = host_job(up, bucket, key, None, args)
    upload_id = await create_upload(up, job)
    kept = EVERY_REQUEST_ARGS | CONDITIONAL_ARGS
    handle = DirectUpload(
        bucket=bucket,
        key=key,
        upload_id=upload_id,
        size=size,
        part_size=cut.part_size,
        part_count=cut.count,
        checksum_algorithm=args.checksum_algorithm,
        checksum_type=args.checksum_type,
        expires_in=expires_in,
        request_args=tuple(sorted((k, v) for k, v in args.complete.items() if k in kept)),
    )
    return handle


async def sign_parts(
    up: Uploader,
    handle: DirectUpload,
    numbers: Iterable[int] | None = None,
    *,
    checksums: Mapping[int, str] | None = None,
    limit: int = BATCH,
) -> list[PartURL]:
    """Presigned URLs for parts of ``handle``'s upload, freshly signed, at most ``limit``.

    ``numbers``: those parts, whether S3 holds them or not (to send a part again). Without
    them: the parts S3 does not hold yet at their planned size (ListParts, every page), in
    order, from those named in ``checksums`` if given, else from all. When the upload has
    a checksum algorithm, ``checksums`` (part number: base64) must give each part's: it is
    signed into the URL, so the store refuses any other bytes. Bad arguments are refused
    before any request.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
        raise ValueError(f"limit must be between 1 and {MAX_BATCH}; got {limit!r}")
    given = {int(n): c for n, c in (checksums or {}).items()}
    for number in given:
        handle.part(number)
    asked = None if numbers is None else sorted(set(numbers))
    for number in asked or ():
        handle.part(number)
    if asked is not None and len(asked) > limit:
        raise ValueError(f"{len(asked)} parts asked for; at most {limit} at a time")
    candidates = asked or sorted(given) or list(range(1, handle.part_count + 1))
    if handle.checksum_algorithm is not None:
        for number in candidates:
            given[number] = check_checksum(handle.checksum_algorithm, number, given.get(number))
    wanted = asked
    if wanted is None:
        held = await _held(up, handle)
        wanted = [n for n in candidates if n not in held][:limit]
    return [await _sign(up, handle, number, given.get(number)) for number in wanted]


async def complete(
    up: Uploader,
    handle: DirectUpload,
    reported: Iterable[ReportedPart | Mapping[str, Any]],
    *,
    read_back: bool | None = None,
) -> UploadResult:
    """Complete the upload once the client's report and what S3 holds agree with the plan.

    Every planned part must be reported once, held by S3 at its planned size, with the
    reported ETag (and checksum): else ``PartsRefusedError`` naming the parts, and nothing
    is completed. Complete's answer is then checked against the parts as ``upload()``
    checks it; the result says who vouched for the bytes: "store" where the store is known
    to verify checksums (a probe, once per client). Elsewhere (``read_back=None``, the
    default) the object is read back after Complete, each part's checksum computed off the
    event loop and compared with the client's: a part that differs (bytes changed on the way
    to a store that checks nothing) makes an ``IntegrityError`` naming it, and the object is
    deleted; the result then says "asyncup". ``read_back=False`` skips that download (the
    result says nobody verified), ``True`` reads back on any store. An upload without a
    checksum algorithm is not read back. An upload found gone whose object is already this
    one is accepted.
    """
    reports = [ReportedPart.of(part) for part in reported]
    algorithm = handle.checksum_algorithm
    if algorithm is not None:
        for part in reports:
            check_checksum(algorithm, part.number, part.checksum)
    job = _job(up, handle)
    try:
        listed = await list_parts(job)
    except Exception as exc:
        if error_code(exc) == "NoSuchUpload":
            found = await _completed_earlier(job, handle, reports)
            if found is not None:
                return found
        raise failure(job, exc) from root_cause(exc)
    refusals = check_parts(handle, reports, listed)
    if refusals:
        first = min(refusals.missing + refusals.extra + refusals.wrong_size + refusals.mismatched)
        raise PartsRefusedError(
            f"nothing was completed: {refusals.describe()}",
            refusals=refusals,
            bucket=handle.bucket,
            key=handle.key,
            upload_id=handle.upload_id,
            part_number=first,
        )
    by_number = {part.number: part for part in reports}
    _take_reports(job, handle, by_number)
    await integrity.learn_alone(job)
    reading = read_back if read_back is not None else not job.store.verifies
    reading = reading and algorithm is not None
    try:
        response = await multipart.complete(job)
        differ = await _read_back(job, handle, by_number, response) if reading else []
    except Exception as exc:
        raise failure(job, exc) from root_cause(exc)
    if differ:
        await remove_corrupt(job, response)
        fate = {"deleted": "deleted", "replaced": "replaced since", "left": "NOT deleted"}
        raise IntegrityError(
            f"parts {differ[:10]} of the object are not the bytes the client hashed (changed"
            " on the way to a store that does not check checksums): the object was"
            f" {fate.get(job.corrupt or '', 'NOT deleted')}",
            bucket=job.bucket,
            key=job.key,
            upload_id=job.upload_id,
            part_number=differ[0],
        )
    if job.store.verifies:
        job.write_checks.add("store")
    elif reading:
        job.write_checks.add("asyncup")
    else:
        job.write_checks.add(None)
        job.unverified_reason = (
            "the parts went from the client straight to a store not known to verify their"
            " checksums, and the object was not read back"
        )
    return completed(job, response)


async def abort(up: Uploader, handle: DirectUpload) -> bool:
    """Abort the upload, again until ListParts answers NoSuchUpload (a client still sending
    may land a part after an abort). True once it is confirmed gone."""
    return await multipart.abort(_job(up, handle))


def _job(up: Uploader, handle: DirectUpload) -> Job:
    extra: dict[str, Any] = dict(handle.request_args)
    if handle.checksum_algorithm is not None:
        extra["ChecksumAlgorithm"] = handle.checksum_algorithm
        extra["ChecksumType"] = handle.checksum_type
    args: RoutedArgs = route(extra, None)
    return host_job(up, handle.bucket, handle.key, handle.upload_id, args)


async def _held(up: Uploader, handle: DirectUpload) -> set[int]:
    """The parts S3 holds at their planned size."""
    job = _job(up, handle)
    try:
        listed = await list_parts(job)
    except Exception as exc:
        raise failure(job, exc) from root_cause(exc)
    plan = {part.number: part.length for part in handle.plan.parts()}
    return {n for n, part in listed.items() if plan.get(n) == part.size}


async def _sign(up: Uploader, handle: DirectUpload, number: int, checksum: str | None) -> PartURL:
    part = handle.part(number)
    params: dict[str, Any] = {
        "Bucket": handle.bucket,
        "Key": handle.key,
        "UploadId": handle.upload_id,
        "PartNumber": number,
        "ContentLength": part.length,  # signed: the store refuses a body of another size
        **handle.control,
    }
    if handle.checksum_algorithm is not None:
        params[f"Checksum{handle.checksum_algorithm}"] = checksum
    expires_at = int(time.time()) + handle.expires_in
    url, headers = await presign_part(up.client, params, handle.expires_in)
    return PartURL(
        number=number,
        offset=part.offset,
        length=part.length,
        url=url,
        headers=headers,
        expires_at=expires_at,
    )


def _take_reports(job: Job, handle: DirectUpload, reports: Mapping[int, ReportedPart]) -> None:
    job.completed = {
        part.number: CompletedPart(
            part.number,
            reports[part.number].etag,
            PartDigest(checksum=_raw(reports[part.number].checksum)),
            part.length,
        )
        for part in handle.plan.parts()
    }


async def _read_back(
    job: Job, handle: DirectUpload, reports: Mapping[int, ReportedPart], written: Response
) -> list[int]:
    """Read the completed object, part by part: the parts whose checksum is not the one
    their client reported."""
    algorithm = handle.checksum_algorithm
    params = {"Bucket": job.bucket, "Key": job.key, **job.args.control}
    version = written.get("VersionId")
    if version not in (None, "null"):
        params["VersionId"] = version
    differ = []
    answer = await job.s3.call("get_object", params)
    async with answer["Body"] as body:
        for part in handle.plan.parts():
            running = RunningDigest(algorithm)
            left = part.length
            while left:
                chunk = await body.read(min(READ_SLICE, left))
                if not chunk:
                    raise BadResponseError(f"the object read back ended inside part {part.number}")
                await anyio.to_thread.run_sync(running.update, memoryview(chunk))
                left -= len(chunk)
            if running.digest().checksum_b64 != reports[part.number].checksum:
                differ.append(part.number)
    return differ


def _raw(checksum: str | None) -> bytes | None:
    return None if checksum is None else base64.b64decode(checksum)


async def _completed_earlier(
    job: Job, handle: DirectUpload, reports: list[ReportedPart]
) -> UploadResult | None:
    """The upload is gone: the object at the key may be this one, completed by a call whose
    answer was lost. Its checksum or ETag must be the one the reported parts imply."""
    latest = {part.number: part for part in reports}
    if set(latest) != set(range(1, handle.part_count + 1)):
        return None
    _take_reports(job, handle, latest)
    found = await completed_meanwhile(job)
    return None if found is None else completed(job, found)
