"""The producer: reads the source part by part into the bounded queue.

``send`` blocks while the queue is full, so a slow upload slows the reading of the source
(for a web request: the client's socket). The producer holds at most one part of its own,
the one it is filling or waiting to hand over.
"""

from __future__ import annotations

from functools import partial

from anyio.streams.memory import MemoryObjectSendStream

from .._core.errors import SourceSizeError, StreamTooLongError
from .._core.plan import MAX_PARTS, Part, PartPlan, stream_part_size
from .job import FilePart, FilledPart, Job, QueuedPart, Reader
from .sources import PathSource, Source


async def produce_planned(
    job: Job,
    source: Source,
    plan: PartPlan,
    send: MemoryObjectSendStream[QueuedPart],
    only: list[Part] | None = None,
) -> None:
    """Send the parts of a source of known size; the source must hold exactly ``plan.size``.

    ``only``: send just these parts, each read at its own offset (a resumed upload; the
    source is then a file, ``PathSource``). With ``job.in_place`` (a file), the parts are
    sent as ``FilePart``s, read by the workers, and only the file's end is checked here."""
    in_place = job.in_place is not None
    async with send:
        for planned in plan.parts() if only is None else only:
            if in_place:
                await send.send(FilePart(planned.number, planned.offset, planned.length))
                continue
            read = _reader(source, None if only is None else planned.offset)
            part = await job.read_part(read, planned.number, planned.length, plan.part_size)
            if part.length != planned.length:
                raise SourceSizeError(
                    f"source ended after {planned.offset + part.length} bytes,"
                    f" {plan.size} were expected (did it change while being read?)",
                    planned.number,
                )
            await send.send(part)
            del part  # it belongs to a worker now: once recycled, its bytes are free
        job.done_reading()
        if in_place:
            return  # its parts are read later, by the workers: ``check_file_end`` then
        read = _reader(source, None if only is None else plan.size)
        if await read(memoryview(bytearray(1))):
            raise _grown(plan.size)


async def check_file_end(job: Job) -> None:
    """A file whose parts were sent from where they lie still ends where it did, now that
    every part has been read."""
    source, size = job.in_place, job.total
    assert source is not None
    assert size is not None
    if await source.readinto_at(memoryview(bytearray(1)), size):
        raise _grown(size)


def _grown(size: int) -> SourceSizeError:
    return SourceSizeError(
        f"source holds more than the {size} bytes expected (did it change while being read?)",
        None,
    )


def _reader(source: Source, offset: int | None) -> Reader:
    """What fills a buffer: the source read on, or a file read at ``offset``."""
    if offset is None:
        return source.readinto
    assert isinstance(source, PathSource)
    return partial(source.readinto_at, offset=offset)


async def read_stream_head(job: Job, source: Source) -> tuple[list[FilledPart], bool]:
    """Read the first parts of a stream of unknown length, to choose PutObject or multipart.

    Reads until ``multipart_threshold`` bytes are in hand, the stream ends, or the memory
    bound is reached (a threshold above it cannot be honoured for a stream). Only the first
    part may wait for budget: the head has no consumer yet, so waiting while holding parts
    could deadlock uploads sharing an Uploader; when the budget is short, the upload goes
    multipart with what it has. Returns the parts and whether the stream ended.
    """
    config = job.config
    most = max(
        1, min(config.concurrency + config.read_ahead + 1, job.lease.capacity // config.part_size)
    )
    head: list[FilledPart] = []
    total = 0
    while True:
        size = stream_part_size(len(head) + 1, config.part_size)
        number = len(head) + 1
        if head:
            part = await job.try_read_part(source.readinto, number, size, size)
        else:
            part = await job.read_part(source.readinto, number, size, size)
        if part is None:
            return head, False
        if part.length == 0 and head:
            job.recycle(part)
            return head, True
        head.append(part)
        total += part.length
        if part.length < size:
            return head, True
        if total >= config.multipart_threshold or len(head) >= most:
            return head, False


async def produce_stream(
    job: Job,
    source: Source,
    head: list[FilledPart],
    ended: bool,
    send: MemoryObjectSendStream[QueuedPart],
) -> None:
    """Send the parts of a stream of unknown length, the first ones (``head``) already read.

    Part sizes grow with the stream (``stream_part_size``) so that it is not cut off at
    part_size x 10,000.
    """
    async with send:
        first = len(head) + 1
        while head:
            await send.send(head.pop(0))
        if ended:
            job.done_reading()
            return
        for number in range(first, MAX_PARTS + 1):
            size = stream_part_size(number, job.config.part_size)
            part = await job.read_part(source.readinto, number, size, size)
            if part.length == 0:
                job.done_reading()
                job.recycle(part)
                return
            await send.send(part)
            if part.length < size:
                job.done_reading()
                return
            del part
        if await source.readinto(memoryview(bytearray(1))):
            raise StreamTooLongError(
                f"stream is longer than {MAX_PARTS} parts can carry with part_size"
                f" {job.config.part_size}; use a larger part_size"
            )
