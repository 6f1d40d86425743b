"""The lean path's requests (issue 17): PutObject and UploadPart as S3's REST API has them,
built from the parameters asyncup passes botocore, without botocore; no I/O. A fast start
(``_s3.start``) builds CreateMultipartUpload and AbortMultipartUpload here too.

``build`` gives the method, the target (path and query) and the headers, each parameter
where botocore's serializer puts it (``tests/s3/test_wire.py`` compares the two, parameter
by parameter); ``sign`` adds SigV4 with awscrt's native signer (UNSIGNED-PAYLOAD: every
write carries a checksum header S3 checks, as asyncup's own botocore clients send it).
A parameter this table does not know, or a value it would have to convert otherwise than
botocore, gives a ``Fallback`` naming it: that request goes through botocore.
``request_head`` writes the request's head as aiobotocore sends it; ``read_headers`` and
``metadata`` read an answer's head as botocore does.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import _awscrt  # type: ignore[import-not-found]
from awscrt import auth, exceptions, http  # type: ignore[import-untyped]

# Parameter -> header, as S3's model places them (location "header").
HEADERS: dict[str, str] = {
    "ACL": "x-amz-acl",
    "BucketKeyEnabled": "x-amz-server-side-encryption-bucket-key-enabled",
    "CacheControl": "Cache-Control",
    "ChecksumAlgorithm": "x-amz-sdk-checksum-algorithm",
    "ChecksumCRC32": "x-amz-checksum-crc32",
    "ChecksumCRC32C": "x-amz-checksum-crc32c",
    "ChecksumCRC64NVME": "x-amz-checksum-crc64nvme",
    "ChecksumSHA1": "x-amz-checksum-sha1",
    "ChecksumSHA256": "x-amz-checksum-sha256",
    "ContentDisposition": "Content-Disposition",
    "ContentEncoding": "Content-Encoding",
    "ContentLanguage": "Content-Language",
    "ContentLength": "Content-Length",
    "ContentMD5": "Content-MD5",
    "ContentType": "Content-Type",
    "ExpectedBucketOwner": "x-amz-expected-bucket-owner",
    "Expires": "Expires",
    "GrantFullControl": "x-amz-grant-full-control",
    "GrantRead": "x-amz-grant-read",
    "GrantReadACP": "x-amz-grant-read-acp",
    "GrantWriteACP": "x-amz-grant-write-acp",
    "IfNoneMatch": "If-None-Match",
    "ObjectLockLegalHoldStatus": "x-amz-object-lock-legal-hold",
    "ObjectLockMode": "x-amz-object-lock-mode",
    "ObjectLockRetainUntilDate": "x-amz-object-lock-retain-until-date",
    "RequestPayer": "x-amz-request-payer",
    "SSECustomerAlgorithm": "x-amz-server-side-encryption-customer-algorithm",
    "SSECustomerKey": "x-amz-server-side-encryption-customer-key",
    "SSECustomerKeyMD5": "x-amz-server-side-encryption-customer-key-MD5",
    "SSEKMSEncryptionContext": "x-amz-server-side-encryption-context",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "StorageClass": "x-amz-storage-class",
    "Tagging": "x-amz-tagging",
    "WebsiteRedirectLocation": "x-amz-website-redirect-location",
}
_METHODS = {
    "put_object": "PUT",
    "upload_part": "PUT",
    "create_multipart_upload": "POST",
    "abort_multipart_upload": "DELETE",
}
OPERATIONS = frozenset(_METHODS)
THRESHOLD = 1024 * 1024
"""Bodies from this size on are sent from a worker thread (``_s3.threaded``); a smaller one's
trip to a thread costs more than it saves, and a fast start sends it itself."""
# Where an operation's model says otherwise than HEADERS: another header, or a parameter it
# does not take (botocore would refuse it; asyncup's routing never gives it).
_ELSEWHERE: dict[str, dict[str, str | None]] = {
    "create_multipart_upload": {
        "ChecksumAlgorithm": "x-amz-checksum-algorithm",
        "ChecksumType": "x-amz-checksum-type",
        **dict.fromkeys(
            ("ContentLength", "ContentMD5", "IfNoneMatch", "ChecksumCRC32", "ChecksumCRC32C",
             "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256"),
        ),
    },
}  # fmt: skip
_ONLY: dict[str, frozenset[str]] = {
    "abort_multipart_upload": frozenset({"ExpectedBucketOwner", "RequestPayer"}),
}
_IN_TARGET = frozenset({"Bucket", "Key", "Body", "UploadId", "PartNumber"})
_TIMESTAMPS = frozenset({"Expires", "ObjectLockRetainUntilDate"})


@dataclass(frozen=True, slots=True)
class Fallback:
    """Why a request goes through botocore instead (for a DEBUG line)."""

    reason: str


UNSIGNED = "UNSIGNED-PAYLOAD"
TRAILED = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"  # (awscrt has no name for it)
TRAIL_CHUNK = 1024 * 1024
"""Payload bytes per aws-chunked chunk of a ``trailed`` body (botocore's chunk size)."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    """The path (percent-encoded as botocore encodes it) and the query."""
    headers: list[tuple[str, str]]


def build(operation: str, params: Mapping[str, Any], bucket_path: str) -> Request | Fallback:
    """``operation``'s request for ``params``; ``bucket_path`` is the bucket's path on its
    endpoint ("" for a virtual-hosted bucket, "/bucket" for path style)."""
    method = _METHODS.get(operation)
    if method is None:
        return Fallback(f"{operation} is not on the lean path")
    elsewhere = _ELSEWHERE.get(operation, {})
    only = _ONLY.get(operation)
    headers: list[tuple[str, str]] = []
    for name, value in params.items():
        if name in _IN_TARGET:
            continue
        if only is not None and name not in only:
            return Fallback(f"the parameter {name}")
        if name == "Metadata":
            for key, text in value.items():
                if not (key.isascii() and text.isascii()):
                    return Fallback("Metadata that is not ASCII (botocore refuses it)")
                headers.append((f"x-amz-meta-{key}", text))
            continue
        header = elsewhere[name] if name in elsewhere else HEADERS.get(name)
        if header is None:
            return Fallback(f"the parameter {name}")
        text = _header_value(name, value)
        if text is None:
            return Fallback(f"{name}={value!r}: converted by botocore only")
        headers.append((header, text))
    return Request(method, target(operation, params, bucket_path), headers)


def target(operation: str, params: Mapping[str, Any], bucket_path: str) -> str:
    """The path and query of ``operation`` on the object ``params`` names: the key and the
    upload's id encoded as botocore encodes them."""
    path = bucket_path + "/" + quote(params["Key"], safe="/~")
    if operation == "create_multipart_upload":
        return path + "?uploads"
    if operation == "upload_part":
        query = {"partNumber": str(params["PartNumber"]), "uploadId": params["UploadId"]}
    elif operation in ("complete_multipart_upload", "abort_multipart_upload"):
        query = {"uploadId": params["UploadId"]}
    else:
        return path
    return path + "?" + urlencode(query, safe="~", quote_via=quote)


def _header_value(name: str, value: object) -> str | None:
    if name in _TIMESTAMPS:
        if not isinstance(value, datetime.datetime) or value.tzinfo is None:
            return None  # a string, a number, a naive time: botocore's parsing decides
        utc = value.astimezone(datetime.UTC).replace(microsecond=0)  # as botocore sends it
        if name == "ObjectLockRetainUntilDate":  # timestampFormat iso8601 in S3's model
            return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        from email.utils import format_datetime  # (rare: not loaded for every command)

        return format_datetime(utc, usegmt=True)  # headers' default: rfc822
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.isascii():
        return value
    return None


@dataclass(frozen=True, slots=True)
class Identity:
    """Frozen credentials and where they sign."""

    access_key: str
    secret_key: str
    token: str | None
    region: str


def sign(
    request: Request,
    host: str,
    who: Identity,
    now: datetime.datetime | None = None,
    payload: str = UNSIGNED,
) -> list[tuple[str, str]]:
    """``request``'s headers with Host and SigV4's (X-Amz-Date, x-amz-content-sha256,
    the token's, Authorization), signed for S3 with awscrt's native signer; ``payload`` is
    what x-amz-content-sha256 says of the body (``TRAILED`` for a ``trailed`` request)."""
    now = now or datetime.datetime.now(datetime.UTC)
    config = _config(who, now.replace(microsecond=0), payload)  # X-Amz-Date says no more
    signed = _signed(request, host, config).headers
    # Only what the signer added is read back (each read is a call into awscrt).
    added = [(name, signed.get(name)) for name in _ADDED if name != _TOKEN or who.token]
    return [("Host", host), *request.headers, *added]


_TOKEN = "X-Amz-Security-Token"
_ADDED = ("X-Amz-Date", "x-amz-content-sha256", _TOKEN, "Authorization")
# awscrt's signer itself, which its public ``auth.aws_sign_request`` wraps in a Future. Called
# directly it costs the event loop ~8-15 us less per request, measured in a long-lived process
# (benchmarks/PROFILE.md); with static credentials it signs before it returns.
_native: Any = getattr(_awscrt, "sign_request_aws", None)


def _signed(request: Request, host: str, config: Any) -> Any:
    global _native
    if _native is not None:
        crt = _crt_request(request, host)
        codes: list[int] = []
        try:
            _native(crt, config, codes.append)
        except TypeError:  # an awscrt whose signer takes other arguments
            codes = []
        if codes == [0]:
            return crt
        if codes:
            raise exceptions.from_code(codes[0])
        # Not signed as it returned (another awscrt): its public API from now on, on a
        # request of its own.
        _native = None
    crt = _crt_request(request, host)
    auth.aws_sign_request(crt, config).result()  # static credentials: done at once
    return crt


def _crt_request(request: Request, host: str) -> Any:
    headers = http.HttpHeaders([("Host", host), *request.headers])
    return http.HttpRequest(request.method, request.target, headers)


@functools.lru_cache(maxsize=4)
def _config(who: Identity, when: datetime.datetime, payload: str) -> Any:
    """The signing configuration for ``who`` in one second (made once for all its requests)."""
    return auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=_provider(who),
        region=who.region,
        service="s3",
        date=when,
        signed_body_value=payload,
        signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
        use_double_uri_encode=False,  # S3's rules: the path as it is sent
        should_normalize_uri_path=False,
        # botocore sends a trailed body chunked, without a Content-Length to sign: the same
        # signature for ours, which has one.
        should_sign_header=_not_the_length if payload == TRAILED else None,
    )


