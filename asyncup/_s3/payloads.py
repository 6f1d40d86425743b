"""Part bodies as aiohttp writes them, and as ``threaded`` sends them from worker threads.

A ``PartPayload`` is a part's buffer; a ``RangePayload`` is a range of a file, read while it is
sent (a path source's parts, ``asyncup.parallel``'s). ``send_blocking`` writes either to a
blocking socket.
"""

from __future__ import annotations

import io
import os
import socket
import ssl
import threading

import aiohttp.abc
import aiohttp.payload
import anyio
import anyio.to_thread

from .._core.errors import ShortSourceError


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

    @property
    def view(self) -> memoryview:
        view: memoryview = self._value
        return view

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
    the write with ``ShortSourceError``.

    ``fd``: an open descriptor of the file to read (the caller's, left open), so that a file
    renamed over ``path`` meanwhile is not read; without it ``path`` is opened for each write.
    """

    READ = 4 * 1024 * 1024  # per trip to a thread
    SLICE = 1024 * 1024  # per write, the socket drained between writes
    _autoclose = True  # no file stays open between writes

    def __init__(self, path: str, offset: int, length: int, fd: int | None = None) -> None:
        super().__init__(path)
        self._path = path
        self._fd = fd
        self._offset = offset
        self._length = self._size = length

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Each write sends the range from its start: only a rewind to it is possible (botocore
        rewinds a request's body before its own retries)."""
        if (offset, whence) != (0, os.SEEK_SET):
            raise io.UnsupportedOperation("a RangePayload rewinds only to its start")
        return 0

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
        fd = self._fd
        if fd is None:
            fd = await anyio.to_thread.run_sync(os.open, self._path, os.O_RDONLY)
        try:
            for start in range(0, end, self.READ):
                wanted = min(self.READ, end - start)
                # A new bytes object per read: the transport may keep it after write().
                chunk = await anyio.to_thread.run_sync(os.pread, fd, wanted, self._offset + start)
                if len(chunk) != wanted:
                    raise ShortSourceError(
                        f"{self._path} ended {self._offset + start + len(chunk)} bytes in,"
                        " inside the part being sent (did it change?)"
                    )
                view = memoryview(chunk)
                for at in range(0, wanted, self.SLICE):
                    await writer.write(view[at : at + self.SLICE])
                del view, chunk  # not held while the next one is read
        finally:
            if self._fd is None:
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
    # A descriptor of the sender's own: an abandoned send never touches the caller's, which
    # may be closed (and its number reused) by then.
    fd = os.open(payload._path, os.O_RDONLY) if payload._fd is None else os.dup(payload._fd)
    try:
        if isinstance(sock, ssl.SSLSocket):  # no sendfile through TLS: read and send
            buffer = slice_buffer()
            sent = 0
            while sent < length:
                n = os.preadv(fd, [buffer[: length - sent]], offset + sent)
                if not n:
                    break
                sock.sendall(buffer[:n])
                sent += n
        else:  # straight from the page cache to the socket
            sent = sock.sendfile(_FileAt(fd), offset, length)
    finally:
        os.close(fd)
    if sent != length:
        raise ShortSourceError(
            f"{payload._path} ended {offset + sent} bytes in, inside the part being sent"
            " (did it change?)"
        )


class _FileAt:
    """A file for ``socket.sendfile`` whose position is its own: a dup'ed descriptor shares
    the caller's file offset, which ``sendfile``'s fallback (``read``, where the kernel has no
    sendfile for the file) would otherwise read from and move. Every read is positional."""

    mode = "rb"

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._position = 0

    def fileno(self) -> int:
        return self._fd

    def seek(self, position: int) -> int:
        self._position = position
        return position

    def read(self, size: int) -> bytes:
        data = os.pread(self._fd, size, self._position)
        self._position += len(data)
        return data


def source_shrank(exc: BaseException) -> bool:
    """Whether ``exc`` comes of a ``ShortSourceError`` (however the HTTP client wrapped it)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, ShortSourceError):
            return True
        seen.add(id(current))
        wrapped = getattr(current, "kwargs", None)  # botocore's HTTPClientError(error=...)
        inner = wrapped.get("error") if isinstance(wrapped, dict) else None
        pending += [current.__cause__, current.__context__]
        if isinstance(inner, BaseException):
            pending.append(inner)
    return False


SLICE = 256 * 1024
_local = threading.local()


def slice_buffer() -> memoryview:
    """A buffer of ``SLICE`` bytes for the calling thread, reused by each read it makes of a
    file range (hashed, or sent through TLS): one per worker thread, not one per read."""
    buffer: memoryview | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = memoryview(bytearray(SLICE))
    return buffer
