"""The lean path's CreateMultipartUpload and CompleteMultipartUpload against botocore's (issue
17): for each parameter asyncup sends, the same signed request (method, path, query, every
signed header, the signature) and the same body; for each answer, the same parsed result.

botocore's side is a client configured as asyncup's own, whose requests are caught as they
would be sent (``test_wire``'s fixture) or answered with a canned answer (below).
"""

from __future__ import annotations

import asyncio
from typing import Any

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse

from asyncup._core.params import route
from asyncup._core.wire import Fallback, Request, build
from asyncup._s3.lean import Lean
from tests.s3.test_wire import (
    EXTRA_ARGS,
    KEY,
    NOW,
    assert_signed_alike,
    asyncup_like,
    botocore_request,
)
from tests.s3.test_wire import caught as caught  # the fixture, shared

PARTS = [
    {"PartNumber": 1, "ETag": '"a&b<c>"', "ChecksumCRC32": "AAAAAA=="},
    {"PartNumber": 2, "ETag": '"d"', "ChecksumCRC32": "BBBBBB=="},
]
CHECKSUMS = {
    "no checksum": None,
    "CRC32": "CRC32",
    "CRC32 full object": "CRC32-FULL_OBJECT",
    "SHA256": "SHA256",
}


def _params(operation: str, extra: str, checksum: str | None) -> dict[str, Any]:
    algorithm = checksum.split("-")[0] if checksum else None
    args = {**EXTRA_ARGS[extra]}
    if checksum and checksum.endswith("FULL_OBJECT"):
        args["ChecksumType"] = "FULL_OBJECT"
    routed = route(args, algorithm)
    params: dict[str, Any] = {"Bucket": "my-bucket", "Key": KEY}
    if operation == "create_multipart_upload":
        return params | routed.create
    parts = [{k: v for k, v in part.items() if algorithm == "CRC32" or k[:8] != "Checksum"}
             for part in PARTS]  # fmt: skip
    params |= {"UploadId": "up/load+id=", "MultipartUpload": {"Parts": parts}}
    if routed.checksum_type == "FULL_OBJECT":
        params |= {"ChecksumCRC32": "CCCCCC==", "ChecksumType": "FULL_OBJECT", "MpuObjectSize": 9}
    return params | routed.complete


CASES = [
    (extra, checksum)
    for extra in EXTRA_ARGS
    for checksum in CHECKSUMS
    if not (extra == "checksum SHA256" and checksum == "CRC32 full object")  # refused by route
]