def _not_the_length(name: str) -> bool:
    return name.lower() != "content-length"


@functools.lru_cache(maxsize=16)
def _provider(who: Identity) -> Any:
    return auth.AwsCredentialsProvider.new_static(who.access_key, who.secret_key, who.token)


def trailed(request: Request, algorithm: str) -> Request:
    """``request`` (an UploadPart or PutObject of a known length, without its checksum's
    value) with that checksum in a trailer, as botocore sends it over TLS: the body
    aws-chunked (``frame``), its length the framed one, the payload's in
    x-amz-decoded-content-length, the checksum named in x-amz-trailer. Sign it with
    ``payload=TRAILED``."""
    headers: list[tuple[str, str]] = []
    length = encoding = None
    for name, value in request.headers:
        if name == "Content-Length":
            length = int(value)
        elif name == "Content-Encoding":
            encoding = value
        else:
            headers.append((name, value))
    if length is None:
        raise ValueError("a trailed request needs its Content-Length")
    headers += [
        ("Content-Encoding", f"{encoding},aws-chunked" if encoding else "aws-chunked"),
        ("Content-Length", str(framed_length(length, algorithm))),
        ("x-amz-decoded-content-length", str(length)),
        ("x-amz-trailer", trailer_name(algorithm)),
    ]
    return Request(request.method, request.target, headers)


