"""Part bodies as aiohttp writes them, and as ``_threaded`` sends them from worker threads.

A ``PartPayload`` is a part's buffer; a ``RangePayload`` is a range of a file, read while it is
sent (``asyncup.parallel``). ``chunks()`` gives the bytes of either to a blocking sender.
"""

from __future__ import annotations

import os
import socket
import ssl

import aiohttp.abc
import aiohttp.payload
import anyio
import anyio.to_thread


class PartPayload(aiohttp.payload.Payload):
    """A part's body for aiohttp: its buffer, written in slices, waiting for the socket to
    drain after each. Handed whole to the transport, a part would be queued in user space
    (encrypted, over TLS) whenever the server is slow: with 10 parts in flight, +80 MiB.
    Over TLS each slice is still encrypted whole into the transport's buffer before the
    drain, so the slice is what each connection queues: 256 KiB, not 1 MiB, keeps 10
    connections ~8 MiB lower with a slow server; over HTTP a slice is a view (no copy), and
    neither throughput nor CPU moved with the smaller slice (benchmarks/PROFILE.md)."""

    SLICE = 256 * 1024

    def __init__(self, view: memoryview) -> None:
        super().__init__(view)
        self._size = len(view)

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


class RangePayload(aiohttp.payload.Payload):
    """A part's body that is ``length`` bytes of a file at ``offset``, read 4 MiB at a time in
    a worker thread and written in 1 MiB slices, so that a 5 GiB part never sits in memory
    and no read blocks the event loop. Each write reads the range again from its start: a
    retried request sends the same bytes. Fewer bytes than planned (the file shrank) fail
    the write.
    """

    READ = 4 * 1024 * 1024  # per trip to a thread
    SLICE = 1024 * 1024  # per write, the socket drained between writes
    _autoclose = True  # no file stays open between writes

    def __init__(self, path: str, offset: int, length: int) -> None:
        super().__init__(path)
        self._path = path
        self._offset = offset
        self._length = self._size = length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        with open(self._path, "rb") as file:
            file.seek(self._offset)
            return file.read(self._length).decode(encoding, errors)

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: aiohttp.abc.AbstractStreamWriter, content_length: int | None
    ) -> None:
        length = self._length
        end = length if content_length is None else min(content_length, length)
        fd = await anyio.to_thread.run_sync(os.open, self._path, os.O_RDONLY)
        try:
            for start in range(0, end, self.READ):
                wanted = min(self.READ, end - start)
                # A new bytes object per read: the transport may keep it after write().
                chunk = await anyio.to_thread.run_sync(os.pread, fd, wanted, self._offset + start)
                if len(chunk) != wanted:
                    raise OSError(
                        f"{self._path} ended {self._offset + start + len(chunk)} bytes in,"
                        " inside the part being sent (did it change?)"
                    )
                view = memoryview(chunk)
                for at in range(0, wanted, self.SLICE):
                    await writer.write(view[at : at + self.SLICE])
                del view, chunk  # not held while the next one is read
        finally:
            await anyio.to_thread.run_sync(os.close, fd)


SEND_SLICE = 1024 * 1024
"""Bytes per blocking send: a socket's timeout bounds each call, so it bounds how long one
slice may take (a slow link), not the whole part."""


def _send_sliced(sock: socket.socket, data: memoryview | bytes) -> None:
    with memoryview(data) as view, view.cast("B") as octets:
        for start in range(0, len(octets), SEND_SLICE):
            sock.sendall(octets[start : start + SEND_SLICE])


def send_blocking(payload: PartPayload | RangePayload, sock: socket.socket) -> None:
    """Write ``payload`` to a blocking ``sock`` (in a worker thread: the GIL is released while
    the kernel copies, or OpenSSL encrypts, the bytes)."""
    if isinstance(payload, PartPayload):
        _send_sliced(sock, payload._value)
        return
    length, offset = payload._length, payload._offset
    with open(payload._path, "rb") as file:
        if isinstance(sock, ssl.SSLSocket):  # no sendfile through TLS: read and send
            sent = 0
            while sent < length:
                chunk = os.pread(file.fileno(), min(payload.READ, length - sent), offset + sent)
                if not chunk:
                    break
                _send_sliced(sock, chunk)
                sent += len(chunk)
        else:  # straight from the page cache to the socket
            sent = sock.sendfile(file, offset, length)
    if sent != length:
        raise ShortSourceError(
            f"{payload._path} ended {offset + sent} bytes in, inside the part being sent"
            " (did it change?)"
        )


class ShortSourceError(OSError):
    """The file ended inside the range being sent."""
