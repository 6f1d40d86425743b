"""The lean path's requests against botocore's (issue 17): for each parameter asyncup sends,
the request ``_core.wire`` builds and signs is the one botocore builds for the same call.

botocore's request is caught as it would be sent (a ``before-send`` handler answers it), from
a client configured as asyncup's own (no checksum of botocore's, payload not signed). What
is compared is what SigV4 signs: the method, the path, the query, and every signed header's
value, and the signature itself, botocore's own telemetry headers (amz-sdk-*, which the lean
path does not send) taken out before botocore signs.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import botocore.session
import pytest
from awscrt.exceptions import AwsCrtError  # type: ignore[import-untyped]
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from asyncup._core import wire
from asyncup._core.checksums import b64, raw_digest
from asyncup._core.params import route
from asyncup._core.wire import (
    HEADERS,
    TRAIL_CHUNK,
    TRAILED,
    UNSIGNED,
    Fallback,
    Identity,
    Request,
    build,
    chunk_head,
    last_chunk,
    sign,
    trailed,
)
from asyncup._s3.client import _choose_python_signer
from tests.conftest import random_bytes

KEY = "dir/ünïcode key+with spaces&symbols~(1).bin"
SSE_C_KEY = b"k" * 32
WHEN = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
NOW = datetime.datetime(2026, 12, 6, 5, 30, 0, tzinfo=datetime.UTC)

# Each of the seed's parameters, as a caller gives it in extra_args.
EXTRA_ARGS: dict[str, dict[str, Any]] = {
    "none": {},
    "ACL": {"ACL": "bucket-owner-full-control"},
    "grants": {"GrantRead": 'id="abc"', "GrantFullControl": "emailAddress=a@example.com"},
    "grants ACP": {"GrantReadACP": 'uri="http://acs"', "GrantWriteACP": 'id="def"'},
    "content headers": {
        "ContentType": "text/plain; charset=utf-8",
        "CacheControl": "max-age=60",
        "ContentDisposition": 'attachment; filename="a.txt"',
        "ContentEncoding": "gzip",
        "ContentLanguage": "en",
        "WebsiteRedirectLocation": "/other",
    },
    "Expires": {"Expires": WHEN},
    "Metadata": {"Metadata": {"Project": "asyncup", "lower-case": "Mixed Value"}},
    "SSE-S3": {"ServerSideEncryption": "AES256"},
    "SSE-KMS": {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:us-east-1:111122223333:key/abc",
        "SSEKMSEncryptionContext": "eyJhIjoiYiJ9",
        "BucketKeyEnabled": True,
    },
    "SSE-C": {"SSECustomerKey": SSE_C_KEY},
    "StorageClass": {"StorageClass": "STANDARD_IA"},
    "Tagging": {"Tagging": {"team": "storage", "cost center": "42"}},
    "object lock": {
        "ObjectLockMode": "GOVERNANCE",
        "ObjectLockRetainUntilDate": WHEN,
        "ObjectLockLegalHoldStatus": "ON",
    },
    "object lock, microseconds": {
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": WHEN.replace(microsecond=123456),
    },
    "ExpectedBucketOwner": {"ExpectedBucketOwner": "111122223333"},
    "RequestPayer": {"RequestPayer": "requester"},
    "IfNoneMatch": {"IfNoneMatch": "*"},
    "checksum SHA256": {"ChecksumAlgorithm": "SHA256"},
}
DIGESTS = {
    "CRC32": {"ChecksumAlgorithm": "CRC32", "ChecksumCRC32": "AAAAAA=="},
    "SHA256": {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": "x" * 43 + "="},
    "MD5": {"ContentMD5": "1B2M2Y8AsgTpgAJUFY8L4w=="},
}


class _Raw:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b""


def asyncup_like(addressing_style: str) -> Any:
    """A botocore client configured as asyncup makes its own (no checksum of botocore's,
    payload not signed, no retries)."""
    config = Config(
        s3={"payload_signing_enabled": False, "addressing_style": addressing_style},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"total_max_attempts": 1},
    )
    return botocore.session.get_session().create_client(
        "s3",
        region_name="eu-west-3",
        endpoint_url="https://s3.eu-west-3.amazonaws.com",
        aws_access_key_id="AKID",
        aws_secret_access_key="SECRET",
        aws_session_token="TOKEN",
        config=config,
    )


@pytest.fixture(scope="module", params=["path", "virtual"])
def caught(request: pytest.FixtureRequest) -> Any:
    """A botocore client as asyncup makes its own, whose requests are caught, not sent."""
    client = asyncup_like(request.param)
    seen: list[Any] = []

    def catch(request: Any, **_: Any) -> AWSResponse:
        seen.append(request)
        return AWSResponse(request.url, 200, {"ETag": '"e"'}, _Raw())

    def untelemetered(request: Any, **_: Any) -> None:
        for name in [n for n in request.headers if n.lower().startswith("amz-sdk-")]:
            del request.headers[name]

    client.meta.events.register("before-send.s3.*", catch)
    client.meta.events.register("before-sign.s3.*", untelemetered)
    # botocore's Python signer, as asyncup's own clients sign (with awscrt installed botocore
    # would sign with the CRT, whose clock the test cannot set).
    client.meta.events.register_first("choose-signer.s3", _choose_python_signer)
    return client, seen, request.param


def botocore_request(caught: Any, operation: str, params: dict[str, Any]) -> Any:
    client, seen, _ = caught
    getattr(client, operation)(**params)
    return seen.pop()


def signed(headers: Any, authorization: str, host: str) -> dict[str, str]:
    """The headers SigV4 signed, by name (botocore's Python signer signs the URL's host
    without a Host header: the HTTP client adds it)."""
    names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    lower = {"host": host} | {name.lower(): _text(value) for name, value in headers.items()}
    return {name: lower[name] for name in names if not name.startswith("amz-sdk-")}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("digest", DIGESTS)
@pytest.mark.parametrize("extra", EXTRA_ARGS)
@pytest.mark.parametrize("operation", ["put_object", "upload_part"])
def test_the_lean_request_is_botocores(
    caught: Any, operation: str, extra: str, digest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same method, path, query and signed headers, and so the same signature."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    routed = route(EXTRA_ARGS[extra], None)
    params: dict[str, Any] = {
        "Bucket": "my-bucket",
        "Key": KEY,
        "Body": b"hello",
        "ContentLength": 5,
        **DIGESTS[digest],
        **(routed.put if operation == "put_object" else routed.part),
    }
    if operation == "upload_part":
        params |= {"UploadId": "up/load+id=", "PartNumber": 7}
    theirs = botocore_request(caught, operation, params)
    bucket_path = "/my-bucket" if caught[2] == "path" else ""
    ours = build(operation, params, bucket_path)
    assert isinstance(ours, Request), ours
    assert_signed_alike(ours, theirs)


def assert_signed_alike(ours: Request, theirs: Any, payload: str = UNSIGNED) -> None:
    """``ours``, signed, says what botocore's request ``theirs`` says: the same method, path,
    query, signed headers and signature."""
    url = urlsplit(theirs.url)
    ours_path, _, ours_query = ours.target.partition("?")
    assert ours.method == theirs.method
    assert ours_path == url.path
    assert sorted(parse_qsl(ours_query, keep_blank_values=True)) == sorted(
        parse_qsl(url.query, keep_blank_values=True)
    )
    who = Identity("AKID", "SECRET", "TOKEN", "eu-west-3")
    ours_headers = dict(sign(ours, url.netloc, who, NOW, payload))
    authorization = _text(theirs.headers["Authorization"])
    assert signed(ours_headers, ours_headers["Authorization"], url.netloc) == signed(
        theirs.headers, authorization, url.netloc
    )
    assert ours_headers["Authorization"] == authorization


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA256"])
@pytest.mark.parametrize("extra", ["none", "SSE-C", "ExpectedBucketOwner"])
def test_a_trailed_upload_part_is_botocores_over_tls(
    caught: Any, extra: str, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore over TLS sends an UploadPart's checksum in a trailer: ``wire.trailed`` says
    the same (signed headers and signature; botocore sends the body chunked, without a
    Content-Length, which ours has and leaves unsigned), and the body framed as ``frame``
    frames it is botocore's byte for byte, chunk sizes and trailer included."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    payload = random_bytes(TRAIL_CHUNK * 2 + 12345, seed=51)
    params: dict[str, Any] = {
        "Bucket": "my-bucket",
        "Key": KEY,
        "ContentLength": len(payload),
        "UploadId": "up/load+id=",
        "PartNumber": 7,
        "ChecksumAlgorithm": algorithm,
        **route(EXTRA_ARGS.get(extra, {}), None).part,
    }
    theirs = botocore_request(caught, "upload_part", params | {"Body": io.BytesIO(payload)})
    assert theirs.headers["Transfer-Encoding"] == b"chunked"
    bucket_path = "/my-bucket" if caught[2] == "path" else ""
    plain = build("upload_part", params, bucket_path)
    assert isinstance(plain, Request), plain
    ours = trailed(plain, algorithm)
    assert_signed_alike(ours, theirs, TRAILED)
    framed = frame(payload, algorithm)
    assert framed == theirs.body.read()
    assert len(framed) == int(dict(ours.headers)["Content-Length"])


def frame(payload: bytes, algorithm: str) -> bytes:
    """``payload`` aws-chunked as a trailed request's body (what the sender will do)."""
    chunks = [payload[at : at + TRAIL_CHUNK] for at in range(0, len(payload), TRAIL_CHUNK)]
    value = b64(raw_digest(algorithm, memoryview(payload)))
    return b"".join(chunk_head(len(c)) + c + b"\r\n" for c in chunks) + last_chunk(algorithm, value)


