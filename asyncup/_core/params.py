"""extra_args: boto3's ExtraArgs names, checked before any request and routed per request.

S3 wants object attributes on CreateMultipartUpload / PutObject only, but a few arguments on
more requests: the SSE-C triple on UploadPart and Complete too, RequestPayer and
ExpectedBucketOwner on every request of the upload (Abort and ListParts included), and the
conditional IfNoneMatch on the request that creates the object (PutObject or Complete).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .checksums import CRCS, FULL_OBJECT_ONLY
from .config import CHECKSUM_ALGORITHMS

CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
    }
)
GRANTS = frozenset({"GrantFullControl", "GrantRead", "GrantReadACP", "GrantWriteACP"})
SERVER_SIDE_ENCRYPTION = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
CHECKSUM_TYPES = frozenset({"COMPOSITE", "FULL_OBJECT"})
OBJECT_LOCK_MODES = frozenset({"GOVERNANCE", "COMPLIANCE"})
LEGAL_HOLD = frozenset({"ON", "OFF"})

# Sent on CreateMultipartUpload (and PutObject) only.
OBJECT_ARGS = GRANTS | {
    "ACL",
    "BucketKeyEnabled",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "ContentType",
    "Expires",
    "Metadata",
    "ObjectLockLegalHoldStatus",
    "ObjectLockMode",
    "ObjectLockRetainUntilDate",
    "SSEKMSEncryptionContext",
    "SSEKMSKeyId",
    "ServerSideEncryption",
    "StorageClass",
    "Tagging",
    "WebsiteRedirectLocation",
}
SSE_C_ARGS = frozenset({"SSECustomerAlgorithm", "SSECustomerKey", "SSECustomerKeyMD5"})
EVERY_REQUEST_ARGS = frozenset({"ExpectedBucketOwner", "RequestPayer"})
CONDITIONAL_ARGS = frozenset({"IfNoneMatch"})
CHECKSUM_ARGS = frozenset({"ChecksumAlgorithm", "ChecksumType"})
KNOWN_ARGS = OBJECT_ARGS | SSE_C_ARGS | EVERY_REQUEST_ARGS | CONDITIONAL_ARGS | CHECKSUM_ARGS


@dataclass(frozen=True, slots=True)
class RoutedArgs:
    """extra_args, validated and split by the requests they belong on."""

    create: dict[str, Any] = field(default_factory=dict)
    part: dict[str, Any] = field(default_factory=dict)
    complete: dict[str, Any] = field(default_factory=dict)
    control: dict[str, Any] = field(default_factory=dict)
    put: dict[str, Any] = field(default_factory=dict)
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    secrets: tuple[str, ...] = ()
    """Strings that must never appear in a message (the SSE-C key, raw and base64)."""

    @property
    def etag_is_md5(self) -> bool:
        """False when S3's ETags will not be MD5s of the data (SSE-KMS, SSE-C)."""
        sse = str(self.create.get("ServerSideEncryption", ""))
        return "SSECustomerKey" not in self.part and not sse.startswith("aws:kms")

    def __repr__(self) -> str:
        names = sorted(set(self.create) | set(self.part) | set(self.complete))
        return f"RoutedArgs(names={names}, checksum={self.checksum_algorithm})"


