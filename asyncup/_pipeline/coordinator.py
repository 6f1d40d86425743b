"""The coordinator: decides single PutObject or multipart, and runs it.

    open source -> size known?  -- below threshold --> PutObject (``single``)
                   size unknown -> read up to threshold -- ended below it --> PutObject
    otherwise   -> multipart (``multipart``): Create -> pipeline -> Complete | Abort
                   with ``resume=PATH``: from the journal's parts (``resume``)

A file's parts are sent from the file itself on asyncup's own clients. Every failure reaches
the caller as one ``UploadError`` (``failures``); cancellation is never caught for good.
"""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread

from .._core.plan import plan_known_size, use_multipart
from .._core.results import UploadResult
from . import multipart, single
from .failures import failure, root_cause
from .job import Job
from .producer import produce_planned, produce_stream, read_stream_head
from .resume import resumable
from .sources import READ_AHEAD, BytesSource, PathSource, Source

log = logging.getLogger("asyncup")


async def upload(job: Job, source: Source) -> UploadResult:
    try:
        return await _upload(job, source)
    finally:
        job.emit("done")
        try:
            if _closes_at_once(source):
                await source.aclose()  # nothing to wait for: no scope to shield it in
            else:
                with anyio.move_on_after(job.config.abort_timeout, shield=True):
                    await source.aclose()
        finally:
            # The pooled buffers go now, not when the job is collected: a failed upload's
            # job lives on in its exception's traceback, and a cycle waits for the GC.
            job.pool.clear(job.lease)
            job.lease.release_all()


def _closes_at_once(source: Source) -> bool:
    """Whether closing ``source`` awaits nothing (bytes, or a file already closed)."""
    return isinstance(source, BytesSource) or (isinstance(source, PathSource) and source.fd < 0)


async def _open_file(job: Job, source: PathSource) -> None:
    """Open the file; one small enough for a PutObject (up to ``READ_AHEAD`` bytes) is read
    whole in the same thread hop, with budget reserved for it first (none free now: it is
    read after the open, as a larger one is)."""
    limit = min(READ_AHEAD, job.config.multipart_threshold)
    reserved = None
    if _one_request(job, 1) and job.resume_path is None:
        reserved = job.lease.try_acquire(limit + 1)
    if reserved is None:
        await source.open(opener=job.opener)
        return
    try:
        await source.open(read_below=limit, opener=job.opener)
    finally:
        kept = 0 if source.contents is None else len(source.contents)
        job.lease.release(reserved - kept)


def _one_request(job: Job, size: int) -> bool:
    """PutObject for an object this small, unless ``integrity="require"`` must see its write
    checked before the object exists: where the ETag will not be an MD5 (SSE-C, SSE-KMS) on
    a store not known to echo checksums, it goes as a one-part multipart upload instead,
    which is aborted, never completed, if nothing can verify it."""
    if use_multipart(size, job.config.multipart_threshold):
        return False
    unknowable = not job.args.etag_is_md5 and job.store.verifies is not True
    return size == 0 or not (job.config.integrity == "require" and unknowable)


async def _upload(job: Job, source: Source) -> UploadResult:
    config = job.config
    try:
        if isinstance(source, PathSource):
            await _open_file(job, source)
        else:
            await source.open()
    except Exception as exc:
        raise failure(job, exc) from root_cause(exc)
    size = job.total = source.size
    # asyncup's own clients send bodies as they are given: a part buffer is made, pages and
    # all, off the event loop, and a file's parts are sent from the file.
    own = job.mapped_buffers = job.s3.sends_from_files
    if size is not None:
        if _one_request(job, size):
            return await single.put_object(job, source, size)
        if isinstance(source, PathSource) and source.regular and own:
            # Parts are sent from the file itself, none held in memory (sendfile over HTTP):
            # asyncup's own clients know how (``_s3.ranges.stream_ranges``).
            job.in_place = source
        if job.resume_path is not None:
            assert isinstance(source, PathSource)
            return await resumable(job, source, size)
        plan = plan_known_size(size, config.part_size)  # may refuse: before any request
        return await multipart.run(job, lambda send: produce_planned(job, source, plan, send))

    try:
        head, ended = await read_stream_head(job, source)
    except Exception as exc:
        raise failure(job, exc) from root_cause(exc)
    size = sum(part.length for part in head)
    if ended and _one_request(job, size):
        body = head[0].body if len(head) == 1 else bytearray().join(p.body for p in head)
        return await single.put_body(job, body)
    return await multipart.run(job, lambda send: produce_stream(job, source, head, ended, send))
