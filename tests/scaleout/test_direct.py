"""asyncup.direct: a client without credentials sends the parts to presigned URLs, driven
here from Python with plain HTTP PUTs (aiohttp, no signing of its own), on moto and on
SeaweedFS (which checks every presigned signature and every checksum it is sent)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import zlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from botocore.exceptions import ClientError

import asyncup
from asyncup import direct
from asyncup._core.plan import MiB
from asyncup._pipeline import resume as _resume
from asyncup.direct import DirectUpload, PartsRefusedError, PartURL
from tests.conftest import SECRET_KEY, assert_object, random_bytes
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.timeout(90)

PART = 5 * MiB
DATA = random_bytes(2 * PART + 12345, seed=18)  # 3 parts, the last one short
CONFIG = asyncup.TransferConfig(part_size=PART, max_attempts=2, retry_base_delay=0.01)
SIGV4_QUERY = {
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Signature",
}  # fmt: skip


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def piece(handle: DirectUpload, number: int, data: bytes = DATA) -> bytes:
    part = handle.part(number)
    return data[part.offset : part.offset + part.length]


def checksums(handle: DirectUpload, data: bytes = DATA) -> dict[int, str]:
    return {n: crc32(piece(handle, n, data)) for n in range(1, handle.part_count + 1)}


@pytest.fixture
async def up(endpoint: str) -> AsyncIterator[asyncup.Uploader]:
    async with asyncup.Uploader(endpoint_url=endpoint, config=CONFIG) as uploader:
        yield uploader


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def put(http: aiohttp.ClientSession, grant: PartURL, body: bytes) -> tuple[int, str]:
    """What a client does: PUT the bytes with exactly the headers it was given, but for
    Content-Length, which the HTTP client sets from the body (as a browser must)."""
    headers = {k: v for k, v in grant.headers.items() if k != "content-length"}
    async with http.put(grant.url, data=body, headers=headers) as answer:
        text = await answer.text()
        return answer.status, answer.headers.get("ETag", text)


async def send_all(
    http: aiohttp.ClientSession, handle: DirectUpload, grants: list[PartURL]
) -> list[dict[str, Any]]:
    reports = []
    for grant in grants:
        status, etag = await put(http, grant, piece(handle, grant.number))
        assert status == 200, etag
        reports.append(
            {"number": grant.number, "etag": etag, "checksum": crc32(piece(handle, grant.number))}
        )
    return reports


async def object_absent(s3: Any, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as caught:
        await s3.head_object(Bucket=bucket, Key=key)
    assert caught.value.response["Error"]["Code"] in ("404", "NoSuchKey")


async def test_a_client_sends_the_parts_and_the_backend_completes(
    up: asyncup.Uploader, http: aiohttp.ClientSession, s3: Any, bucket: str, server: str
) -> None:
    handle = await direct.begin(
        up, bucket, "direct/a.bin", len(DATA),
        extra_args={"ContentType": "video/mp4", "Metadata": {"who": "browser"}},
    )  # fmt: skip
    assert (handle.part_count, handle.part_size, handle.checksum_algorithm) == (3, PART, "CRC32")
    text = handle.to_json()  # the backend may keep it anywhere, or give it to the client
    assert DirectUpload.from_json(text) == handle
    assert SECRET_KEY not in text.replace(bucket, "")  # the test secret is in bucket names
    handle = DirectUpload.from_json(text)

    grants = await direct.sign_parts(up, handle, checksums=checksums(handle))
    assert [g.number for g in grants] == [1, 2, 3]
    assert [(g.offset, g.length) for g in grants] == [(0, PART), (PART, PART), (2 * PART, 12345)]
    for grant in grants:
        # The checksum is signed into the URL: the client must send it, with that value.
        assert grant.headers["x-amz-checksum-crc32"] == crc32(piece(handle, grant.number))
        assert "X-Amz-Signature=" in grant.url
        assert f"partNumber={grant.number}" in grant.url
        # SigV4 query authentication and nothing else (the tests' access key id and secret
        # are the same word, so the secret cannot be searched for in the URL).
        query = set(parse_qs(urlsplit(grant.url).query))
        assert query == {"uploadId", "partNumber"} | SIGV4_QUERY
    reports = await send_all(http, handle, list(reversed(grants)))

    result = await direct.complete(up, handle, reports)
    assert (result.parts, result.size, result.checksum_algorithm) == (3, len(DATA), "CRC32")
    # moto echoes checksums without checking them: the object was read back instead.
    assert result.verified_by == ("store" if server == "seaweedfs" else "asyncup")
    await assert_object(s3, bucket, "direct/a.bin", DATA, PART)
    head = await s3.head_object(Bucket=bucket, Key="direct/a.bin")
    assert head["ContentType"] == "video/mp4"
    assert head["Metadata"] == {"who": "browser"}
    assert head["ETag"] == result.etag


async def test_urls_come_in_batches_and_resume_signs_only_what_s3_lacks(
    up: asyncup.Uploader,
    http: aiohttp.ClientSession,
    s3: Any,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page closed after two parts: asked again, the backend signs only part 3 (found
    by ListParts, followed page by page: pages of 1 part here)."""
    monkeypatch.setattr(_resume, "LIST_PAGE", 1)
    handle = await direct.begin(up, bucket, "direct/resumed", len(DATA))
    sums = checksums(handle)
    first = await direct.sign_parts(up, handle, checksums=sums, limit=2)
    assert [g.number for g in first] == [1, 2]
    reports = await send_all(http, handle, first)
    # The tab is gone; a new one asks for whatever is left.
    rest = await direct.sign_parts(up, handle, checksums=sums)
    assert [g.number for g in rest] == [3]
    reports += await send_all(http, handle, rest)
    assert await direct.sign_parts(up, handle, checksums=sums) == []
    await direct.complete(up, handle, reports)
    await assert_object(s3, bucket, "direct/resumed", DATA, PART)


