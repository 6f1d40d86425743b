"""Resume after a crash: pick up a multipart upload from its journal (``_journal``).

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
from dataclasses import dataclass

from .._core.checksums import PartDigest
from .._core.plan import Part, PartPlan
from .._core.verify import CompletedPart
from .._s3.payloads import ShortSourceError
from .._s3.ranges import digest_range
from .job import Job
from .journal import Header, JournalError, Origin

log = logging.getLogger("asyncup")

LIST_PAGE = 1000  # ListParts' own maximum


class StaleSourceError(Exception):
    """The file is not the one the journal's parts were read from."""


@dataclass(frozen=True, slots=True)
class ListedPart:
    number: int
    etag: str
    size: int


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
            part = ListedPart(int(entry["PartNumber"]), str(entry["ETag"]), int(entry["Size"]))
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
        and _same_etag(listed[number].etag, part.etag)
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
        if digest is None or not _same_digest(digest, kept[part.number].digest):
            raise StaleSourceError(
                f"{path} no longer holds the bytes sent as part {part.number}"
                f" (bytes {part.offset}..{part.offset + part.length - 1})"
            )


def _same_digest(a: PartDigest, b: PartDigest) -> bool:
    if a.checksum is not None or b.checksum is not None:
        return a.checksum == b.checksum
    return a.md5 == b.md5


def _same_etag(a: str, b: str) -> bool:
    return a.strip('" ').lower() == b.strip('" ').lower()


def missing(plan: PartPlan, kept: Iterable[int]) -> list[Part]:
    """The planned parts still to send (pure)."""
    have = set(kept)
    return [part for part in plan.parts() if part.number not in have]
