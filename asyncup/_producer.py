"""The producer: reads the source part by part into the bounded queue.

``send`` blocks while the queue is full, so a slow upload slows the reading of the source
(for a web request: the client's socket). The producer holds at most one part of its own,
the one it is filling or waiting to hand over.
"""

from __future__ import annotations

from anyio.streams.memory import MemoryObjectSendStream

from ._errors import AsyncupError
from ._job import FilledPart, Job
from ._plan import MAX_PARTS, PartPlan, stream_part_size
from ._sources import Source


class SourceSizeError(AsyncupError):
    """The source did not hold the number of bytes planned for it."""

    def __init__(self, message: str, part_number: int | None) -> None:
        super().__init__(message)
        self.part_number = part_number


class StreamTooLongError(AsyncupError):
    """A stream of unknown length outgrew what 10,000 parts can carry."""


async def produce_planned(
    job: Job, source: Source, plan: PartPlan, send: MemoryObjectSendStream[FilledPart]
) -> None:
    """Send the parts of a source of known size; the source must hold exactly ``plan.size``."""
    async with send:
        for planned in plan.parts():
            part = await job.read_part(
                source.readinto, planned.number, planned.length, plan.part_size
            )
            if part.length != planned.length:
                raise SourceSizeError(
                    f"source ended after {planned.offset + part.length} bytes,"
                    f" {plan.size} were expected (did it change while being read?)",
                    planned.number,
                )
            await send.send(part)
        extra = await source.readinto(memoryview(bytearray(1)))
        if extra:
            raise SourceSizeError(
                f"source holds more than the {plan.size} bytes expected"
                " (did it change while being read?)",
                None,
            )


async def produce_stream(
    job: Job, source: Source, first: FilledPart, send: MemoryObjectSendStream[FilledPart]
) -> None:
    """Send the parts of a stream of unknown length, ``first`` being already read.

    Part sizes grow with the stream (``stream_part_size``) so that it is not cut off at
    part_size x 10,000.
    """
    async with send:
        await send.send(first)
        if first.length < len(first.buffer):
            return  # the stream ended inside the first part
        for number in range(2, MAX_PARTS + 1):
            size = stream_part_size(number, job.config.part_size)
            part = await job.read_part(source.readinto, number, size, size)
            if part.length == 0:
                job.recycle(part)
                return
            await send.send(part)
            if part.length < size:
                return
        if await source.readinto(memoryview(bytearray(1))):
            raise StreamTooLongError(
                f"stream is longer than {MAX_PARTS} parts can carry with part_size"
                f" {job.config.part_size}; use a larger part_size"
            )