async def test_parts_the_store_does_not_hold_as_planned_are_refused_by_name(
    up: asyncup.Uploader, http: aiohttp.ClientSession, s3: Any, bucket: str, server: str
) -> None:
    """Tampering: a missing part, a part of the wrong size, a wrong ETag reported, a part
    outside the plan. Each refused naming the part; nothing completed; resent, it completes."""
    handle = await direct.begin(
        up, bucket, "direct/tampered", len(DATA), extra_args={"ChecksumAlgorithm": None}
    )
    assert handle.checksum_algorithm is None
    grants = {g.number: g for g in await direct.sign_parts(up, handle)}
    assert all(
        g.headers == {"content-length": str(g.length)} or g.headers == {} for g in grants.values()
    )
    reports = await send_all(http, handle, [grants[1], grants[2]])

    with pytest.raises(PartsRefusedError) as caught:
        await direct.complete(up, handle, reports)
    assert (caught.value.missing, caught.value.part_number) == ((3,), 3)
    assert "missing: 3" in str(caught.value)

    # Part 3 one byte short: a store that checks the signed Content-Length refuses it; one
    # that takes it holds a part of the wrong size, which Complete refuses.
    status, etag = await put(http, grants[3], piece(handle, 3)[:-1])
    if status == 200:
        wrong = [*reports, {"number": 3, "etag": etag}]
        with pytest.raises(PartsRefusedError) as caught:
            await direct.complete(up, handle, wrong)
        assert caught.value.wrong_size == (3,)
    else:
        assert status == 403, (server, etag)
    status, etag = await put(http, grants[3], piece(handle, 3))
    assert status == 200
    good = [*reports, {"number": 3, "etag": etag}]

    lying = [dict(good[0]), good[1], {**good[2], "etag": '"0123456789abcdef0123456789abcdef"'}]
    with pytest.raises(PartsRefusedError) as caught:
        await direct.complete(up, handle, lying)
    assert caught.value.mismatched == (3,)
    with pytest.raises(PartsRefusedError) as caught:
        await direct.complete(up, handle, [*good, {"number": 4, "etag": etag}])
    assert caught.value.extra == (4,)
    with pytest.raises(PartsRefusedError) as caught:
        await direct.complete(up, handle, [*good, good[0]])
    assert caught.value.extra == (1,)
    await object_absent(s3, bucket, "direct/tampered")

    result = await direct.complete(up, handle, good)
    assert result.parts == 3
    await assert_object(s3, bucket, "direct/tampered", DATA, PART)


