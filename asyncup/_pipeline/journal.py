"""The resume journal: what one multipart upload has done so far, kept on disk.

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

import base64
import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import anyio.to_thread

from .._core.checksums import PartDigest
from .._core.verify import CompletedPart

FORMAT = "asyncup-resume"
VERSION = 1
OPTIONAL = ("origin", "parallel")  # read apart from the header's plain fields


class JournalError(ValueError):
    """The journal cannot be used: unreadable, or from another version of asyncup."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """The source file as it was when the upload began."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """What a journal is about: one multipart upload of one file, cut by one plan."""

    bucket: str
    key: str
    upload_id: str
    size: int
    part_size: int
    checksum_algorithm: str | None
    checksum_type: str | None
    origin: Origin
    parallel: dict[str, Any] | None = None
    """Only in the manifest of an upload fed by many hosts (``asyncup.parallel``): what else
    its handle holds (the non-secret arguments every request repeats, the SSE-C key's MD5).
    A plain resume journal has none; a journal without the field reads as None, and readers
    that do not know it ignore it, so the format stays version 1 both ways."""


def _part_record(part: CompletedPart) -> dict[str, Any]:
    digest = part.digest
    return {
        "part": part.number,
        "etag": part.etag,
        "size": part.size,
        "checksum": None if digest.checksum is None else digest.checksum_b64,
        "md5": None if digest.md5 is None else digest.md5.hex(),
    }


def _part_from(record: dict[str, Any]) -> CompletedPart:
    checksum = record.get("checksum")
    md5 = record.get("md5")
    digest = PartDigest(
        checksum=None if checksum is None else base64.b64decode(checksum),
        md5=None if md5 is None else bytes.fromhex(md5),
    )
    return CompletedPart(int(record["part"]), str(record["etag"]), digest, int(record["size"]))


class Journal:
    """An open journal; ``record`` appends a completed part. One writer at a time."""

    def __init__(self, path: str, header: Header) -> None:
        self.path = path
        self.header = header
        self._lock = anyio.Lock()

    @classmethod
    async def create(cls, path: str, header: Header) -> Journal:
        """Write a new journal for ``header`` (replacing any old one at ``path``)."""
        line = json.dumps({"format": FORMAT, "version": VERSION, **asdict(header)}) + "\n"
        await anyio.to_thread.run_sync(_write_atomically, path, line.encode())
        return cls(path, header)

    async def record(self, part: CompletedPart) -> None:
        """Append ``part`` and make it durable before returning."""
        line = (json.dumps(_part_record(part)) + "\n").encode()
        async with self._lock:
            await anyio.to_thread.run_sync(_append, self.path, line)

    async def record_many(self, parts: Iterable[CompletedPart]) -> None:
        """Append several parts in one durable write (a batch of parts sent elsewhere)."""
        data = "".join(json.dumps(_part_record(part)) + "\n" for part in parts).encode()
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


def parse(text: str, path: str = "journal") -> tuple[Header, dict[int, CompletedPart]]:
    """Read a journal's text (pure). Raises ``JournalError`` when it cannot be used."""
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines.pop()  # the crash cut the last line short: that part is simply not recorded
    lines = [line for line in lines if line]
    if not lines:
        raise JournalError(f"{path} is empty: not an asyncup resume journal")
    try:
        first = json.loads(lines[0])
        if first.get("format") != FORMAT:
            raise JournalError(f"{path} is not an asyncup resume journal")
        if first.get("version") != VERSION:
            raise JournalError(
                f"{path} was written by another version of asyncup (format {first.get('version')})"
            )
        origin = Origin(**first["origin"])
        fields = {k: first[k] for k in Header.__dataclass_fields__ if k not in OPTIONAL}
        header = Header(origin=origin, parallel=first.get("parallel"), **fields)
        parts = {}
        for line in lines[1:]:
            part = _part_from(json.loads(line))
            parts[part.number] = part  # a part sent twice: the later answer is the one S3 kept
    except JournalError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise JournalError(f"{path} is damaged: {exc}") from exc
    return header, parts


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
