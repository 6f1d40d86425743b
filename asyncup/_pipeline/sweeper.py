"""The orphan sweeper: list unfinished multipart uploads, abort the stale ones.

An unfinished multipart upload is billed until someone aborts it (a crashed process, a
client without asyncup's abort-on-failure). ``list_uploads`` pages through
ListMultipartUploads; ``abort_uploads`` aborts every upload initiated before a cutoff,
a few at a time, and reports each failure instead of stopping at the first.

Every request goes through ``S3.call``, so asyncup's retry policy applies.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from .._core.errors import AsyncupError
from .._s3.calls import S3, Response
from .._s3.errors import error_code

PAGE_SIZE = 1000
"""Uploads per ListMultipartUploads page: S3's own maximum and default."""
ABORTS_IN_FLIGHT = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingUpload:
    """A multipart upload that was created and neither completed nor aborted yet.

    ``initiated`` is timezone-aware (UTC). ``initiator`` and ``owner`` are the display
    names (or ids) S3 gave, when it gave them. Example::

        async with asyncup.Uploader() as up:
            async for upload in up.list_uploads("bucket", "incoming/"):
                print(upload.initiated, upload.key, upload.upload_id)
    """

    bucket: str
    key: str
    upload_id: str
    initiated: datetime.datetime
    storage_class: str | None = None
    initiator: str | None = None
    owner: str | None = None


AbortOutcome = tuple[PendingUpload, Exception | None]
"""An upload and why aborting it failed, or None when it is gone."""


async def list_uploads(
    s3: S3, bucket: str, prefix: str = "", *, page_size: int = PAGE_SIZE
) -> AsyncIterator[PendingUpload]:
    """Every unfinished multipart upload under ``s3://bucket/prefix``, page by page.

    The next page starts at the markers the server returned (NextKeyMarker and
    NextUploadIdMarker, each sent only when given: SeaweedFS pages by upload id alone).
    """
    markers: dict[str, str] = {}
    while True:
        params = {"Bucket": bucket, "Prefix": prefix, "MaxUploads": page_size, **markers}
        page = await s3.call("list_multipart_uploads", params)
        for entry in page.get("Uploads", []):
            yield _pending(bucket, entry)
        if not page.get("IsTruncated"):
            return
        following = _next_markers(page)
        if not following or following == markers:
            raise AsyncupError(
                f"ListMultipartUploads on s3://{bucket}/{prefix} answered a truncated page"
                " without a new marker to continue from"
            )
        markers = following


def _next_markers(page: Response) -> dict[str, str]:
    following = {
        "KeyMarker": page.get("NextKeyMarker"),
        "UploadIdMarker": page.get("NextUploadIdMarker"),
    }
    return {name: value for name, value in following.items() if value}


def _pending(bucket: str, entry: Mapping[str, Any]) -> PendingUpload:
    initiated: datetime.datetime = entry["Initiated"]
    if initiated.tzinfo is None:  # S3 sends UTC ("...Z"); a naive one can only mean that
        initiated = initiated.replace(tzinfo=datetime.UTC)
    return PendingUpload(
        bucket=bucket,
        key=entry["Key"],
        upload_id=entry["UploadId"],
        initiated=initiated.astimezone(datetime.UTC),
        storage_class=entry.get("StorageClass") or None,
        initiator=_who(entry.get("Initiator")),
        owner=_who(entry.get("Owner")),
    )


def _who(principal: Mapping[str, str] | None) -> str | None:
    if not principal:
        return None
    return principal.get("DisplayName") or principal.get("ID") or None


def cutoff(
    older_than: datetime.timedelta, now: datetime.datetime | None = None
) -> datetime.datetime:
    """The instant before which an upload counts as stale; ``ValueError`` on bad arguments."""
    if not isinstance(older_than, datetime.timedelta) or older_than < datetime.timedelta(0):
        raise ValueError(f"older_than must be a timedelta >= 0; got {older_than!r}")
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(datetime.UTC))")
    return now - older_than


