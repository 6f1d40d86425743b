"""The resume journal on disk: what one multipart upload has done so far (its records, as
text: ``_core.records``).

A JSON-lines file. The first line describes the upload (destination, upload id, the plan,
the checksum algorithm and the source as it was: path, size, mtime); it is written once,
atomically (a temporary file renamed over the journal). Each later line records one part S3
acknowledged (number, ETag, size, checksum or MD5), appended and fsynced as the part
completes, so a crash loses at most the parts in flight. A line cut short by a crash is
ignored when the journal is read back.

No credentials and no SSE-C key are ever written: a resumed upload gets them again from
its caller. Blocking file work runs in a worker thread (``record``, ``create``, ``load``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

import anyio
import anyio.to_thread

from .._core.records import Header, header_line, parse, part_line
from .._core.verify import CompletedPart


class Journal:
    """An open journal; ``record`` appends a completed part. One writer at a time."""

    def __init__(self, path: str, header: Header) -> None:
        self.path = path
        self.header = header
        self._lock = anyio.Lock()

    @classmethod
    async def create(cls, path: str, header: Header) -> Journal:
        """Write a new journal for ``header`` (replacing any old one at ``path``)."""
        line = header_line(header)
        await anyio.to_thread.run_sync(_write_atomically, path, line.encode())
        return cls(path, header)

    async def record(self, part: CompletedPart) -> None:
        """Append ``part`` and make it durable before returning."""
        line = part_line(part).encode()
        async with self._lock:
            await anyio.to_thread.run_sync(_append, self.path, line)

    async def record_many(self, parts: Iterable[CompletedPart]) -> None:
        """Append several parts in one durable write (a batch of parts sent elsewhere)."""
        data = "".join(part_line(part) for part in parts).encode()
        if data:
            async with self._lock:
                await anyio.to_thread.run_sync(_append, self.path, data)

    async def discard(self) -> None:
        """The upload is over (completed): the journal has nothing left to resume."""
        await discard(self.path)


async def discard(path: str) -> None:
    """Remove the journal at ``path``, if there is one."""
    await anyio.to_thread.run_sync(_remove, path)


async def load(path: str) -> tuple[Header, dict[int, CompletedPart]] | None:
    """The journal at ``path`` and the parts it records; None when there is no journal."""
    text = await anyio.to_thread.run_sync(_read, path)
    if text is None:
        return None
    return parse(text, path)


def _write_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)  # one write of one line: O_APPEND keeps it whole
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except FileNotFoundError:
        return None


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
