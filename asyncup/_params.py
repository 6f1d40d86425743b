"""extra_args: boto3's ExtraArgs names, checked before any request and routed per request.

S3 wants object attributes on CreateMultipartUpload / PutObject only, but a few arguments on
every request of the upload: the SSE-C triple on UploadPart and Complete too, RequestPayer and
ExpectedBucketOwner everywhere (Abort and ListParts included).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ._config import CHECKSUM_ALGORITHMS

# Sent on CreateMultipartUpload (and PutObject) only.
OBJECT_ARGS = frozenset(
    {
        "ACL",
        "BucketKeyEnabled",
        "CacheControl",
        "ChecksumType",
        "ContentDisposition",
        "ContentEncoding",
        "ContentLanguage",
        "ContentType",
        "Expires",
        "GrantFullControl",
        "GrantRead",
        "GrantReadACP",
        "GrantWriteACP",
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
)
SSE_C_ARGS = frozenset({"SSECustomerAlgorithm", "SSECustomerKey", "SSECustomerKeyMD5"})
# Sent on every request of the upload.
EVERY_REQUEST_ARGS = frozenset({"ExpectedBucketOwner", "RequestPayer"})
# Conditional writes: on PutObject and CompleteMultipartUpload.
COMPLETE_ARGS = frozenset({"IfNoneMatch"})
KNOWN_ARGS = OBJECT_ARGS | SSE_C_ARGS | EVERY_REQUEST_ARGS | COMPLETE_ARGS | {"ChecksumAlgorithm"}


@dataclass(frozen=True, slots=True)
class RoutedArgs:
    """extra_args split by the requests they belong on."""

    create: dict[str, Any] = field(default_factory=dict)
    part: dict[str, Any] = field(default_factory=dict)
    complete: dict[str, Any] = field(default_factory=dict)
    control: dict[str, Any] = field(default_factory=dict)
    put: dict[str, Any] = field(default_factory=dict)
    checksum_algorithm: str | None = None

    @property
    def etag_is_md5(self) -> bool:
        """False when S3's ETags will not be MD5s of the data (SSE-KMS, SSE-C)."""
        sse = self.create.get("ServerSideEncryption", "")
        return "SSECustomerKey" not in self.part and not sse.startswith("aws:kms")

    def __repr__(self) -> str:
        # Never show SSE-C keys.
        return f"RoutedArgs(names={sorted(set(self.create) | set(self.part) | set(self.complete))})"


def route(extra_args: Mapping[str, Any] | None, checksum_algorithm: str | None) -> RoutedArgs:
    """Validate ``extra_args`` and split them per request; ``ValueError`` on a bad name."""
    args = dict(extra_args or {})
    unknown = sorted(set(args) - KNOWN_ARGS)
    if unknown:
        raise ValueError(
            f"unknown extra_args {unknown}; accepted names: {', '.join(sorted(KNOWN_ARGS))}"
        )
    algorithm = args.pop("ChecksumAlgorithm", None)
    if algorithm is not None:
        algorithm = str(algorithm).upper()
        if checksum_algorithm is not None and checksum_algorithm != algorithm:
            raise ValueError(
                f"extra_args ChecksumAlgorithm={algorithm!r} contradicts"
                f" TransferConfig.checksum_algorithm={checksum_algorithm!r}"
            )
    algorithm = algorithm or checksum_algorithm
    if algorithm is not None and algorithm not in CHECKSUM_ALGORITHMS:
        raise ValueError(
            f"ChecksumAlgorithm must be one of {', '.join(CHECKSUM_ALGORITHMS)}; got {algorithm!r}"
        )
    if isinstance(args.get("Tagging"), Mapping):
        args["Tagging"] = urlencode(args["Tagging"])
    if "Metadata" in args and not isinstance(args["Metadata"], Mapping):
        raise ValueError("extra_args Metadata must be a mapping of str to str")

    every = {k: v for k, v in args.items() if k in EVERY_REQUEST_ARGS}
    sse_c = {k: v for k, v in args.items() if k in SSE_C_ARGS}
    conditional = {k: v for k, v in args.items() if k in COMPLETE_ARGS}
    attributes = {k: v for k, v in args.items() if k in OBJECT_ARGS}
    create = attributes | sse_c | every
    if algorithm is not None:
        create["ChecksumAlgorithm"] = algorithm
    return RoutedArgs(
        create=create,
        part=sse_c | every,
        complete=sse_c | every | conditional,
        control=dict(every),
        # PutObject has no ChecksumType: a single request's checksum is always full-object.
        put={k: v for k, v in attributes.items() if k != "ChecksumType"}
        | sse_c
        | every
        | conditional,
        checksum_algorithm=algorithm,
    )
