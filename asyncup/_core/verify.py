"""Integrity checks on S3's answers: pure functions, no I/O.

What asyncup sends with each write (``digest_params``), how it checks the answer to each
part or PutObject (``check_write``: a wrong answer is retried), and what it expects of
Complete (``expected_object``: a mismatch there is an ``IntegrityError``).

Who vouches for a write's bytes:

    a store that verifies checksums accepted it       -> the store checked it   "store"
    otherwise, the ETag is an MD5 (no SSE-C/KMS)      -> asyncup compares it
                                                         with the bytes' MD5    "asyncup"
    otherwise                                         -> nobody                 None

Whether a store verifies (``StoreChecks``) is learnt once per client, by a probe: a store
that answers an echo of the checksum it was sent may not have checked it (moto echoes any
value), so only a store that refuses a wrong checksum (S3's BadDigest) is taken to verify.
The MD5 is then computed, along with the checksum in one pass off the event loop, only for
the stores that need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .checksums import (
    PartDigest,
    b64,
    composite_checksum,
    full_object_checksum,
    multipart_etag,
    raw_digest,
)
from .errors import BadResponseError
from .params import RoutedArgs
from .results import UploadResult


@dataclass(frozen=True, slots=True)
class CompletedPart:
    number: int
    etag: str
    digest: PartDigest
    size: int


@dataclass(frozen=True, slots=True)
class ListedPart:
    """A part as ListParts says S3 holds it."""

    number: int
    etag: str
    size: int
    checksum: str | None = None
    """The part's checksum (base64), when the upload has one and the store lists it."""


@dataclass(frozen=True, slots=True)
class Verified:
    """What was compared with S3's answer, and matched."""

    etag: bool = False
    checksum: bool = False


@dataclass(slots=True)
class StoreChecks:
    """Whether a store (one client's endpoint) verifies the checksums it is sent: refuses a
    write whose bytes do not match them. None until known."""

    verifies: bool | None = None
    small_writes: int = 0
    """Small objects written (PutObject, their MD5 compared) while ``verifies`` was None."""
    probed: bool = False
    """Whether a probe was tried (it may have said neither yes nor no)."""
    trails: bool | None = None
    """Whether it verifies a checksum sent as a trailer too (aws-chunked): learnt by a probe
    of its own, over TLS (``integrity.learn_trailers``); a store may take a trailer and
    check nothing (moto even says the value back)."""
    trailed: bool = False
    """Whether it took a part with a trailer: a trailer refused after that is taken for
    bytes changed on the way, not for a store that refuses trailers."""


# Endpoints documented to verify every checksum they are sent (no probe needed).
VERIFYING_HOSTS = (".amazonaws.com", ".amazonaws.com.cn")


def known_to_verify(endpoint_url: str | None) -> bool:
    host = urlsplit(endpoint_url or "").hostname or ""
    return host.endswith(VERIFYING_HOSTS)


def wrong_checksum(algorithm: str, body: bytes) -> str:
    """A checksum header value that ``body`` does not have: the probe's."""
    return b64(spoiled(raw_digest(algorithm, memoryview(body))))


def spoiled(digest: bytes) -> bytes:
    """Another digest of the same size: what a probe says to see if a store checks."""
    return bytes([digest[0] ^ 0xFF]) + digest[1:]


def verified_by(verified: Verified, store_verified: bool) -> str | None:
    """Who vouched for one write's bytes: "store" (it verifies the checksum it was sent, and
    took the write), "asyncup" (the ETag matched the MD5), or None. An echoed checksum that
    matches proves nothing on its own: some stores echo whatever they are sent."""
    if store_verified:
        return "store"
    return "asyncup" if verified.etag else None


