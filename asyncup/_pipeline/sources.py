"""Source adapters: everything asyncup accepts, seen as one thing that fills buffers.

Each adapter fills a caller-owned buffer (``readinto``) completely, unless the source ends
first; the producer owns and reuses the buffers. Blocking reads (paths, sync file objects)
run in worker threads; paths are read with positional ``preadv`` straight into the buffer.
Files are opened (and a small one read whole) by an ``Opener`` (``opener``), many per hop.
"""

from __future__ import annotations

import inspect
import io
import os
import stat as stat_module
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

import anyio.to_thread

from .._core.errors import SourceReadError
from .opener import Opener, pread_full

T = TypeVar("T")

ACCEPTED = (
    "bytes, bytearray or memoryview; a path (str or os.PathLike); a binary file object"
    " (read/readinto); an object with an awaitable read(n); or an AsyncIterable[bytes]"
)


class Source(Protocol):
    size: int | None
    """Bytes from the current position to the end, when known before reading."""
    path: str | None

    async def open(self) -> None: ...

    async def readinto(self, view: memoryview) -> int:
        """Fill ``view`` completely unless the source ends first; return the bytes written."""
        ...

    async def aclose(self) -> None: ...


def adapt(source: object) -> Source:
    """Wrap ``source`` in the adapter for its kind; ``TypeError`` for anything else."""
    if isinstance(source, bytes | bytearray | memoryview):
        return BytesSource(source)
    if isinstance(source, str | os.PathLike):
        return PathSource(os.fspath(source))
    if isinstance(source, io.TextIOBase):
        raise TypeError(
            f"source is a text file: open it in binary mode ('rb'); accepted: {ACCEPTED}"
        )
    read = getattr(source, "read", None)
    if read is not None and inspect.iscoroutinefunction(read):
        return AsyncReaderSource(source)
    if isinstance(source, AsyncIterable):
        return AsyncIterableSource(source)
    if read is not None or hasattr(source, "readinto"):
        return FileSource(source)
    raise TypeError(f"cannot upload a {type(source).__name__}; accepted: {ACCEPTED}")


async def _outside(read: Awaitable[T]) -> T:
    """Await a caller's read; what it raises reaches asyncup as a ``SourceReadError`` whose
    cause is the error itself. The error may be held in a cycle of the caller's (aiohttp's
    reader keeps it, and its waiter future, whose frame is in its traceback): were its
    traceback to run on through the frames that hold a part buffer, that buffer would wait
    for the cyclic GC. The caller still sees its own error (``failures`` unwraps it)."""
    try:
        return await read
    except StopAsyncIteration:
        raise  # the end of an async iterable, not a failure
    except Exception as exc:
        raise SourceReadError(str(exc)) from exc


def _as_bytes(chunk: object) -> memoryview:
    if not isinstance(chunk, bytes | bytearray | memoryview):
        raise TypeError(f"source produced {type(chunk).__name__}, expected bytes")
    return memoryview(chunk).cast("B")