async def test_bytes_other_than_the_client_hashed_are_caught_on_every_store(
    up: asyncup.Uploader, http: aiohttp.ClientSession, server: str, s3: Any, bucket: str
) -> None:
    """A bit flipped on the way: a store that verifies refuses the part (BadDigest); on one
    that checks nothing (moto), Complete's read-back finds the part, and the object goes."""
    handle = await direct.begin(up, bucket, "direct/flipped", len(DATA))
    grants = await direct.sign_parts(up, handle, checksums=checksums(handle))
    reports = await send_all(http, handle, [g for g in grants if g.number != 2])
    flipped = bytearray(piece(handle, 2))
    flipped[1000] ^= 1
    status, etag = await put(http, grants[1], bytes(flipped))
    if server == "seaweedfs":
        assert status == 400, etag  # BadDigest
        await direct.abort(up, handle)
        return
    assert status == 200
    reports.append({"number": 2, "etag": etag, "checksum": crc32(piece(handle, 2))})
    with pytest.raises(asyncup.IntegrityError) as caught:
        await direct.complete(up, handle, reports)
    assert caught.value.part_number == 2
    assert "parts [2]" in str(caught.value)
    assert "the object was deleted" in str(caught.value)
    await object_absent(s3, bucket, "direct/flipped")


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_read_back_false_says_nobody_verified(
    up: asyncup.Uploader, http: aiohttp.ClientSession, bucket: str
) -> None:
    handle = await direct.begin(up, bucket, "direct/unread", len(DATA))
    grants = await direct.sign_parts(up, handle, checksums=checksums(handle))
    result = await direct.complete(
        up, handle, await send_all(http, handle, grants), read_back=False
    )
    assert result.verified_by is None
    assert "not read back" in (result.unverified_reason or "")


@pytest.mark.parametrize("server", ["seaweedfs"], indirect=True)
async def test_parts_without_a_checksum_are_not_vouched_for_by_a_store_that_checks_crc32(
    up: asyncup.Uploader, http: aiohttp.ClientSession, bucket: str
) -> None:
    """What the client learnt of CRC32 (SeaweedFS verifies it) says nothing of parts sent
    with no checksum at all: the store had nothing to check them against."""
    checked = await direct.begin(up, bucket, "direct/crc32", len(DATA))
    grants = await direct.sign_parts(up, checked, checksums=checksums(checked))
    result = await direct.complete(up, checked, await send_all(http, checked, grants))
    assert result.verified_by == "store"

    bare = await direct.begin(
        up, bucket, "direct/bare", len(DATA), extra_args={"ChecksumAlgorithm": None}
    )
    grants = await direct.sign_parts(up, bare)
    reports = [
        {"number": g.number, "etag": (await put(http, g, piece(bare, g.number)))[1]} for g in grants
    ]
    result = await direct.complete(up, bare, reports)
    assert (result.checksum_algorithm, result.verified_by) == (None, None)


async def test_abort_and_the_sweeper_remove_unfinished_direct_uploads(
    up: asyncup.Uploader, http: aiohttp.ClientSession, s3: Any, bucket: str, server: str
) -> None:
    handle = await direct.begin(up, bucket, "direct/aborted", len(DATA))
    [grant] = await direct.sign_parts(up, handle, [1], checksums=checksums(handle))
    assert (await put(http, grant, piece(handle, 1)))[0] == 200
    assert await direct.abort(up, handle) is True
    status, _ = await put(http, grant, piece(handle, 1))
    assert status == 404 if server == "seaweedfs" else status >= 400  # moto: a 500

    # A page closed mid-upload, and nobody came back: the sweeper's to remove.
    left = await direct.begin(up, bucket, "direct/left", len(DATA))
    [grant] = await direct.sign_parts(up, left, [2], checksums=checksums(left))
    assert (await put(http, grant, piece(left, 2)))[0] == 200
    outcomes = await up.abort_uploads(bucket, "direct/", older_than=datetime.timedelta(0))
    assert [(u.upload_id, e) for u, e in outcomes] == [(left.upload_id, None)]
    listing = await s3.list_multipart_uploads(Bucket=bucket)
    assert listing.get("Uploads", []) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extra_args": {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}}, "SSE-C"),
        ({"part_size": 5 * MiB, "size": 10_001 * 5 * MiB}, "at most 10000"),
        ({"part_size": 5 * MiB - 1}, "between 5242880"),
        ({"part_size": 5 * 1024 * MiB + 1}, "between 5242880"),
        ({"expires_in": 7 * 24 * 3600 + 1}, "7 days"),
        ({"expires_in": 0}, "between 1"),
        ({"size": -1}, "size must be"),
        ({"extra_args": {"ACL": "nonsense"}}, "ACL must be"),
    ],
)
async def test_what_cannot_work_is_refused_before_any_request(
    kwargs: dict[str, Any], message: str
) -> None:
    nowhere = "http://127.0.0.1:9"  # nothing listens: any request would fail otherwise
    size = kwargs.pop("size", len(DATA))
    async with asyncup.Uploader(endpoint_url=nowhere, config=CONFIG) as up:
        with pytest.raises(ValueError, match=message):
            await direct.begin(up, "bucket", "key", size, **kwargs)


