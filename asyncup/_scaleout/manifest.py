"""A parallel upload's crash-safe state, and a new coordinator taking it over.

The manifest is a resume journal (``_pipeline.journal``): its header is the handle (the journal's
own fields plus ``Header.parallel``), its lines the parts acknowledged, fsynced as results
come in. ``resume`` reads it back, refuses a changed file, and asks ListParts which of the
recorded parts S3 still holds as recorded; every other part is to be sent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from .._core.handle import ParallelUpload, PartResult
from .._pipeline.failures import failure, root_cause
from .._pipeline.journal import Journal, load
from .._pipeline.resume import keepable, list_parts
from .._pipeline.uploader import Uploader
from .._s3.errors import error_code
from .hosts import check_source, host_args, host_job

log = logging.getLogger("asyncup")


class Manifest:
    """A parallel upload's crash-safe state: a resume journal (``asyncup._pipeline.journal``) whose
    header is the handle and whose lines are the parts acknowledged, fsynced as they come.
    A new coordinator reads it back with ``resume``."""

    def __init__(self, journal: Journal, handle: ParallelUpload) -> None:
        self._journal = journal
        self.handle = handle

    @property
    def path(self) -> str:
        return self._journal.path

    @classmethod
    async def create(cls, path: str | os.PathLike[str], handle: ParallelUpload) -> Manifest:
        journal = await Journal.create(os.fspath(path), handle.header())
        return cls(journal, handle)

    @classmethod
    async def load(cls, path: str | os.PathLike[str]) -> tuple[Manifest, list[PartResult]] | None:
        """The manifest at ``path`` and the parts it records; None when there is none."""
        loaded = await load(os.fspath(path))
        if loaded is None:
            return None
        header, parts = loaded
        journal = Journal(os.fspath(path), header)
        manifest = cls(journal, ParallelUpload.from_header(header))
        return manifest, [PartResult.of(parts[number]) for number in sorted(parts)]

    async def record(self, results: Iterable[PartResult]) -> None:
        await self._journal.record_many(result.completed() for result in results)

    async def discard(self) -> None:
        await self._journal.discard()


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a new coordinator takes over: the manifest, the parts S3 still holds as it
    records them, and the part numbers still to send."""

    manifest: Manifest
    results: list[PartResult]
    todo: tuple[int, ...]


async def resume(
    up: Uploader, path: str | os.PathLike[str], *, sse_customer_key: str | bytes | None = None
) -> Resumed | None:
    """Take over the upload whose manifest is at ``path`` (None if there is no manifest).

    Refuses a file changed since (size, mtime: ``SourceChangedError``). ListParts (every
    page) decides which recorded parts stand; parts S3 holds that the manifest does not
    record (in flight when the coordinator died) are sent again. An upload that is gone
    raises ``UploadError`` with code NoSuchUpload, unless every part is recorded: then
    ``todo`` is empty and ``complete`` finds out whether the object is already this one.
    """
    loaded = await Manifest.load(path)
    if loaded is None:
        return None
    manifest, recorded = loaded
    handle = manifest.handle
    job = host_job(
        up, handle.bucket, handle.key, handle.upload_id, host_args(handle, sse_customer_key)
    )
    await check_source(job, handle)
    try:
        listed = await list_parts(job)
    except Exception as exc:
        if error_code(exc) == "NoSuchUpload" and len(recorded) == handle.part_count:
            return Resumed(manifest, recorded, ())
        raise failure(job, exc) from root_cause(exc)
    completed = {result.number: result.completed() for result in recorded}
    kept = keepable(completed, listed, handle.plan)
    todo = tuple(n for n in range(1, handle.part_count + 1) if n not in kept)
    results = [PartResult.of(part) for part in kept.values()]
    log.info(
        "s3://%s/%s: taking over upload %s, %d of %d parts held",
        handle.bucket,
        handle.key,
        handle.upload_id,
        len(kept),
        handle.part_count,
    )
    return Resumed(manifest, results, todo)
