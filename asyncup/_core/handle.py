"""The handle of a multipart upload fed by many hosts: what travels to every worker.

Pure data, no I/O. A ``ParallelUpload`` pickles (Dask, Ray) and round-trips through JSON;
it names the upload (bucket, key, upload id), the file on the shared filesystem as it was
when the upload began (path, size, mtime), the part plan, the checksum algorithm, and the
non-secret arguments every request of the upload repeats (RequestPayer,
ExpectedBucketOwner) or that Complete needs (IfNoneMatch).

What never travels: credentials (each host has its own credential chain) and the SSE-C key
(each worker resolves it itself: an argument on that host, or ``ASYNCUP_SSE_CUSTOMER_KEY``
in its environment). The handle holds only the key's MD5 (which S3 itself receives in
every request header), so that a worker holding another key refuses before sending a byte.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .checksums import PartDigest
from .params import CONDITIONAL_ARGS, EVERY_REQUEST_ARGS
from .plan import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, Part, PartPlan
from .records import Header, Origin
from .verify import CompletedPart

FORMAT = "asyncup-parallel"
VERSION = 1
SSE_CUSTOMER_KEY_ENV = "ASYNCUP_SSE_CUSTOMER_KEY"
HANDLE_ARGS = EVERY_REQUEST_ARGS | CONDITIONAL_ARGS


@dataclass(frozen=True, kw_only=True, slots=True)
class ParallelUpload:
    """A multipart upload in progress, of one file that every worker can read.

    Made by ``asyncup.parallel.begin``; send it to the workers as it is (it pickles) or as
    ``to_json()``. Example::

        handle = await parallel.begin(up, "/shared/big.bin", "bucket", "big.bin")
        text = handle.to_json()                      # to a queue, a file, a task argument
        assert ParallelUpload.from_json(text) == handle
    """

    bucket: str
    key: str
    upload_id: str
    path: str
    """The file, at the same path on every host (a shared filesystem)."""
    size: int
    mtime_ns: int
    """The file's size and modification time when the upload began; a worker that finds
    other values refuses to send (``SourceChangedError``)."""
    part_size: int
    part_count: int
    checksum_algorithm: str | None
    checksum_type: str | None
    request_args: tuple[tuple[str, str], ...] = ()
    """Non-secret arguments repeated by the requests of the upload, as (name, value)."""
    sse_customer_key_md5: str | None = None
    """Set when the object is encrypted with SSE-C: the key's MD5 (base64), never the key."""

    def __post_init__(self) -> None:
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}")
        if self.size < 0 or self.part_count != max(1, -(-self.size // self.part_size)):
            raise ValueError(
                f"{self.part_count} parts of {self.part_size} bytes do not cut {self.size} bytes"
            )
        if self.part_count > MAX_PARTS:
            raise ValueError(f"{self.part_count} parts: S3 allows at most {MAX_PARTS}")
        unknown = sorted({name for name, _ in self.request_args} - HANDLE_ARGS)
        if unknown:
            raise ValueError(f"{unknown} cannot travel in a handle (only {sorted(HANDLE_ARGS)})")

    @property
    def plan(self) -> PartPlan:
        return PartPlan(size=self.size, part_size=self.part_size, count=self.part_count)

    def part(self, number: int) -> Part:
        """Part ``number``'s byte range in the file."""
        if not 1 <= number <= self.part_count:
            raise ValueError(f"part number must be between 1 and {self.part_count}; got {number}")
        offset = (number - 1) * self.part_size
        return Part(number, offset, min(self.part_size, self.size - offset))

    def to_dict(self) -> dict[str, Any]:
        return handle_dict(self, FORMAT)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParallelUpload:
        return cls(**handle_fields(cls, data, FORMAT))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> ParallelUpload:
        return cls.from_dict(json.loads(text))

    def header(self) -> Header:
        """The handle as the header of a resume journal (``_pipeline.journal``): its manifest."""
        return Header(
            bucket=self.bucket,
            key=self.key,
            upload_id=self.upload_id,
            size=self.size,
            part_size=self.part_size,
            checksum_algorithm=self.checksum_algorithm,
            checksum_type=self.checksum_type,
            origin=Origin(path=self.path, size=self.size, mtime_ns=self.mtime_ns),
            parallel={
                "request_args": dict(self.request_args),
                "sse_customer_key_md5": self.sse_customer_key_md5,
            },
        )

    @classmethod
    def from_header(cls, header: Header) -> ParallelUpload:
        extra = header.parallel
        if extra is None:
            raise ValueError("this journal is a resume journal, not a parallel upload's manifest")
        return cls(
            bucket=header.bucket,
            key=header.key,
            upload_id=header.upload_id,
            path=header.origin.path,
            size=header.size,
            mtime_ns=header.origin.mtime_ns,
            part_size=header.part_size,
            part_count=max(1, -(-header.size // header.part_size)),
            checksum_algorithm=header.checksum_algorithm,
            checksum_type=header.checksum_type,
            request_args=tuple(sorted(dict(extra.get("request_args") or {}).items())),
            sse_customer_key_md5=extra.get("sse_customer_key_md5"),
        )


def handle_dict(handle: Any, format_: str) -> dict[str, Any]:
    """A handle (a dataclass with ``request_args``) as JSON-ready data, named and versioned."""
    fields = asdict(handle)
    fields["request_args"] = dict(handle.request_args)
    return {"format": format_, "version": VERSION, **fields}


def handle_fields(cls: type, data: Mapping[str, Any], format_: str) -> dict[str, Any]:
    """The fields of a ``cls`` handle from ``handle_dict``'s data, refused unless it is one."""
    if not isinstance(data, Mapping) or data.get("format") != format_:
        raise ValueError(f"not an {format_} handle")
    if data.get("version") != VERSION:
        raise ValueError(f"an {format_} handle of another version ({data.get('version')!r})")
    fields = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
    fields["request_args"] = tuple(sorted(dict(fields.get("request_args", {})).items()))
    return fields


@dataclass(frozen=True, kw_only=True, slots=True)
class PartResult:
    """One part S3 acknowledged: what ``upload_parts`` returns and ``complete`` takes.

    ``checksum`` is the part's checksum as S3 takes it (base64), or ``md5`` (hex) when the
    upload has no checksum algorithm; ``sender`` says which worker sent it.
    """

    number: int
    etag: str
    size: int
    checksum: str | None = None
    md5: str | None = None
    sender: str | None = None

    @classmethod
    def of(cls, part: CompletedPart, sender: str | None = None) -> PartResult:
        digest = part.digest
        return cls(
            number=part.number,
            etag=part.etag,
            size=part.size,
            checksum=digest.checksum_b64,
            md5=None if digest.md5 is None else digest.md5.hex(),
            sender=sender,
        )

    def completed(self) -> CompletedPart:
        digest = PartDigest(
            checksum=None if self.checksum is None else base64.b64decode(self.checksum),
            md5=None if self.md5 is None else bytes.fromhex(self.md5),
        )
        return CompletedPart(self.number, self.etag, digest, self.size)

    @property
    def digest_key(self) -> tuple[str | None, str | None]:
        """What two results for one part must agree on if they carried the same bytes."""
        return self.checksum, self.md5