def route(
    extra_args: Mapping[str, Any] | None,
    checksum_algorithm: str | None,
    *,
    path: str | None = None,
) -> RoutedArgs:
    """Validate ``extra_args`` and split them per request; ``ValueError`` when S3 would
    refuse them (or worse, accept them and store something else)."""
    if extra_args is not None and not isinstance(extra_args, Mapping):
        raise TypeError("extra_args must be a mapping of boto3 ExtraArgs names to values")
    args = dict(extra_args or {})
    unknown = sorted(set(args) - KNOWN_ARGS)
    if unknown:
        raise ValueError(
            f"unknown extra_args {unknown}; accepted names: {', '.join(sorted(KNOWN_ARGS))}"
        )
    algorithm, checksum_type = _checksum(args, checksum_algorithm)
    _check_acl(args)
    _check_object_lock(args)
    _check_encryption(args)
    if args.get("IfNoneMatch", "*") != "*":
        raise ValueError("IfNoneMatch must be '*' (create the object only if it is absent)")
    if isinstance(args.get("Tagging"), Mapping):
        args["Tagging"] = urlencode(args["Tagging"])
    metadata = args.get("Metadata")
    if metadata is not None and not (
        isinstance(metadata, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise ValueError("extra_args Metadata must be a mapping of str to str")
    if path is not None and "ContentType" not in args:
        guessed, _ = mimetypes.guess_type(path)
        if guessed is not None:
            args["ContentType"] = guessed
    secrets = _normalize_sse_c(args)

    every = {k: v for k, v in args.items() if k in EVERY_REQUEST_ARGS}
    sse_c = {k: v for k, v in args.items() if k in SSE_C_ARGS}
    conditional = {k: v for k, v in args.items() if k in CONDITIONAL_ARGS}
    attributes = {k: v for k, v in args.items() if k in OBJECT_ARGS}
    create = attributes | sse_c | every
    if algorithm is not None:
        create["ChecksumAlgorithm"] = algorithm
        create["ChecksumType"] = checksum_type
    return RoutedArgs(
        create=create,
        part=sse_c | every,
        complete=sse_c | every | conditional,
        control=dict(every),
        put=attributes | sse_c | every | conditional,
        checksum_algorithm=algorithm,
        checksum_type=checksum_type,
        secrets=secrets,
    )


class Routes:
    """``extra_args`` routed once for many objects (``upload_many``), and once more for each
    ContentType guessed from a file's name, instead of once per object: a file still gets
    the type ``route`` would guess for it."""

    def __init__(self, extra_args: Mapping[str, Any] | None, checksum_algorithm: str | None):
        self.common = route(extra_args, checksum_algorithm)  # refuses bad args up front
        self._extra = dict(extra_args or {})
        self._algorithm = checksum_algorithm
        self._typed: dict[str, RoutedArgs] = {}

    def for_path(self, path: str | None) -> RoutedArgs:
        if path is None or "ContentType" in self._extra:
            return self.common
        guessed, _ = mimetypes.guess_type(path)
        if guessed is None:
            return self.common
        routed = self._typed.get(guessed)
        if routed is None:
            typed = {**self._extra, "ContentType": guessed}
            routed = self._typed[guessed] = route(typed, self._algorithm)
        return routed


def _checksum(args: dict[str, Any], configured: str | None) -> tuple[str | None, str | None]:
    """The checksum algorithm and type of the upload (extra_args win over the config)."""
    named = args.pop("ChecksumAlgorithm", None)
    algorithm = configured if named is None else str(named).upper()
    if algorithm is not None and algorithm not in CHECKSUM_ALGORITHMS:
        raise ValueError(
            f"ChecksumAlgorithm must be one of {', '.join(CHECKSUM_ALGORITHMS)}; got {named!r}"
        )
    checksum_type = args.pop("ChecksumType", None)
    if checksum_type is None:
        if algorithm is None:
            return None, None
        checksum_type = "FULL_OBJECT" if algorithm in FULL_OBJECT_ONLY else "COMPOSITE"
    checksum_type = str(checksum_type).upper()
    if checksum_type not in CHECKSUM_TYPES:
        raise ValueError(f"ChecksumType must be COMPOSITE or FULL_OBJECT; got {checksum_type!r}")
    if algorithm is None:
        raise ValueError("ChecksumType needs a ChecksumAlgorithm (or checksum_algorithm)")
    if checksum_type == "FULL_OBJECT" and algorithm not in CRCS:
        raise ValueError(
            f"FULL_OBJECT checksums combine CRCs (CRC32, CRC32C, CRC64NVME); {algorithm} cannot"
        )
    if checksum_type == "COMPOSITE" and algorithm in FULL_OBJECT_ONLY:
        raise ValueError(f"{algorithm} supports only ChecksumType FULL_OBJECT")
    return algorithm, checksum_type


def _check_acl(args: Mapping[str, Any]) -> None:
    acl = args.get("ACL")
    if acl is not None and acl not in CANNED_ACLS:
        raise ValueError(f"ACL must be one of {', '.join(sorted(CANNED_ACLS))}; got {acl!r}")
    grants = sorted(GRANTS & set(args))
    if acl is not None and grants:
        raise ValueError(f"a canned ACL cannot be combined with {grants}: S3 refuses both")


def _check_object_lock(args: Mapping[str, Any]) -> None:
    mode = args.get("ObjectLockMode")
    if mode is not None and mode not in OBJECT_LOCK_MODES:
        raise ValueError(f"ObjectLockMode must be GOVERNANCE or COMPLIANCE; got {mode!r}")
    if (mode is None) != (args.get("ObjectLockRetainUntilDate") is None):
        raise ValueError("ObjectLockMode and ObjectLockRetainUntilDate go together")
    hold = args.get("ObjectLockLegalHoldStatus")
    if hold is not None and hold not in LEGAL_HOLD:
        raise ValueError(f"ObjectLockLegalHoldStatus must be ON or OFF; got {hold!r}")


def _check_encryption(args: Mapping[str, Any]) -> None:
    sse = args.get("ServerSideEncryption")
    if sse is not None and sse not in SERVER_SIDE_ENCRYPTION:
        raise ValueError(
            f"ServerSideEncryption must be one of {', '.join(sorted(SERVER_SIDE_ENCRYPTION))}"
        )
    if sse is not None and "SSECustomerKey" in args:
        raise ValueError("ServerSideEncryption and SSECustomerKey (SSE-C) exclude each other")
    kms_only = sorted({"SSEKMSKeyId", "SSEKMSEncryptionContext"} & set(args))
    if kms_only and not str(sse or "").startswith("aws:kms"):
        raise ValueError(f"{kms_only} need ServerSideEncryption aws:kms or aws:kms:dsse")


def _normalize_sse_c(args: dict[str, Any]) -> tuple[str, ...]:
    """Check the SSE-C key and send it as S3 wants it: base64, with its MD5, on every request.

    A wrong key on one part is how a store silently corrupts an object, so the triple is
    computed once here and repeated verbatim. Returns the strings to keep out of messages.
    """
    given = {k for k in SSE_C_ARGS if args.get(k) is not None}
    if not given:
        return ()
    if "SSECustomerKey" not in given:
        raise ValueError(f"{sorted(given)} given without SSECustomerKey")
    algorithm = args.setdefault("SSECustomerAlgorithm", "AES256")
    if algorithm != "AES256":
        raise ValueError("SSECustomerAlgorithm must be AES256")
    key = args["SSECustomerKey"]
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes | bytearray):
        raise ValueError("SSECustomerKey must be bytes (or str)")
    raw = _raw_key(bytes(key), args.get("SSECustomerKeyMD5"))
    encoded = base64.b64encode(raw).decode()
    args["SSECustomerKey"] = encoded
    args["SSECustomerKeyMD5"] = base64.b64encode(
        hashlib.md5(raw, usedforsecurity=False).digest()
    ).decode()
    secrets = [encoded]
    with contextlib.suppress(UnicodeDecodeError):
        secrets.append(raw.decode())
    return tuple(secrets)


def _raw_key(key: bytes, md5: str | None) -> bytes:
    """The 32 raw key bytes. Given an MD5, boto3 expects the key base64-encoded already;
    without one, raw. Either way the MD5, when given, must match."""
    candidates = [key]
    if md5 is not None:
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.insert(0, base64.b64decode(key, validate=True))
    for raw in candidates:
        if len(raw) != 32:
            continue
        if (
            md5 is None
            or base64.b64encode(hashlib.md5(raw, usedforsecurity=False).digest()).decode() == md5
        ):
            return raw
    if md5 is not None and any(len(raw) == 32 for raw in candidates):
        raise ValueError("SSECustomerKeyMD5 does not match SSECustomerKey")
    raise ValueError("SSECustomerKey must be 32 bytes (AES-256)")
