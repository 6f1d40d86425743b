"""The resume journal's records, read and written as text (pure): the header that describes
one multipart upload of one file, and a line per part S3 acknowledged. The file itself (an
atomic first write, fsynced appends) is ``_pipeline.journal``'s.

A journal is JSON lines: the header first, then one line per part; a last line cut short by
a crash is ignored. No credential and no SSE-C key is ever part of a record.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import Any

from .checksums import PartDigest
from .verify import CompletedPart

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


def part_record(part: CompletedPart) -> dict[str, Any]:
    digest = part.digest
    return {
        "part": part.number,
        "etag": part.etag,
        "size": part.size,
        "checksum": None if digest.checksum is None else digest.checksum_b64,
        "md5": None if digest.md5 is None else digest.md5.hex(),
    }


def part_from(record: dict[str, Any]) -> CompletedPart:
    checksum = record.get("checksum")
    md5 = record.get("md5")
    digest = PartDigest(
        checksum=None if checksum is None else base64.b64decode(checksum),
        md5=None if md5 is None else bytes.fromhex(md5),
    )
    return CompletedPart(int(record["part"]), str(record["etag"]), digest, int(record["size"]))


def header_line(header: Header) -> str:
    """The journal's first line for ``header``."""
    return json.dumps({"format": FORMAT, "version": VERSION, **asdict(header)}) + "\n"


def part_line(part: CompletedPart) -> str:
    """The line that records one acknowledged part."""
    return json.dumps(part_record(part)) + "\n"


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
            part = part_from(json.loads(line))
            parts[part.number] = part  # a part sent twice: the later answer is the one S3 kept
    except JournalError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise JournalError(f"{path} is damaged: {exc}") from exc
    return header, parts