def test_every_header_of_the_table_is_tested() -> None:
    given = {name for args in EXTRA_ARGS.values() for name in route(args, None).put}
    given |= {name for digest in DIGESTS.values() for name in digest}
    untested = set(HEADERS) - given - {"ContentLength", "ChecksumCRC32C", "ChecksumCRC64NVME",
                                       "ChecksumSHA1"}  # fmt: skip
    assert untested == set()


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"Metadata": {"k": "välue"}}, "not ASCII"),
        ({"Expires": datetime.datetime(2030, 1, 1)}, "converted by botocore only"),
        ({"Expires": "2030-01-01"}, "converted by botocore only"),
        ({"ChecksumMode": "ENABLED"}, "the parameter ChecksumMode"),
    ],
)
def test_what_the_table_cannot_say_goes_through_botocore(
    params: dict[str, Any], reason: str
) -> None:
    outcome = build("put_object", {"Bucket": "b", "Key": "k", **params}, "")
    assert isinstance(outcome, Fallback)
    assert reason in outcome.reason
    assert isinstance(build("complete_multipart_upload", {"Bucket": "b", "Key": "k"}, ""), Fallback)


def test_the_signature_is_sigv4_by_hand() -> None:
    """The signature, computed step by step as the SigV4 documentation says (hashlib, hmac):
    canonical request, string to sign, the derived key, the signature."""
    request = Request("PUT", "/b/a%20key?partNumber=1&uploadId=u", [("x-amz-meta-a", "1")])
    who = Identity("AKID", "SECRET", "TOKEN", "eu-west-3")
    headers = dict(sign(request, "s3.example", who, NOW))
    stamp, day = "20261206T053000Z", "20261206"
    canonical_headers = {
        "host": "s3.example",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "x-amz-date": stamp,
        "x-amz-meta-a": "1",
        "x-amz-security-token": "TOKEN",
    }
    names = ";".join(canonical_headers)
    canonical = "\n".join(
        ["PUT", "/b/a%20key", "partNumber=1&uploadId=u"]
        + [f"{k}:{v}" for k, v in canonical_headers.items()]
        + ["", names, "UNSIGNED-PAYLOAD"]
    )
    scope = f"{day}/eu-west-3/s3/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}"
    key = b"AWS4SECRET"
    for part in (day, "eu-west-3", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential=AKID/{scope}, SignedHeaders={names}, Signature={signature}"
    )


