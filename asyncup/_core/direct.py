"""Direct uploads: what a backend hands a client that sends the parts itself, and how it
checks what the client says it sent. Pure data and decisions, no I/O.

    backend   handle = begin(...)            CreateMultipartUpload; the plan; no credential
    backend   grants = sign_parts(handle)    a presigned UploadPart URL per part, in batches,
                                             with the exact headers the client must send
    client    PUT each part to its URL       reads each answer's ETag
    backend   complete(handle, reported)     ListParts (every page) -> ``check_parts`` ->
                                             CompleteMultipartUpload, verified as upload()

A checksum header must be signed into its URL (S3 refuses an unsigned ``x-amz-*`` header),
so when the upload has a checksum algorithm the client computes each part's checksum first
and asks for that part's URL with it; S3 (or any store that verifies) then refuses bytes
that are not the ones the client hashed. What never goes to a client: credentials and
SSE-C keys (SSE-C is refused: its key would have to travel with every part).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .handle import handle_dict, handle_fields
from .params import EVERY_REQUEST_ARGS, SSE_C_ARGS
from .plan import MAX_PARTS, Part, PartPlan, plan_known_size
from .verify import ListedPart, same_etag

FORMAT = "asyncup-direct"
MAX_EXPIRES_IN = 7 * 24 * 3600  # SigV4's limit on a presigned URL (X-Amz-Expires)
BATCH = 100  # URLs signed per request for more, by default
MAX_BATCH = 1000
CHECKSUM_BYTES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}


def check_expires_in(expires_in: int) -> int:
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise TypeError(f"expires_in must be an int of seconds; got {expires_in!r}")
    if not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise ValueError(
            f"expires_in must be between 1 and {MAX_EXPIRES_IN} seconds (SigV4 presigned URLs"
            f" live at most 7 days); got {expires_in}"
        )
    return expires_in


def refuse_sse_c(extra_args: Mapping[str, Any] | None) -> None:
    named = sorted(SSE_C_ARGS & set(extra_args or {}))
    if named:
        raise ValueError(
            f"a direct upload cannot use SSE-C ({', '.join(named)}): every part's request"
            " would have to carry the key, and a key cannot go to a client; use SSE-S3 or"
            " SSE-KMS (ServerSideEncryption) instead"
        )


def direct_plan(size: int, part_size: int, *, exact: bool) -> PartPlan:
    """Cut ``size`` bytes in parts of ``part_size``: as given when ``exact`` (refused if
    that needs more than 10,000 parts), else grown as needed to stay within them
    (``plan_known_size``)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be an int >= 0; got {size!r}")
    plan = plan_known_size(size, part_size)
    if exact and plan.part_size != part_size:
        raise ValueError(
            f"{size} bytes in parts of {part_size} make {-(-size // part_size)} parts; S3"
            f" allows at most {MAX_PARTS} (give a part_size of at least {plan.part_size})"
        )
    return plan


@dataclass(frozen=True, kw_only=True, slots=True)
class DirectUpload:
    """A multipart upload whose parts a client sends itself, to presigned URLs.

    Made by ``asyncup.direct.begin``; it round-trips through JSON (``to_json``/``from_json``)
    so that a backend can keep it anywhere (or give it to the client and take it back), and
    holds no credential and no key.
    """

    bucket: str
    key: str
    upload_id: str
    size: int
    part_size: int
    part_count: int
    checksum_algorithm: str | None
    checksum_type: str | None
    expires_in: int
    """How long each URL lives, in seconds."""
    request_args: tuple[tuple[str, str], ...] = ()
    """Arguments every request of the upload repeats (RequestPayer, ExpectedBucketOwner)
    and Complete's IfNoneMatch, as (name, value)."""

    def __post_init__(self) -> None:
        direct_plan(self.size, self.part_size, exact=True)
        if self.part_count != max(1, -(-self.size // self.part_size)):
            raise ValueError(
                f"{self.part_count} parts of {self.part_size} bytes do not cut {self.size} bytes"
            )
        check_expires_in(self.expires_in)
        if self.checksum_algorithm is not None and self.checksum_algorithm not in CHECKSUM_BYTES:
            raise ValueError(f"unknown checksum algorithm {self.checksum_algorithm!r}")

    @property
    def plan(self) -> PartPlan:
        return PartPlan(size=self.size, part_size=self.part_size, count=self.part_count)

    def part(self, number: int) -> Part:
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError(f"part numbers must be ints; got {number!r}")
        if not 1 <= number <= self.part_count:
            raise ValueError(f"part number must be between 1 and {self.part_count}; got {number}")
        offset = (number - 1) * self.part_size
        return Part(number, offset, min(self.part_size, self.size - offset))

    @property
    def control(self) -> dict[str, str]:
        """The arguments of every request (ListParts, UploadPart, Abort)."""
        return {k: v for k, v in self.request_args if k in EVERY_REQUEST_ARGS}

    def to_dict(self) -> dict[str, Any]:
        return handle_dict(self, FORMAT)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DirectUpload:
        return cls(**handle_fields(cls, data, FORMAT))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> DirectUpload:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, kw_only=True, slots=True)
class PartURL:
    """Where and how a client sends one part: ``PUT url`` with exactly ``headers`` and the
    bytes ``[offset, offset + length)`` of the file, before ``expires_at`` (Unix time)."""

    number: int
    offset: int
    length: int
    url: str
    headers: dict[str, str]
    expires_at: int
    method: str = "PUT"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportedPart:
    """What a client says it sent: a part's number, the ETag S3 answered, and the part's
    checksum (base64) when the upload has a checksum algorithm."""

    number: int
    etag: str
    checksum: str | None = None

    @classmethod
    def of(cls, value: ReportedPart | Mapping[str, Any]) -> ReportedPart:
        """A report as it came from a client: a ``ReportedPart`` or a mapping with
        ``number`` (or ``PartNumber``), ``etag`` (or ``ETag``) and ``checksum``."""
        if isinstance(value, ReportedPart):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"a reported part must be a mapping; got {type(value).__name__}")
        number = value.get("number", value.get("PartNumber"))
        etag = value.get("etag", value.get("ETag"))
        checksum = value.get("checksum")
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError(f"a reported part needs an int number; got {number!r}")
        if not isinstance(etag, str) or not etag.strip('" '):
            raise ValueError(f"part {number}: a reported part needs its ETag; got {etag!r}")
        if checksum is not None and not isinstance(checksum, str):
            raise ValueError(f"part {number}: checksum must be a base64 string")
        return cls(number=number, etag=etag, checksum=checksum)


