"""Every CreateMultipartUpload parameter: refused when wrong, routed where S3 needs it,
and read back from the object. Server differences are named where a test depends on them."""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import mimetypes
import pathlib
import threading
from typing import Any

import pytest

import asyncup
import asyncup._pipeline.uploader as uploader_module
from asyncup._core.params import Routes, route
from tests.conftest import MiB, assert_nothing_left, make_client, random_bytes, read_object
from tests.faultproxy import FaultProxy

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART, multipart_threshold=PART, concurrency=2, retry_base_delay=0.01
)
SIZES = {"single": 1000, "multipart": 2 * PART + 7}
KEY = b"0123456789abcdef0123456789abcdef"  # 32 bytes: AES-256
KEY_MD5 = base64.b64encode(hashlib.md5(KEY).digest()).decode()
LATER = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("extra_args", "match"),
    [
        ({"ACL": "everyone"}, "ACL must be one of"),
        ({"ACL": "private", "GrantRead": 'id="x"'}, "canned ACL cannot be combined"),
        ({"SSECustomerKey": b"short"}, "32 bytes"),
        (
            {"SSECustomerKey": KEY, "SSECustomerKeyMD5": "AAAAAAAAAAAAAAAAAAAAAA=="},
            "does not match",
        ),
        ({"SSECustomerKey": KEY, "SSECustomerAlgorithm": "AES128"}, "AES256"),
        ({"SSECustomerKeyMD5": KEY_MD5}, "without SSECustomerKey"),
        ({"SSECustomerKey": KEY, "ServerSideEncryption": "AES256"}, "exclude each other"),
        ({"ObjectLockMode": "GOVERNANCE"}, "go together"),
        ({"ObjectLockRetainUntilDate": LATER}, "go together"),
        ({"ObjectLockMode": "FOREVER", "ObjectLockRetainUntilDate": LATER}, "GOVERNANCE"),
        ({"ObjectLockLegalHoldStatus": "MAYBE"}, "ON or OFF"),
        ({"ChecksumAlgorithm": "MD5"}, "ChecksumAlgorithm must be one of"),
        ({"ChecksumAlgorithm": "SHA1", "ChecksumType": "FULL_OBJECT"}, "FULL_OBJECT"),
        ({"ChecksumAlgorithm": "SHA256", "ChecksumType": "FULL_OBJECT"}, "FULL_OBJECT"),
        ({"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "COMPOSITE"}, "only ChecksumType"),
        ({"ChecksumType": "LINEAR"}, "COMPOSITE or FULL_OBJECT"),
        ({"IfNoneMatch": '"abc"'}, "IfNoneMatch must be"),
        ({"ServerSideEncryption": "rot13"}, "ServerSideEncryption must be"),
        ({"SSEKMSKeyId": "alias/x"}, "need ServerSideEncryption aws:kms"),
        ({"Metadata": {"n": 1}}, "Metadata"),
        ({"ContentTyp": "text/plain"}, "unknown extra_args"),
    ],
)
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_refused_before_any_request(
    extra_args: dict[str, Any],
    match: str,
    size: int,
    proxy: FaultProxy,
    proxied: Any,
    bucket: str,
) -> None:
    with pytest.raises(ValueError, match=match) as caught:
        await asyncup.upload(
            random_bytes(size), bucket, "obj", client=proxied, config=CONFIG, extra_args=extra_args
        )
    assert sum(proxy.counts.values()) == 0
    assert "0123456789abcdef" not in str(caught.value)


def test_checksum_type_needs_an_algorithm() -> None:
    from asyncup._core.params import route

    with pytest.raises(ValueError, match="needs a ChecksumAlgorithm"):
        route({"ChecksumType": "FULL_OBJECT"}, None)


COMMON = {
    "ContentType": "application/x-asyncup",
    "CacheControl": "no-cache",
    "ContentDisposition": 'inline; filename="a.bin"',
    "ContentEncoding": "identity",
    "ContentLanguage": "fr",
    "Expires": LATER,
    "Metadata": {"alpha": "1", "beta": "two"},
    "Tagging": "a=1&b=two%20words",
    "ServerSideEncryption": "AES256",
    "RequestPayer": "requester",
}


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_object_attributes_round_trip(size: int, s3: Any, bucket: str) -> None:
    data = random_bytes(size)
    await asyncup.upload(data, bucket, "obj", client=s3, config=CONFIG, extra_args=COMMON)
    head = await s3.head_object(Bucket=bucket, Key="obj")
    assert head["ContentType"] == "application/x-asyncup"
    assert head["CacheControl"] == "no-cache"
    assert head["ContentDisposition"] == 'inline; filename="a.bin"'
    assert head["ContentLanguage"] == "fr"
    assert head["ContentEncoding"] == "identity"
    assert head.get("Expires") == LATER
    assert head["Metadata"] == {"alpha": "1", "beta": "two"}
    assert head["ServerSideEncryption"] == "AES256"
    tags = await s3.get_object_tagging(Bucket=bucket, Key="obj")
    assert {t["Key"]: t["Value"] for t in tags["TagSet"]} == {"a": "1", "b": "two words"}
    assert await read_object(s3, bucket, "obj") == data


@pytest.mark.parametrize("server", ["moto"], indirect=True)
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_acl_grants_kms_storage_class_and_redirect_on_moto(
    size: int, s3: Any, bucket: str
) -> None:
    # SeaweedFS ignores ACLs and redirects and has no KMS; moto keeps them.
    await asyncup.upload(
        random_bytes(size),
        bucket,
        "canned",
        client=s3,
        config=CONFIG,
        extra_args={"ACL": "public-read", "StorageClass": "STANDARD_IA"},
    )
    grants = (await s3.get_object_acl(Bucket=bucket, Key="canned"))["Grants"]
    assert {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"} in [
        g["Grantee"] for g in grants if g["Permission"] == "READ"
    ]
    assert (await s3.head_object(Bucket=bucket, Key="canned"))["StorageClass"] == "STANDARD_IA"
    owner = (await s3.get_bucket_acl(Bucket=bucket))["Owner"]["ID"]
    await asyncup.upload(
        random_bytes(size),
        bucket,
        "granted",
        client=s3,
        config=CONFIG,
        extra_args={
            "GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AuthenticatedUsers"',
            "GrantReadACP": 'uri="http://acs.amazonaws.com/groups/global/AuthenticatedUsers"',
            "GrantWriteACP": 'uri="http://acs.amazonaws.com/groups/global/AuthenticatedUsers"',
            "GrantFullControl": f'id="{owner}"',
            "SSEKMSEncryptionContext": base64.b64encode(b'{"team": "core"}').decode(),
            "WebsiteRedirectLocation": "/elsewhere",
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": "alias/asyncup",
            "BucketKeyEnabled": True,
            "ExpectedBucketOwner": "123456789012",
        },
    )
    grants = (await s3.get_object_acl(Bucket=bucket, Key="granted"))["Grants"]
    given = {(g["Permission"], g["Grantee"].get("Type")) for g in grants}
    assert {("READ", "Group"), ("READ_ACP", "Group"), ("WRITE_ACP", "Group")} <= given
    assert ("FULL_CONTROL", "CanonicalUser") in given
    head = await s3.head_object(Bucket=bucket, Key="granted")
    assert head["WebsiteRedirectLocation"] == "/elsewhere"
    assert head["ServerSideEncryption"] == "aws:kms"


@pytest.mark.parametrize("server", ["seaweedfs"], indirect=True)
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_object_lock_on_seaweedfs(size: int, s3: Any, bucket: str) -> None:
    # moto accepts object lock without applying it; SeaweedFS applies it.
    locked = f"{bucket}-lock"
    await s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    await asyncup.upload(
        random_bytes(size),
        locked,
        "obj",
        client=s3,
        config=CONFIG,
        extra_args={
            "ObjectLockMode": "GOVERNANCE",
            "ObjectLockRetainUntilDate": LATER,
            "ObjectLockLegalHoldStatus": "ON",
        },
    )
    retention = (await s3.get_object_retention(Bucket=locked, Key="obj"))["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    assert retention["RetainUntilDate"] == LATER
    hold = await s3.get_object_legal_hold(Bucket=locked, Key="obj")
    assert hold["LegalHold"]["Status"] == "ON"


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_sse_c_objects_read_back_with_the_key(
    size: int, server: str, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    data = random_bytes(size)
    result = await asyncup.upload(
        data, bucket, "obj", client=proxied, config=CONFIG, extra_args={"SSECustomerKey": KEY}
    )
    assert not result.etag_verified  # SSE-C ETags are not MD5s
    # Every write carries the key: a part sent without it would be stored in the clear (or,
    # on SeaweedFS, corrupt the object) while a read-back of part 1 alone looks right.
    writes = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}
    sent = [(op, headers) for op, headers in proxy.requests if op in writes]
    assert len(sent) == (1 if size < PART else 2 + size // PART + (size % PART > 0))
    for operation, headers in sent:
        assert set(headers) >= SSE_C_HEADERS, operation
    got = await s3.get_object(
        Bucket=bucket, Key="obj", SSECustomerAlgorithm="AES256", SSECustomerKey=KEY
    )
    async with got["Body"] as body:
        assert await body.read() == data
    if server == "seaweedfs":  # moto stores SSE-C objects in the clear
        with pytest.raises(Exception, match=r"400|InvalidRequest|Bad Request"):
            await s3.head_object(Bucket=bucket, Key="obj")


async def test_a_base64_key_with_its_md5_is_accepted_as_boto3_accepts_it(
    s3: Any, bucket: str
) -> None:
    data = random_bytes(SIZES["multipart"])
    await asyncup.upload(
        data,
        bucket,
        "obj",
        client=s3,
        config=CONFIG,
        extra_args={
            "SSECustomerAlgorithm": "AES256",
            "SSECustomerKey": base64.b64encode(KEY).decode(),
            "SSECustomerKeyMD5": KEY_MD5,
        },
    )
    got = await s3.get_object(
        Bucket=bucket, Key="obj", SSECustomerAlgorithm="AES256", SSECustomerKey=KEY
    )
    async with got["Body"] as body:
        assert await body.read() == data


def headers_by_operation(proxy: FaultProxy) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = {}
    for operation, headers in proxy.requests:
        grouped.setdefault(operation, []).append(headers)
    return grouped


SSE_C_HEADERS = {
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
}
EVERY_REQUEST_HEADERS = {"x-amz-request-payer", "x-amz-expected-bucket-owner"}
ROUTED = {
    "SSECustomerKey": KEY,
    "RequestPayer": "requester",
    "ExpectedBucketOwner": "123456789012",
    "ContentType": "text/x-routed",
    "Metadata": {"m": "v"},
}


async def test_each_parameter_is_sent_on_exactly_the_requests_that_need_it(
    proxy: FaultProxy, proxied: Any, bucket: str
) -> None:
    await asyncup.upload(b"small", bucket, "put", client=proxied, config=CONFIG, extra_args=ROUTED)
    await asyncup.upload(
        random_bytes(2 * PART + 1), bucket, "mpu", client=proxied, config=CONFIG, extra_args=ROUTED
    )
    proxy.fail("UploadPart", "403", part=2)
    with pytest.raises(asyncup.UploadError):
        await asyncup.upload(
            random_bytes(3 * PART),
            bucket,
            "failed",
            client=proxied,
            config=CONFIG,
            extra_args=ROUTED,
        )
    seen = headers_by_operation(proxy)
    assert set(seen) >= {
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "ListParts",
    }
    key_b64 = base64.b64encode(KEY).decode()
    for operation, requests in seen.items():
        for headers in requests:
            assert set(headers) >= EVERY_REQUEST_HEADERS, operation
            if operation in ("AbortMultipartUpload", "ListParts"):
                assert not SSE_C_HEADERS & set(headers), operation
            else:
                assert set(headers) >= SSE_C_HEADERS, operation
                assert headers["x-amz-server-side-encryption-customer-key"] == key_b64
                assert headers["x-amz-server-side-encryption-customer-key-md5"] == KEY_MD5
            attributes = "x-amz-meta-m" in headers, headers.get("content-type") == "text/x-routed"
            assert attributes == (
                (True, True)
                if operation in ("PutObject", "CreateMultipartUpload")
                else (False, False)
            ), operation
            if operation in ("PutObject", "UploadPart"):
                # One checksum, computed by asyncup, in a header (no aws-chunked trailer).
                assert "x-amz-checksum-crc32" in headers, operation
                assert "x-amz-trailer" not in headers, operation
    assert seen["CreateMultipartUpload"][0]["x-amz-checksum-algorithm"] == "CRC32"


async def test_content_type_is_guessed_from_the_file_name(
    s3: Any, bucket: str, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(b'{"a": 1}')
    await asyncup.upload(path, bucket, "guessed", client=s3)
    assert (await s3.head_object(Bucket=bucket, Key="guessed"))["ContentType"] == "application/json"
    await asyncup.upload(path, bucket, "given", client=s3, extra_args={"ContentType": "text/plain"})
    assert (await s3.head_object(Bucket=bucket, Key="given"))["ContentType"] == "text/plain"


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_the_system_types_are_read_once_off_the_event_loop(
    s3: Any, bucket: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mimetypes reads the system's type files before its first guess: for the first paths
    uploaded, once (the others wait), in a worker thread, never on the event loop."""
    readers: list[str] = []
    init = mimetypes.init

    def reading(files: Any = None) -> None:
        readers.append(threading.current_thread().name)
        init(files)

    monkeypatch.setattr(uploader_module, "_types", {"read": False})
    monkeypatch.setattr(mimetypes, "init", reading)
    paths = [tmp_path / f"report{n}.json" for n in range(6)]
    for path in paths:
        path.write_bytes(b"{}")
    async with asyncup.Uploader(client=s3) as up:
        summary = await up.upload_many(((path, path.name) for path in paths), bucket)
        await up.upload(paths[0], bucket, "again")
    assert len(summary.results) == 6
    assert len(readers) == 1
    assert threading.main_thread().name not in readers
    head = await s3.head_object(Bucket=bucket, Key="report0.json")
    assert head["ContentType"] == "application/json"


def test_upload_many_routes_each_guessed_type_once() -> None:
    """upload_many's routes: one for the objects with no path or no guessable type, one per
    ContentType guessed from a name (as ``route`` guesses it), and a ContentType given in
    extra_args wins over every name."""
    routes = Routes({"Metadata": {"k": "v"}}, "CRC32")
    html = routes.for_path("/a/page.html")
    assert html.put["ContentType"] == "text/html"
    assert html == route({"Metadata": {"k": "v"}}, "CRC32", path="/a/page.html")
    assert routes.for_path("/b/other.html") is html  # routed once for the type
    assert routes.for_path("/a/data.json").put["ContentType"] == "application/json"
    assert routes.for_path(None) is routes.for_path("/a/noext") is routes.common
    assert "ContentType" not in routes.common.put
    given = Routes({"ContentType": "text/plain"}, None)
    assert given.for_path("/a/page.html") is given.common
    assert given.common.put["ContentType"] == "text/plain"


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_if_none_match_on_an_existing_key_fails_and_keeps_the_object(
    size: int, s3: Any, bucket: str
) -> None:
    await s3.put_object(Bucket=bucket, Key="obj", Body=b"original")
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(
            random_bytes(size),
            bucket,
            "obj",
            client=s3,
            config=CONFIG,
            extra_args={"IfNoneMatch": "*"},
        )
    assert caught.value.code == "PreconditionFailed"
    if size >= PART:
        assert caught.value.abort_succeeded is True
    assert await read_object(s3, bucket, "obj") == b"original"
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
    created = await asyncup.upload(
        b"new", bucket, "fresh", client=s3, extra_args={"IfNoneMatch": "*"}
    )
    assert created.size == 3


@pytest.mark.parametrize("server", ["seaweedfs"], indirect=True)
@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_full_object_checksums_are_combined_and_verified(
    algorithm: str, size: int, s3: Any, bucket: str
) -> None:
    from asyncup._core.checksums import b64, raw_digest

    data = random_bytes(size)
    result = await asyncup.upload(
        data,
        bucket,
        "obj",
        client=s3,
        config=CONFIG,
        extra_args={"ChecksumAlgorithm": algorithm, "ChecksumType": "FULL_OBJECT"},
    )
    assert result.checksum_type == "FULL_OBJECT"
    assert result.checksum_verified
    assert result.checksum == b64(raw_digest(algorithm, memoryview(data)))
    head = await s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == result.checksum


@pytest.mark.parametrize("server", ["seaweedfs"], indirect=True)
@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
async def test_composite_checksums_are_verified(algorithm: str, s3: Any, bucket: str) -> None:
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, checksum_algorithm=algorithm
    )
    result = await asyncup.upload(random_bytes(3 * PART), bucket, "obj", client=s3, config=config)
    assert (result.checksum_type, result.checksum_verified) == ("COMPOSITE", True)
    assert result.checksum is not None
    assert result.checksum.endswith("-3")


@pytest.mark.parametrize(
    ("server", "algorithm", "kind", "fault"),
    [
        pytest.param("seaweedfs", "CRC32", "COMPOSITE", "badsum", id="seaweedfs-composite"),
        pytest.param("seaweedfs", "CRC32", "FULL_OBJECT", "badsum", id="seaweedfs-full-object"),
        pytest.param("moto", None, None, "badetag", id="moto-etag"),
        pytest.param("seaweedfs", None, None, "badetag", id="seaweedfs-etag"),
        # moto echoes no checksum, not even Complete's: the parts' MD5s (computed for such a
        # store) make the multipart ETag the whole-object check there.
        pytest.param("moto", "CRC32", "COMPOSITE", "badetag", id="moto-crc32-md5-etag"),
        pytest.param("moto", "CRC32", "FULL_OBJECT", "badetag", id="moto-full-object-md5-etag"),
    ],
    indirect=["server"],
)
async def test_a_whole_object_mismatch_after_complete_is_reported_clearly(
    algorithm: str | None,
    kind: str | None,
    fault: str,
    proxy: FaultProxy,
    proxied: Any,
    bucket: str,
) -> None:
    proxy.fail("CompleteMultipartUpload", fault)
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, checksum_algorithm=algorithm
    )
    extra = {} if kind is None else {"ChecksumType": kind}
    with pytest.raises(asyncup.IntegrityError, match="the object was written, but its") as caught:
        await asyncup.upload(
            random_bytes(2 * PART), bucket, "obj", client=proxied, config=config, extra_args=extra
        )
    assert caught.value.abort_succeeded is None
    assert proxy.counts["AbortMultipartUpload"] == 0


@pytest.mark.parametrize("wire", ["aiohttp"])  # "theirs" is a caller's client
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_stores_that_refuse_checksum_headers_work_with_checksum_algorithm_none(
    size: int,
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy.reject_checksums = True
    data = random_bytes(size)
    with pytest.raises(asyncup.UploadError, match="InvalidArgument"):
        await asyncup.upload(data, bucket, "obj", client=proxied, config=CONFIG)
    await assert_nothing_left(s3, bucket, "obj")
    compatible = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, checksum_algorithm=None
    )
    # asyncup's own client: no checksum headers at all.
    result = await asyncup.upload(data, bucket, "own", endpoint_url=proxy.url, config=compatible)
    assert result.etag_verified
    assert await read_object(s3, bucket, "own") == data
    # A caller's client must say so too, or botocore adds CRC32 itself; asyncup warns.
    async with await make_client(proxy.url, request_checksum_calculation="when_supported") as c:
        with pytest.raises(asyncup.UploadError, match="InvalidArgument"):
            await asyncup.upload(data, bucket, "theirs", client=c, config=compatible)
    assert "request_checksum_calculation" in caplog.text
    async with await make_client(proxy.url, request_checksum_calculation="when_required") as c:
        result = await asyncup.upload(data, bucket, "theirs", client=c, config=compatible)
    assert result.etag_verified
    assert await read_object(s3, bucket, "theirs") == data


async def test_sse_c_keys_never_reach_logs_reprs_or_messages(
    proxy: FaultProxy, proxied: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncup")
    secrets = [KEY.decode(), base64.b64encode(KEY).decode()]
    args = {"SSECustomerKey": KEY}
    proxy.fail("UploadPart", "503", part=1)  # a retried part, logged
    await asyncup.upload(
        random_bytes(2 * PART), bucket, "ok", client=proxied, config=CONFIG, extra_args=args
    )
    proxy.fail("UploadPart", "403", part=2)
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(
            random_bytes(3 * PART),
            bucket,
            "failed",
            client=proxied,
            config=CONFIG,
            extra_args=args,
        )
    from asyncup._core.params import route

    texts = [
        caplog.text,
        str(caught.value),
        repr(caught.value),
        repr(route(args, "CRC32")),
    ]
    assert any("attempt 1 failed" in r.getMessage() for r in caplog.records)
    for text in texts:
        for secret in secrets:
            assert secret not in text