def unverifiable(args: RoutedArgs, response: Mapping[str, Any], integrity: str) -> str:
    """Why nothing vouches for a write (the store does not verify checksums, and its ETag
    was not compared): the words of ``UploadResult.unverified_reason``."""
    if integrity == "off":
        return "the store does not verify checksums, and integrity='off' skips asyncup's MD5 check"
    if response.get("SSECustomerAlgorithm") or "SSECustomerKey" in args.part:
        why = "under SSE-C"
    elif str(response.get("ServerSideEncryption", "")).startswith("aws:kms") or not (
        args.etag_is_md5
    ):
        why = "under SSE-KMS"
    else:
        why = "here"
    return f"the store does not verify checksums, and {why} the ETag is not an MD5 of the bytes"


def digest_params(args: RoutedArgs, digest: PartDigest) -> dict[str, str]:
    """The request parameters that let S3 check a part's (or object's) bytes.

    The algorithm is named as well as its value (x-amz-sdk-checksum-algorithm: S3 requires it,
    or Content-MD5, for object-lock writes); botocore sees the value is there and does not
    compute it again.
    """
    algorithm = args.checksum_algorithm
    if algorithm is not None and digest.checksum_b64 is not None:
        return {"ChecksumAlgorithm": algorithm, f"Checksum{algorithm}": digest.checksum_b64}
    if digest.content_md5 is not None:
        return {"ContentMD5": digest.content_md5}
    return {}


def md5_wanted(args: RoutedArgs, integrity: str, store_verifies: bool | None) -> bool:
    """Whether a write's MD5 is computed along with its checksum: for a store not known to
    verify checksums, where the ETag will be an MD5 to compare it with."""
    return (
        integrity != "off"
        and args.checksum_algorithm is not None
        and store_verifies is not True
        and args.etag_is_md5
    )


def put_params(
    bucket: str, key: str, body: Any, args: RoutedArgs, digest: PartDigest
) -> dict[str, Any]:
    """A PutObject's parameters: the body, its checksum (``digest_params``), the object's."""
    return {
        "Bucket": bucket,
        "Key": key,
        "Body": body,
        "ContentLength": len(body),
        **digest_params(args, digest),
        **args.put,
    }


def written(
    args: RoutedArgs,
    response: Mapping[str, Any],
    verified: Verified,
    *,
    bucket: str,
    key: str,
    size: int,
    parts: int,
    upload_id: str | None,
    verified_by: str | None,
    unverified_reason: str | None,
) -> UploadResult:
    """The UploadResult of an object written, from the answer that wrote it."""
    algorithm = args.checksum_algorithm
    return UploadResult(
        bucket=bucket,
        key=key,
        etag=response["ETag"],
        size=size,
        parts=parts,
        upload_id=upload_id,
        version_id=response.get("VersionId"),
        checksum=response.get(f"Checksum{algorithm}") if algorithm else None,
        checksum_algorithm=algorithm,
        checksum_type=args.checksum_type,
        etag_verified=verified.etag,
        checksum_verified=verified.checksum,
        verified_by=verified_by,
        unverified_reason=unverified_reason,
    )


def etag_is_md5(args: RoutedArgs, response: Mapping[str, Any]) -> bool:
    """Whether S3's ETag for this write is the MD5 of its bytes (not under SSE-KMS/SSE-C,
    whether asked for or the bucket's default)."""
    if not args.etag_is_md5 or response.get("SSECustomerAlgorithm"):
        return False
    return not str(response.get("ServerSideEncryption", "")).startswith("aws:kms")


def check_write(
    args: RoutedArgs, response: Mapping[str, Any], digest: PartDigest, what: str
) -> Verified:
    """Reject an UploadPart / PutObject answer that does not acknowledge our bytes."""
    etag = response.get("ETag")
    if not etag:
        raise BadResponseError(f"S3 acknowledged {what} without an ETag")
    etag_ok = False
    if digest.md5 is not None and etag_is_md5(args, response):
        if _unquote(etag) != digest.md5.hex():
            raise BadResponseError(
                f"S3's ETag {etag} for {what} is not the MD5 of the bytes sent ({digest.md5.hex()})"
            )
        etag_ok = True
    algorithm = args.checksum_algorithm
    echoed = response.get(f"Checksum{algorithm}") if algorithm else None
    if echoed and echoed != digest.checksum_b64:
        raise BadResponseError(
            f"S3's {algorithm} checksum {echoed} for {what} is not that of the bytes sent"
            f" ({digest.checksum_b64})"
        )
    return Verified(etag=etag_ok, checksum=bool(echoed))