def check_checksum(algorithm: str, number: int, checksum: object) -> str:
    """A client's checksum of part ``number``, refused unless it is ``algorithm``'s size
    in base64 (S3 would refuse the part, or sign nothing useful)."""
    if not isinstance(checksum, str):
        raise ValueError(f"part {number}: its {algorithm} checksum (base64) is needed")
    try:
        raw = base64.b64decode(checksum, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != CHECKSUM_BYTES[algorithm]:
        raise ValueError(
            f"part {number}: {checksum!r} is not a {algorithm} checksum in base64"
            f" ({CHECKSUM_BYTES[algorithm]} bytes)"
        )
    return checksum


@dataclass(frozen=True, slots=True)
class Refusals:
    """Why Complete cannot go on, part by part (empty: it can)."""

    missing: tuple[int, ...] = ()
    """Planned parts S3 does not hold, or that no report names."""
    extra: tuple[int, ...] = ()
    """Parts outside the plan (reported or held), or reported more than once."""
    wrong_size: tuple[int, ...] = ()
    """Parts S3 holds at another size than planned."""
    mismatched: tuple[int, ...] = ()
    """Parts whose reported ETag or checksum is not what S3 holds."""

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.wrong_size or self.mismatched)

    def describe(self) -> str:
        said = []
        for name, numbers in (
            ("missing", self.missing),
            ("not in the plan, or reported twice", self.extra),
            ("of the wrong size", self.wrong_size),
            ("not as reported (ETag or checksum)", self.mismatched),
        ):
            if numbers:
                shown = ", ".join(str(n) for n in numbers[:10])
                more = f" and {len(numbers) - 10} more" if len(numbers) > 10 else ""
                said.append(f"parts {name}: {shown}{more}")
        return "; ".join(said)


def check_parts(
    handle: DirectUpload, reported: Iterable[ReportedPart], listed: Mapping[int, ListedPart]
) -> Refusals:
    """Whether the reports and what S3 holds agree with the plan, part by part."""
    lengths = {part.number: part.length for part in handle.plan.parts()}
    seen: dict[int, ReportedPart] = {}
    extra: set[int] = {number for number in listed if number not in lengths}
    for part in reported:
        if part.number not in lengths or part.number in seen:
            extra.add(part.number)
        seen[part.number] = part
    missing, wrong_size, mismatched = [], [], []
    for number, length in lengths.items():
        held, told = listed.get(number), seen.get(number)
        if held is None or told is None:
            missing.append(number)
        elif held.size != length:
            wrong_size.append(number)
        elif not same_etag(held.etag, told.etag) or (
            held.checksum is not None and held.checksum != told.checksum
        ):  # a store that lists no checksum checks the one Complete carries
            mismatched.append(number)
    return Refusals(tuple(missing), tuple(sorted(extra)), tuple(wrong_size), tuple(mismatched))


def cors_configuration(origins: Iterable[str], *, max_age: int = 3600) -> dict[str, Any]:
    """The bucket CORS configuration that lets pages from ``origins`` send parts to
    presigned URLs and read each answer's ETag (without ``ExposeHeaders: ETag`` a browser
    hides it, and no Complete can be built). Set it once, as the bucket's owner::

        await s3.put_bucket_cors(Bucket="bucket", CORSConfiguration=cors_configuration(
            ["https://app.example.com"]))
    """
    allowed = [str(origin) for origin in origins]
    if not allowed or any(not origin for origin in allowed):
        raise ValueError("give the origins of the pages that upload, e.g. https://app.example.com")
    return {
        "CORSRules": [
            {
                "AllowedOrigins": allowed,
                "AllowedMethods": ["PUT"],
                "AllowedHeaders": ["*"],  # the signed x-amz-checksum-* and others
                "ExposeHeaders": ["ETag"],
                "MaxAgeSeconds": max_age,
            }
        ]
    }
