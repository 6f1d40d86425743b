"""How aiohttp writes asyncup's part bodies (``payloads``), registered with aiohttp once this
module is imported (by ``threaded``, the HTTP session of asyncup's own clients).

A ``PartPayload`` is written in slices, waiting for the socket to drain after each. Handed whole
to the transport, a part would be queued in user space (encrypted, over TLS) whenever the
server is slow: with 10 parts in flight, +80 MiB. Over TLS each slice is still encrypted whole
into the transport's buffer before the drain, so the slice is what each connection queues: 256
KiB, not 1 MiB, keeps 10 connections ~8 MiB lower with a slow server; over HTTP a slice is a
view (no copy), and neither throughput nor CPU moved with the smaller slice
(benchmarks/PROFILE.md).

A ``RangePayload`` is read 4 MiB at a time in a worker thread and written in 1 MiB slices, so
that no read blocks the event loop.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp.abc
import aiohttp.payload
import anyio.to_thread

from .._core.errors import ShortSourceError
from .payloads import PartPayload, RangePayload


class _PartWriter(aiohttp.payload.Payload):
    SLICE = 256 * 1024

    def __init__(self, part: PartPayload, *args: Any, **kwargs: Any) -> None:
        super().__init__(part.view, *args, **kwargs)
        self._size = part.size

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: aiohttp.abc.AbstractStreamWriter, content_length: int | None
    ) -> None:
        view: memoryview = self._value
        end = len(view) if content_length is None else min(content_length, len(view))
        for start in range(0, end, self.SLICE):
            await writer.write(view[start : min(start + self.SLICE, end)])


class _RangeWriter(aiohttp.payload.Payload):
    READ = 4 * 1024 * 1024  # per trip to a thread
    SLICE = 1024 * 1024  # per write, the socket drained between writes
    _autoclose = True  # no file stays open between writes

    def __init__(self, part: RangePayload, *args: Any, **kwargs: Any) -> None:
        super().__init__(part.path, *args, **kwargs)
        self._part = part
        self._size = part.length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        part = self._part
        with open(part.path, "rb") as file:
            file.seek(part.offset)
            return file.read(part.length).decode(encoding, errors)

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: aiohttp.abc.AbstractStreamWriter, content_length: int | None
    ) -> None:
        part = self._part
        end = part.length if content_length is None else min(content_length, part.length)
        fd = part.fd
        if fd is None:
            fd = await anyio.to_thread.run_sync(os.open, part.path, os.O_RDONLY)
        try:
            for start in range(0, end, self.READ):
                wanted = min(self.READ, end - start)
                # A new bytes object per read: the transport may keep it after write().
                chunk = await anyio.to_thread.run_sync(os.pread, fd, wanted, part.offset + start)
                if len(chunk) != wanted:
                    raise ShortSourceError(
                        f"{part.path} ended {part.offset + start + len(chunk)} bytes in,"
                        " inside the part being sent (did it change?)"
                    )
                view = memoryview(chunk)
                for at in range(0, wanted, self.SLICE):
                    await writer.write(view[at : at + self.SLICE])
                del view, chunk  # not held while the next one is read
        finally:
            if part.fd is None:
                await anyio.to_thread.run_sync(os.close, fd)


aiohttp.payload.PAYLOAD_REGISTRY.register(_PartWriter, PartPayload)
aiohttp.payload.PAYLOAD_REGISTRY.register(_RangeWriter, RangePayload)