class BytesSource:
    path: str | None = None

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self.size: int | None = len(self._view)
        self._pos = 0
        self.frozen = data if type(data) is bytes else None
        """The caller's ``bytes``, which cannot change: sent as they are, never copied."""

    async def open(self) -> None:
        pass

    async def readinto(self, view: memoryview) -> int:
        n = min(len(view), len(self._view) - self._pos)
        view[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        await anyio.lowlevel.checkpoint()
        return n

    async def aclose(self) -> None:
        self._view.release()


READ_AHEAD = 1024 * 1024
"""A file smaller than this (and than the multipart threshold) is read whole when opened."""


class PathSource:
    def __init__(self, path: str) -> None:
        self.path: str | None = path
        self.size: int | None = None
        self.mtime_ns = 0
        self.regular = False
        self.contents: bytearray | None = None
        """The whole file, when ``open`` read it (and closed it) in the same thread hop."""
        self._fd = -1
        self._offset = 0

    @property
    def fd(self) -> int:
        """The open file's descriptor (valid between ``open`` and ``aclose``)."""
        return self._fd

    async def open(self, read_below: int = 0, opener: Opener | None = None) -> None:
        """Open and stat the file; a regular file of fewer than ``read_below`` bytes is read
        whole and closed in the same thread hop (``contents``): one hop per small file, shared
        with the other files ``opener`` is asked for meanwhile."""
        assert self.path is not None
        self._fd, stat, self.contents = await (opener or Opener()).open(self.path, read_below)
        self.size = stat.st_size
        self.mtime_ns = stat.st_mtime_ns
        self.regular = stat_module.S_ISREG(stat.st_mode)

    async def readinto(self, view: memoryview) -> int:
        n = await self.readinto_at(view, self._offset)
        self._offset += n
        return n

    async def readinto_at(self, view: memoryview, offset: int) -> int:
        """Fill ``view`` from ``offset`` on (a resumed upload reads only the missing parts)."""
        return await anyio.to_thread.run_sync(pread_full, self._fd, view, offset)

    async def readinto_and_close(self, view: memoryview) -> int:
        """``readinto``, then the file is closed, in the same thread hop: a small file is
        opened and stat'ed in one hop, read and closed in another."""
        fd, self._fd = self._fd, -1
        return await anyio.to_thread.run_sync(_pread_and_close, fd, view, self._offset)

    async def aclose(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            await anyio.to_thread.run_sync(os.close, fd)


def _pread_and_close(fd: int, view: memoryview, offset: int) -> int:
    try:
        return pread_full(fd, view, offset)
    finally:
        os.close(fd)


class FileSource:
    """A synchronous binary file object, seekable or not, read from its current position."""

    path: str | None = None

    def __init__(self, file: Any) -> None:
        self._file = file
        self.size: int | None = None

    async def open(self) -> None:
        self.size = await anyio.to_thread.run_sync(self._remaining)

    def _remaining(self) -> int | None:
        seekable = getattr(self._file, "seekable", None)
        if seekable is None or not seekable():
            return None
        here: int = self._file.tell()
        end: int = self._file.seek(0, os.SEEK_END)
        self._file.seek(here)
        return max(0, end - here)

    async def readinto(self, view: memoryview) -> int:
        return await anyio.to_thread.run_sync(self._fill, view)

    def _fill(self, view: memoryview) -> int:
        filled = 0
        readinto = getattr(self._file, "readinto", None)
        while filled < len(view):
            if readinto is not None:
                n = readinto(view[filled:])
            else:
                chunk = _as_bytes(self._file.read(len(view) - filled))
                n = len(chunk)
                view[filled : filled + n] = chunk
            if n is None:
                raise TypeError("file object is non-blocking and had no data; pass a blocking one")
            if n == 0:
                break
            filled += n
        return filled

    async def aclose(self) -> None:
        pass


# The most one read(n) asks of an async reader. aiohttp's StreamReader raises its buffer's
# high-water mark to 2n for every read(n): asked for a whole part (8 MiB), each request read
# ahead 16 MiB of its client's body before pausing the socket, and a web backend's memory grew
# with its clients (120 at once: over 1 GiB, measured). 64 KiB is aiohttp's own default limit,
# so reading never raises it; at 128 KiB, the peak of 120 clients was ~20 MiB higher.
READ_SLICE = 64 * 1024


class AsyncReaderSource:
    """An object with ``async def read(n)``: aiohttp's StreamReader, anyio's AsyncFile..."""

    path: str | None = None
    size: int | None = None

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    async def open(self) -> None:
        pass

    async def readinto(self, view: memoryview) -> int:
        filled = 0
        while filled < len(view):
            chunk = _as_bytes(
                await _outside(self._reader.read(min(len(view) - filled, READ_SLICE)))
            )
            if not chunk:
                break
            if len(chunk) > len(view) - filled:
                raise ValueError("read(n) returned more than n bytes")
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        return filled

    async def aclose(self) -> None:
        # A reader that failed keeps its error (aiohttp's does, for every later read), and the
        # error's traceback runs through our frames, which hold this source and its part
        # buffer: a cycle only the cyclic GC would break. Let go of the reader instead.
        self._reader = None


class AsyncIterableSource:
    """Any ``AsyncIterable[bytes]`` with chunks of any size (Starlette's request.stream())."""

    path: str | None = None
    size: int | None = None

    def __init__(self, iterable: AsyncIterable[Any]) -> None:
        self._iterator: AsyncIterator[Any] = aiter(iterable)
        self._leftover = memoryview(b"")
        self._done = False

    async def open(self) -> None:
        pass

    async def readinto(self, view: memoryview) -> int:
        filled = 0
        while filled < len(view):
            if not self._leftover:
                if self._done:
                    break
                try:
                    self._leftover = _as_bytes(await _outside(anext(self._iterator)))
                except StopAsyncIteration:
                    self._done = True
                    break
            n = min(len(view) - filled, len(self._leftover))
            view[filled : filled + n] = self._leftover[:n]
            self._leftover = self._leftover[n:]
            filled += n
        return filled

    async def aclose(self) -> None:
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None and not self._done:
            await aclose()