async def test_bad_requests_for_urls_and_reports_are_refused_before_any_request() -> None:
    handle = DirectUpload(
        bucket="b", key="k", upload_id="u", size=len(DATA), part_size=PART, part_count=3,
        checksum_algorithm="CRC32", checksum_type="COMPOSITE", expires_in=60,
    )  # fmt: skip
    async with asyncup.Uploader(endpoint_url="http://127.0.0.1:9", config=CONFIG) as up:
        with pytest.raises(ValueError, match="CRC32 checksum"):
            await direct.sign_parts(up, handle, [1])  # the checksum is signed: it is needed
        with pytest.raises(ValueError, match="not a CRC32 checksum"):
            await direct.sign_parts(up, handle, [1], checksums={1: "AAAA"})
        with pytest.raises(ValueError, match="between 1 and 3"):
            await direct.sign_parts(up, handle, [4], checksums={4: crc32(b"")})
        with pytest.raises(ValueError, match="ETag"):
            await direct.complete(up, handle, [{"number": 1}])
        with pytest.raises(ValueError, match="CRC32 checksum"):
            await direct.complete(up, handle, [{"number": 1, "etag": '"e"'}])
    with pytest.raises(ValueError, match="7 days"):
        DirectUpload.from_dict({**handle.to_dict(), "expires_in": 10**7})
    with pytest.raises(ValueError, match="not an asyncup-direct handle"):
        DirectUpload.from_dict({"format": "asyncup-parallel", "version": 1})


async def test_the_objects_attributes_and_if_none_match_travel_with_the_upload(
    up: asyncup.Uploader, http: aiohttp.ClientSession, s3: Any, bucket: str
) -> None:
    extra = {"Tagging": {"team": "web"}, "Metadata": {"k": "v"}, "IfNoneMatch": "*"}
    handle = await direct.begin(up, bucket, "direct/attrs", len(DATA), extra_args=extra)
    assert dict(handle.request_args) == {"IfNoneMatch": "*"}  # Complete's; the rest: Create's
    grants = await direct.sign_parts(up, handle, checksums=checksums(handle))
    reports = await send_all(http, handle, grants)
    await direct.complete(up, handle, reports)
    tags = await s3.get_object_tagging(Bucket=bucket, Key="direct/attrs")
    assert tags["TagSet"] == [{"Key": "team", "Value": "web"}]
    assert (await s3.head_object(Bucket=bucket, Key="direct/attrs"))["Metadata"] == {"k": "v"}

    # The key is taken now: the same upload again is refused at Complete, nothing replaced.
    again = await direct.begin(up, bucket, "direct/attrs", len(DATA), extra_args=extra)
    grants = await direct.sign_parts(up, again, checksums=checksums(again))
    reports = await send_all(http, again, grants)
    with pytest.raises(asyncup.UploadError) as caught:
        await direct.complete(up, again, reports)
    assert caught.value.code == "PreconditionFailed", caught.value
    await direct.abort(up, again)


async def test_cancelled_while_create_is_in_flight_the_upload_is_aborted(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    """The cancellation waits for Create's answer (shielded), aborts the upload it made,
    and is raised: nothing is left."""
    proxy.delay("CreateMultipartUpload", 0.5)
    async with asyncup.Uploader(client=proxied, config=CONFIG) as up:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):  # a native task.cancel()
                await direct.begin(up, bucket, "direct/cancelled", len(DATA))
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