def trailer_name(algorithm: str) -> str:
    return f"x-amz-checksum-{algorithm.lower()}"


_B64_LENGTH = {"CRC32": 8, "CRC32C": 8, "CRC64NVME": 12, "SHA1": 28, "SHA256": 44}


def framed_length(length: int, algorithm: str) -> int:
    """The bytes ``frame`` makes of a payload of ``length`` bytes."""
    whole, rest = divmod(length, TRAIL_CHUNK)
    framing = whole * len(chunk_head(TRAIL_CHUNK) + b"\r\n")
    framing += len(chunk_head(rest) + b"\r\n") if rest else 0
    trailer = len(_last_chunk(algorithm, "=" * _B64_LENGTH[algorithm]))
    return length + framing + trailer


def chunk_head(size: int) -> bytes:
    """What comes before a chunk of ``size`` payload bytes (and b"\\r\\n" after it)."""
    return f"{size:x}\r\n".encode()


def _last_chunk(algorithm: str, value: str) -> bytes:
    return f"0\r\n{trailer_name(algorithm)}:{value}\r\n\r\n".encode()


def last_chunk(algorithm: str, value: str) -> bytes:
    """The end of a trailed body: the empty chunk, the checksum's value (base64), a blank
    line."""
    if len(value) != _B64_LENGTH[algorithm]:
        raise ValueError(f"a {algorithm} checksum of {len(value)} characters")
    return _last_chunk(algorithm, value)


# What goes out before the body, and what botocore reads off an answer's head.
def request_head(
    method: str,
    target: str,
    host: str,
    headers: Sequence[tuple[str, str]],
    *,
    length: int | None = None,
) -> bytes:
    """The request line and headers, as aiobotocore sends them (Host first, identity
    encoding asked for); ``length``, the body's, as Content-Length unless ``headers`` say
    it. The body follows the head at once, so an Expect: 100-continue is left out (SigV4
    never signs it)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
    sized = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("host", "expect"):
            continue
        sized = sized or lowered == "content-length"
        lines.append(f"{name}: {value}")
    if length is not None and not sized:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def metadata(status: int, head: Mapping[str, str]) -> dict[str, Any]:
    """An answer's ``ResponseMetadata`` as botocore gives it."""
    return {
        "RequestId": head.get("x-amz-request-id", ""),
        "HostId": head.get("x-amz-id-2", ""),
        "HTTPStatusCode": status,
        "HTTPHeaders": head,
        "RetryAttempts": 0,
    }


def read_headers(outputs: Mapping[str, tuple[str, str]], head: Mapping[str, str]) -> dict[str, Any]:
    """An answer's members that S3 sends as headers (``members_by_header``'s), as botocore
    reads them."""
    parsed: dict[str, Any] = {}
    for header, value in head.items():  # the answer's few headers, not the model's many
        found = outputs.get(header)
        if found is None:
            continue
        member, kind = found
        if kind == "boolean":
            parsed[member] = value.lower() == "true"
        elif kind in ("integer", "long"):
            parsed[member] = int(value)
        elif kind == "timestamp":  # (rare: a Create's AbortDate)
            from email.utils import parsedate_to_datetime

            parsed[member] = parsedate_to_datetime(value)
        else:
            parsed[member] = value
    return parsed