def complete_params(args: RoutedArgs, parts: Sequence[CompletedPart]) -> dict[str, Any]:
    """CompleteMultipartUpload's parts list, and the full-object checksum when there is one."""
    algorithm = args.checksum_algorithm
    listed = []
    for part in parts:
        entry = {"PartNumber": part.number, "ETag": part.etag}
        if algorithm is not None and part.digest.checksum_b64 is not None:
            entry[f"Checksum{algorithm}"] = part.digest.checksum_b64
        listed.append(entry)
    params: dict[str, Any] = {"MultipartUpload": {"Parts": listed}}
    if algorithm is not None and args.checksum_type == "FULL_OBJECT":
        params[f"Checksum{algorithm}"] = expected_checksum(args, parts)
        params["ChecksumType"] = "FULL_OBJECT"
        params["MpuObjectSize"] = sum(part.size for part in parts)
    return params


def expected_checksum(args: RoutedArgs, parts: Sequence[CompletedPart]) -> str | None:
    """The object's checksum as S3 should report it, from the parts' own."""
    algorithm = args.checksum_algorithm
    checksums = [part.digest.checksum for part in parts]
    if algorithm is None or any(c is None for c in checksums):
        return None
    raws = [c for c in checksums if c is not None]
    if args.checksum_type == "FULL_OBJECT":
        return full_object_checksum(
            algorithm, [(c, p.size) for c, p in zip(raws, parts, strict=True)]
        )
    return composite_checksum(algorithm, raws)


def expected_object(
    args: RoutedArgs, response: Mapping[str, Any], parts: Sequence[CompletedPart]
) -> tuple[Verified, str | None]:
    """Compare Complete's answer with what the parts sent imply.

    Returns what matched, and a description of the first mismatch (None when all agree).
    """
    etag = str(response.get("ETag", ""))
    verified_etag = False
    md5s = [part.digest.md5 for part in parts]
    if etag_is_md5(args, response) and all(m is not None for m in md5s):
        expected = multipart_etag([m for m in md5s if m is not None])
        if _unquote(etag) != _unquote(expected):
            return (
                Verified(),
                f"its ETag {etag} differs from {expected}, computed from the parts sent",
            )
        verified_etag = True
    verified_checksum = False
    algorithm = args.checksum_algorithm
    answered = response.get(f"Checksum{algorithm}") if algorithm else None
    expected_sum = expected_checksum(args, parts)
    if answered and expected_sum is not None:
        if not _same_checksum(answered, expected_sum):
            return Verified(etag=verified_etag), (
                f"its {algorithm} checksum {answered} differs from {expected_sum},"
                " computed from the parts sent"
            )
        verified_checksum = True
    return Verified(etag=verified_etag, checksum=verified_checksum), None


def same_digest(a: PartDigest, b: PartDigest) -> bool:
    """Whether two digests of a part agree: by checksum where either has one, else by MD5."""
    if a.checksum is not None or b.checksum is not None:
        return a.checksum == b.checksum
    return a.md5 == b.md5


def same_etag(a: str, b: str) -> bool:
    """Whether two ETags are the same, quoted or not, in either case."""
    return a.strip('" ').lower() == b.strip('" ').lower()


def _same_checksum(answered: str, expected: str) -> bool:
    # Some stores omit the "-N" suffix of composite checksums.
    return answered == expected or answered == expected.rsplit("-", 1)[0]


def _unquote(etag: str) -> str:
    return etag.strip().strip('"').lower()
