"""Resume after a crash: pick up a multipart upload from its journal (``_pipeline.journal``).

    journal at PATH?  no  -> Create, write the journal's header, upload every part
                      yes -> same destination, plan and checksum algorithm?  else refuse
                             the file's size and mtime as recorded?           else refuse
                             ListParts (every page): the upload still there?
                                 no  -> all parts recorded and the object is ours? done;
                                        else start again (new upload, new journal)
                                 yes -> keep each recorded part S3 lists with the same ETag
                                        and size, read it back and check its checksum
                                        against the journal (else refuse: the file changed),
                                        and send only the others

Parts S3 lists that the journal does not record (in flight at the crash) are sent again:
their bytes cannot be vouched for without reading them, and a new UploadPart replaces them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .._core.checksums import PartDigest
from .._core.errors import ShortSourceError, SourceChangedError, StaleSourceError, UploadError
from .._core.plan import Part, PartPlan, plan_known_size
from .._core.records import Header, JournalError, Origin
from .._core.results import UploadResult
from .._core.verify import CompletedPart, ListedPart, same_digest, same_etag
from .._s3.errors import error_code
from .._s3.ranges import digest_range
from . import multipart
from .failures import kept_error
from .job import Job
from .journal import Journal, discard, load
from .outcome import completed, completed_meanwhile
from .producer import produce_planned
from .sources import PathSource

log = logging.getLogger("asyncup")

LIST_PAGE = 1000  # ListParts' own maximum


def check_journal(header: Header, job: Job, origin: Origin) -> None:
    """Refuse a journal that belongs to another upload, or a file that has changed since."""
    if (header.bucket, header.key) != (job.bucket, job.key):
        raise JournalError(
            f"the resume journal is for s3://{header.bucket}/{header.key}, not"
            f" s3://{job.bucket}/{job.key}"
        )
    algorithm, kind = job.args.checksum_algorithm, job.args.checksum_type
    if (header.checksum_algorithm, header.checksum_type) != (algorithm, kind):
        raise JournalError(
            f"the upload was begun with checksum {header.checksum_algorithm}"
            f" ({header.checksum_type}); resume it with the same, not {algorithm} ({kind})"
        )
    was, now = header.origin, origin
    if (was.size, was.mtime_ns) != (now.size, now.mtime_ns):
        raise StaleSourceError(
            f"{now.path} has changed since the upload began (size {was.size} -> {now.size},"
            f" mtime_ns {was.mtime_ns} -> {now.mtime_ns})"
        )


async def list_parts(job: Job) -> dict[int, ListedPart]:
    """Every part S3 holds for ``job.upload_id``, following ListParts' pages."""
    params = {
        "Bucket": job.bucket,
        "Key": job.key,
        "UploadId": job.upload_id,
        "MaxParts": LIST_PAGE,
        **job.args.control,
    }
    listed: dict[int, ListedPart] = {}
    marker: int | None = None
    while True:
        page = dict(params) if marker is None else {**params, "PartNumberMarker": marker}
        response = await job.s3.call("list_parts", page)
        for entry in response.get("Parts", []):
            checksum = next(
                (v for k, v in entry.items() if k.startswith("Checksum") and k != "ChecksumType"),
                None,
            )
            part = ListedPart(
                int(entry["PartNumber"]), str(entry["ETag"]), int(entry["Size"]), checksum
            )
            listed[part.number] = part
        following = response.get("NextPartNumberMarker")
        if not response.get("IsTruncated") or following in (None, marker):
            return listed
        marker = int(following)


def keepable(
    recorded: dict[int, CompletedPart], listed: dict[int, ListedPart], plan: PartPlan
) -> dict[int, CompletedPart]:
    """The recorded parts that S3 still holds as recorded, and that fit the plan (pure)."""
    lengths = {part.number: part.length for part in plan.parts()}
    return {
        number: part
        for number, part in recorded.items()
        if number in listed
        and same_etag(listed[number].etag, part.etag)
        and listed[number].size == part.size == lengths.get(number)
    }


async def verify_kept(
    path: str, plan: PartPlan, kept: dict[int, CompletedPart], algorithm: str | None
) -> None:
    """Read the kept parts back from ``path`` and compare each with its recorded digest:
    the journal vouches for what was sent, so the file must still hold exactly that."""
    for part in plan.parts():
        if part.number not in kept:
            continue
        try:
            digest: PartDigest | None = await digest_range(
                path, part.offset, part.length, algorithm
            )
        except ShortSourceError:
            digest = None  # the file shrank
        if digest is None or not same_digest(digest, kept[part.number].digest):
            raise StaleSourceError(
                f"{path} no longer holds the bytes sent as part {part.number}"
                f" (bytes {part.offset}..{part.offset + part.length - 1})"
            )


def missing(plan: PartPlan, kept: Iterable[int]) -> list[Part]:
    """The planned parts still to send (pure)."""
    have = set(kept)
    return [part for part in plan.parts() if part.number not in have]


async def resumable(job: Job, source: PathSource, size: int) -> UploadResult:
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
        raise kept_error(job, SourceChangedError, exc) from exc
    plan = plan_known_size(size, header.part_size)
    job.upload_id, job.parts = header.upload_id, plan.count
    try:
        listed = await list_parts(job)
    except Exception as exc:
        if error_code(exc) != "NoSuchUpload":
            raise kept_error(job, UploadError, exc) from exc
        return await _after_upload_gone(job, source, origin, plan, recorded)
    kept = keepable(recorded, listed, plan)
    try:
        await verify_kept(source.path, plan, kept, job.args.checksum_algorithm)
    except StaleSourceError as exc:
        raise kept_error(job, SourceChangedError, exc) from exc
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
    return await multipart.run(job, lambda send: produce_planned(job, source, plan, send, todo))


async def _after_upload_gone(
    job: Job, source: PathSource, origin: Origin, plan: PartPlan, recorded: dict[int, CompletedPart]
) -> UploadResult:
    """The journal's upload is gone: completed by the run that crashed (its answer lost), or
    aborted by someone. The object says which; if it is not ours, start again."""
    assert job.resume_path is not None
    if set(recorded) == {part.number for part in plan.parts()}:
        job.completed = dict(recorded)
        found = await completed_meanwhile(job)
        if found is not None:
            await discard(job.resume_path)
            return completed(job, found)
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

    return await multipart.run(
        job, lambda send: produce_planned(job, source, plan, send), created=start_journal
    )