@pytest.mark.parametrize(("extra", "checksum"), CASES)
@pytest.mark.parametrize("operation", ["create_multipart_upload", "complete_multipart_upload"])
def test_the_lean_request_is_botocores(
    caught: Any, operation: str, extra: str, checksum: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    params = _params(operation, extra, CHECKSUMS[checksum])
    theirs = botocore_request(caught, operation, params)
    bucket_path = "/my-bucket" if caught[2] == "path" else ""
    built = Lean(caught[0])._build(operation, params, bucket_path)
    assert isinstance(built, tuple), built
    ours, body = built
    assert ours.method == "POST"
    assert bytes(body.view) == (theirs.body or b"")
    assert_signed_alike(ours, theirs)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


@pytest.fixture(scope="module")
def answering() -> Any:
    """A botocore client as asyncup makes its own, answered by what ``answer`` holds."""
    client = asyncup_like("path")
    answer: dict[str, Any] = {}

    def respond(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 200, answer["headers"], _Raw(answer["body"]))

    client.meta.events.register("before-send.s3.*", respond)
    return client, answer


NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
ANSWERS: dict[str, tuple[dict[str, str], bytes]] = {
    "create_multipart_upload": (
        {
            "x-amz-abort-date": "Wed, 01 Jan 2031 00:00:00 GMT",
            "x-amz-abort-rule-id": "rule-1",
            "x-amz-server-side-encryption": "aws:kms",
            "x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:eu-west-3:1:key/k",
            "x-amz-server-side-encryption-bucket-key-enabled": "true",
            "x-amz-server-side-encryption-customer-key-MD5": "bWQ1",
            "x-amz-checksum-algorithm": "CRC32",
            "x-amz-checksum-type": "COMPOSITE",
            "x-amz-request-charged": "requester",
        },
        f"<InitiateMultipartUploadResult {NS}><Bucket>my-bucket</Bucket><Key>k</Key>"
        "<UploadId>up/load+id=</UploadId></InitiateMultipartUploadResult>".encode(),
    ),
    "complete_multipart_upload": (
        {
            "x-amz-version-id": "v1",
            "x-amz-expiration": 'expiry-date="Fri, 23 Dec 2031 00:00:00 GMT", rule-id="r"',
            "x-amz-server-side-encryption": "AES256",
            "x-amz-request-charged": "requester",
        },
        f"<CompleteMultipartUploadResult {NS}><Location>https://s3/my-bucket/k</Location>"
        '<Bucket>my-bucket</Bucket><Key>k</Key><ETag>"abc-2"</ETag>'
        "<ChecksumCRC32>AAAAAA==-2</ChecksumCRC32><ChecksumType>COMPOSITE</ChecksumType>"
        "</CompleteMultipartUploadResult>".encode(),
    ),
}


@pytest.mark.parametrize("operation", ANSWERS)
def test_the_lean_answer_is_botocores(answering: Any, operation: str) -> None:
    """Every member of the answer, from its headers and its body, as botocore parses it
    (timestamps, booleans, the checksum's type); the pool gives the headers lower-cased."""
    client, answer = answering
    headers, body = ANSWERS[operation]
    answer |= {"headers": {"x-amz-request-id": "R", **headers}, "body": body}
    theirs = getattr(client, operation)(**_params(operation, "none", "CRC32"))
    theirs.pop("ResponseMetadata")
    lower = {name.lower(): value for name, value in answer["headers"].items()}
    lean = Lean(client)
    ours = asyncio.run(lean._parsed_by(client, operation, 200, lower, body))
    assert ours == theirs
    assert len(ours) >= len(headers)  # each header said something


def test_a_header_botocore_would_refuse_goes_through_botocore(caught: Any) -> None:
    """Metadata that is not ASCII: botocore refuses it (its own error, before sending), so
    the lean path leaves the request to botocore."""
    params = {"Bucket": "my-bucket", "Key": "k", "Metadata": {"k": "välue"}}
    built = Lean(caught[0])._build("create_multipart_upload", params, "")
    assert isinstance(built, Fallback)
    assert "not ASCII" in built.reason


def test_a_complete_of_thousands_of_parts_goes_through_botocore(caught: Any) -> None:
    """Its list is over 1 MiB: botocore sends it (the pool takes small bodies only)."""
    sha256 = "x" * 43 + "="
    parts = [
        {"PartNumber": n, "ETag": f'"{n:032x}"', "ChecksumSHA256": sha256} for n in range(1, 10_001)
    ]
    params = {"Bucket": "b", "Key": "k", "UploadId": "u", "MultipartUpload": {"Parts": parts}}
    built = Lean(caught[0])._build("complete_multipart_upload", params, "")
    assert isinstance(built, Fallback)
    assert "1 MiB or more" in built.reason
    few = {**params, "MultipartUpload": {"Parts": parts[:1000]}}
    assert isinstance(Lean(caught[0])._build("complete_multipart_upload", few, ""), tuple)


@pytest.mark.parametrize(("extra", "checksum"), CASES)
@pytest.mark.parametrize("operation", ["create_multipart_upload", "abort_multipart_upload"])
def test_a_fast_starts_request_is_botocores(
    caught: Any, operation: str, extra: str, checksum: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before a client is made (``_s3.start``), Create and Abort are built by ``wire``: the same
    signed request as botocore's, for each parameter asyncup sends."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    params = _params("create_multipart_upload", extra, CHECKSUMS[checksum])
    if operation == "abort_multipart_upload":
        algorithm = (CHECKSUMS[checksum] or "").split("-")[0] or None
        params = {"Bucket": "my-bucket", "Key": KEY, "UploadId": "up/load+id="}
        params |= route(EXTRA_ARGS[extra], algorithm).control
    theirs = botocore_request(caught, operation, params)
    bucket_path = "/my-bucket" if caught[2] == "path" else ""
    ours = build(operation, params, bucket_path)
    assert isinstance(ours, Request), ours
    assert not theirs.body
    assert_signed_alike(ours, theirs)


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("create_multipart_upload", {"ContentMD5": "x"}),
        ("create_multipart_upload", {"ChecksumCRC32": "AAAAAA=="}),
        ("abort_multipart_upload", {"ContentType": "text/plain"}),
        ("complete_multipart_upload", {}),
    ],
)
def test_what_a_fast_start_cannot_say_is_not_built(operation: str, params: dict[str, Any]) -> None:
    """A parameter the operation does not take, or an operation ``wire`` does not build."""
    base = {"Bucket": "b", "Key": "k", "UploadId": "u"}
    assert isinstance(build(operation, base | params, ""), Fallback)
