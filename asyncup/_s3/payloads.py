"""Part bodies: what asyncup hands its HTTP layers, and how a blocking socket sends them.

A ``PartPayload`` is a part's buffer; a ``RangePayload`` is a range of a file, read while it is
sent (a path source's parts, ``asyncup.parallel``'s). ``send_blocking`` writes either to a
blocking socket (``threaded``); ``aio_bodies`` says how aiohttp writes them. Nothing here
imports an HTTP library: the lean path's own connections (``pool``) need none.
"""

from __future__ import annotations

import io
import os
import socket
import ssl
import threading

from .._core.checksums import PartDigest, RunningDigest, b64
from .._core.errors import ShortSourceError
from .._core.verify import spoiled
from .._core.wire import TRAIL_CHUNK, chunk_head, framed_length, last_chunk


class PartPayload:
    """A part's body: a view of its buffer, sent as it is (never copied)."""

    __slots__ = ("size", "view")

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.size: int | None = len(view)


class RangePayload:
    """A part's body that is ``length`` bytes of a file at ``offset``, read while it is sent,
    so that a 5 GiB part never sits in memory. Each send reads the range again from its start:
    a retried request sends the same bytes. Fewer bytes than planned (the file shrank) fail
    the send with ``ShortSourceError``.

    ``fd``: an open descriptor of the file to read (the caller's, left open), so that a file
    renamed over ``path`` meanwhile is not read; without it ``path`` is opened for each send.
    """

    __slots__ = ("fd", "length", "offset", "path", "size")

    def __init__(self, path: str, offset: int, length: int, fd: int | None = None) -> None:
        self.path = path
        self.fd = fd
        self.offset = offset
        self.length = length
        self.size: int | None = length

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Each send is of the range from its start: only a rewind to it is possible (botocore
        rewinds a request's body before its own retries)."""
        if (offset, whence) != (0, os.SEEK_SET):
            raise io.UnsupportedOperation("a RangePayload rewinds only to its start")
        return 0


class TrailedPayload(RangePayload):
    """A ``RangePayload`` sent aws-chunked with its checksum in the trailer
    (``wire.trailed``), computed as the range is read to be sent: each byte is read once.
    ``digest`` is that checksum once a send has ended (each send computes it again);
    ``wrong``: the trailer says another value (a store's probe)."""

    __slots__ = ("algorithm", "digest", "payload_length", "wrong")

    def __init__(
        self,
        path: str,
        offset: int,
        length: int,
        algorithm: str,
        fd: int | None = None,
        *,
        wrong: bool = False,
    ) -> None:
        super().__init__(path, offset, length, fd)
        self.algorithm = algorithm
        self.wrong = wrong
        self.digest: PartDigest | None = None
        self.payload_length = length
        self.size = framed_length(length, algorithm)


class NotTrailed(Exception):
    """A ``TrailedPayload`` the lean path cannot send as such (botocore would send this
    request, or aiohttp would write the body): the caller sends the part another way."""


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
        _send_sliced(sock, payload.view)
        return
    length, offset = payload.length, payload.offset
    # A descriptor of the sender's own: an abandoned send never touches the caller's, which
    # may be closed (and its number reused) by then.
    fd = os.open(payload.path, os.O_RDONLY) if payload.fd is None else os.dup(payload.fd)
    if isinstance(payload, TrailedPayload):
        _send_trailed(payload, sock, fd)
        return
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
        raise _ended(payload, offset + sent)


def _ended(payload: RangePayload, at: int) -> ShortSourceError:
    return ShortSourceError(
        f"{payload.path} ended {at} bytes in, inside the part being sent (did it change?)"
    )


_HEAD_ROOM = 16  # before a slice: a chunk's size line ("100000\r\n" for 1 MiB)
_TAIL_ROOM = 2 + 80  # after it: the chunk's CRLF and, after the last, the trailer


def _send_trailed(payload: TrailedPayload, sock: socket.socket, fd: int) -> None:
    """Each chunk of the range read once, in slices: digested, then sent, each slice with
    the framing around it in one write (over TLS a write of a few bytes would be a record
    of its own); the trailer with the last. Closes ``fd``."""
    payload.digest = None
    running = RunningDigest(payload.algorithm)
    buffer = _framing_buffer()
    length, offset = payload.payload_length, payload.offset
    try:
        done = 0
        while done < length:
            chunk = min(TRAIL_CHUNK, length - done)
            chunk_end = done + chunk
            first = True
            while done < chunk_end:
                wanted = min(SLICE, chunk_end - done)
                data = buffer[_HEAD_ROOM : _HEAD_ROOM + wanted]
                n = os.preadv(fd, [data], offset + done)
                if not n:
                    raise _ended(payload, offset + done)
                running.update(data[:n])
                start, stop = _HEAD_ROOM, _HEAD_ROOM + n
                if first:
                    head = chunk_head(chunk)
                    start -= len(head)
                    buffer[start:_HEAD_ROOM] = head
                    first = False
                done += n
                if done == chunk_end:
                    tail = b"\r\n"
                    if done == length:
                        tail += _trailer(payload, running)
                    buffer[stop : stop + len(tail)] = tail
                    stop += len(tail)
                sock.sendall(buffer[start:stop])
    finally:
        os.close(fd)


def _trailer(payload: TrailedPayload, running: RunningDigest) -> bytes:
    """The end of the body (``wire.last_chunk``); the payload's digest is set."""
    digest = payload.digest = running.digest()
    raw = digest.checksum or b""
    return last_chunk(payload.algorithm, b64(spoiled(raw) if payload.wrong else raw))


def _framing_buffer() -> memoryview:
    """``slice_buffer``'s, with room for the framing around a slice (one per thread)."""
    buffer: memoryview | None = getattr(_local, "framing", None)
    if buffer is None:
        buffer = _local.framing = memoryview(bytearray(_HEAD_ROOM + SLICE + _TAIL_ROOM))
    return buffer


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