async def stale_uploads(
    s3: S3, bucket: str, prefix: str, before: datetime.datetime, *, page_size: int = PAGE_SIZE
) -> list[PendingUpload]:
    """The uploads under ``s3://bucket/prefix`` initiated before ``before``."""
    return [
        upload
        async for upload in list_uploads(s3, bucket, prefix, page_size=page_size)
        if upload.initiated < before
    ]


async def abort_each(
    s3: S3, uploads: Iterable[PendingUpload], *, in_flight: int = ABORTS_IN_FLIGHT
) -> list[AbortOutcome]:
    """Abort every upload, ``in_flight`` at a time; the outcomes in the order given.

    An abort answering NoSuchUpload counts as done (someone else finished or aborted it);
    any other failure (after asyncup's retries) is that upload's outcome, and the others go on.
    """
    uploads = list(uploads)
    outcomes: list[Exception | None] = [None] * len(uploads)
    queue: Iterator[int] = iter(range(len(uploads)))

    async def worker() -> None:
        for index in queue:  # shared by the workers: each index is taken once
            outcomes[index] = await _abort(s3, uploads[index])

    async with anyio.create_task_group() as tg:
        for _ in range(min(in_flight, len(uploads))):
            tg.start_soon(worker)
    return list(zip(uploads, outcomes, strict=True))


async def _abort(s3: S3, upload: PendingUpload) -> Exception | None:
    params = {"Bucket": upload.bucket, "Key": upload.key, "UploadId": upload.upload_id}
    try:
        await s3.call("abort_multipart_upload", params)
    except Exception as exc:  # cancellation is a BaseException and propagates
        return None if error_code(exc) == "NoSuchUpload" else exc
    return None


async def abort_uploads(
    s3: S3,
    bucket: str,
    prefix: str = "",
    *,
    older_than: datetime.timedelta,
    dry_run: bool = False,
    now: datetime.datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> list[AbortOutcome]:
    """Abort every upload under ``s3://bucket/prefix`` initiated before ``now - older_than``.

    Returns ``(upload, None)`` for each upload aborted (or already gone) and
    ``(upload, error)`` for each that could not be; with ``dry_run`` nothing is sent but the
    listing, and every stale upload comes back with None. Listing errors are raised.
    """
    before = cutoff(older_than, now)
    stale = await stale_uploads(s3, bucket, prefix, before, page_size=page_size)
    if dry_run:
        return [(upload, None) for upload in stale]
    return await abort_each(s3, stale)


async def abort_twins(
    s3: S3, bucket: str, key: str, ours: str, within: float, began: datetime.datetime | None
) -> tuple[datetime.datetime | None, int]:
    """Abort the uploads of ``key`` begun within ``within`` seconds of upload ``ours``.

    A CreateMultipartUpload that timed out and was retried may still have succeeded on the
    server, and S3 has no idempotency token for Create: the earlier attempt's upload is an
    orphan nobody knows the id of. Its twin is found by key and time, on the server's clock:
    its Initiated near our own upload's (``began``, or read from the listing when None).
    An upload of the same key begun by someone else in that same window would be aborted
    too: the window is only as wide as the retried Create took. Returns ``began`` and how
    many were aborted; failures are left for the sweeper.
    """
    uploads = [upload async for upload in list_uploads(s3, bucket, key) if upload.key == key]
    if began is None:
        mine = [upload.initiated for upload in uploads if upload.upload_id == ours]
        if not mine:
            return None, 0
        began = mine[0]
    slack = datetime.timedelta(seconds=within + 1)
    twins = [
        upload
        for upload in uploads
        if upload.upload_id != ours and abs(upload.initiated - began) <= slack
    ]
    outcomes = await abort_each(s3, twins)
    return began, sum(error is None for _, error in outcomes)