def test_each_second_and_each_identity_signs_with_its_own_date_and_key() -> None:
    """The signing configuration is made once per identity and second: the next second's
    requests say their own X-Amz-Date, another identity signs with its own key."""
    request = Request("PUT", "/b/k", [])
    who = Identity("AKID", "SECRET", None, "us-east-1")
    first = dict(sign(request, "s3.example", who, NOW))
    again = dict(sign(request, "s3.example", who, NOW.replace(microsecond=900_000)))
    later = dict(sign(request, "s3.example", who, NOW + datetime.timedelta(seconds=1)))
    rotated = dict(sign(request, "s3.example", Identity("AKID2", "OTHER", None, "us-east-1"), NOW))
    assert first == again
    assert (first["X-Amz-Date"], later["X-Amz-Date"]) == ("20261206T053000Z", "20261206T053001Z")
    assert later["Authorization"] != first["Authorization"]
    assert rotated["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID2/")
    assert (
        rotated["Authorization"].split("Signature=")[1]
        != first["Authorization"].split("Signature=")[1]
    )


def test_an_awscrt_whose_signer_does_not_answer_at_once_signs_through_its_public_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The signer is called without awscrt's Future; an awscrt whose signer takes other
    arguments, or does not sign before it returns, still signs each request, through
    ``auth.aws_sign_request``, on a request of its own (never one half signed)."""
    request = Request("PUT", "/b/k", [("x-amz-meta-a", "1")])
    who = Identity("AKID", "SECRET", "TOKEN", "eu-west-3")
    expected = sign(request, "s3.example", who, NOW)
    with monkeypatch.context() as patched:  # by default, the public wrapper is not called

        def no_wrapper(crt: Any, config: Any) -> None:
            raise AssertionError("awscrt's public wrapper was called")

        patched.setattr(wire.auth, "aws_sign_request", no_wrapper)
        assert sign(request, "s3.example", who, NOW) == expected
    touched: list[Any] = []

    def later(crt: Any, config: Any, on_done: Any) -> None:
        crt.headers.add("X-Amz-Date", "half-way")  # still signing, on another thread
        touched.append(crt)

    def other_arguments(crt: Any, config: Any) -> None:
        raise AssertionError("not called with three arguments")  # pragma: no cover

    for native in (later, other_arguments):
        monkeypatch.setattr(wire, "_native", native)
        assert sign(request, "s3.example", who, NOW) == expected
        assert wire._native is None  # the public API from now on
        assert sign(request, "s3.example", who, NOW) == expected
    assert len(touched) == 1


UNSUPPORTED_ALGORITHM = 6144  # aws-c-auth's first error code


def test_a_signing_failure_is_awscrts_own_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(crt: Any, config: Any, on_done: Any) -> None:
        on_done(UNSUPPORTED_ALGORITHM)

    monkeypatch.setattr(wire, "_native", failing)
    with pytest.raises(AwsCrtError) as caught:
        sign(Request("PUT", "/b/k", []), "s3.example", Identity("A", "S", None, "r"), NOW)
    assert caught.value.name == "AWS_AUTH_SIGNING_UNSUPPORTED_ALGORITHM"
