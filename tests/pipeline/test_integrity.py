"""Every byte verified on every store, and errors that say what is known."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import asyncup
from asyncup._core import checksums
from asyncup._core.params import route
from asyncup._core.verify import StoreChecks
from asyncup._pipeline.integrity import learn_for_small
from tests.conftest import MiB, assert_nothing_left, make_client, random_bytes, read_object
from tests.faultproxy import FaultProxy

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART,
    multipart_threshold=PART,
    max_attempts=3,
    retry_base_delay=0.01,
    retry_max_delay=0.02,
)
SIZES = {"PutObject": PART - 1, "CreateMultipartUpload": 2 * PART + 1}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def uploader(endpoint: str, wire: str) -> AsyncIterator[asyncup.Uploader]:
    """asyncup's own client ("threads"), or a caller's aiobotocore client ("aiohttp")."""
    if wire == "threads":
        async with asyncup.Uploader(endpoint_url=endpoint, config=CONFIG) as up:
            yield up
        return
    async with (
        await make_client(endpoint) as client,
        asyncup.Uploader(client=client, config=CONFIG) as up,
    ):
        yield up


@pytest.mark.parametrize("operation", SIZES)
@pytest.mark.parametrize(
    "where",
    [
        "refused",
        "unresolvable",
        "tls-to-plain",  # a TLS handshake with a server that speaks plain HTTP fails
    ],
)
async def test_a_write_that_could_not_connect_says_nothing_was_written(
    operation: str, where: str, wire: str, moto_endpoint: str
) -> None:
    endpoint = {
        "refused": f"http://127.0.0.1:{closed_port()}",
        "unresolvable": "http://asyncup-test.invalid:9",
        "tls-to-plain": moto_endpoint.replace("http://", "https://"),
    }[where]
    data = random_bytes(SIZES[operation], seed=1)
    with pytest.raises(asyncup.UploadError) as caught:
        async with uploader(endpoint, wire) as up:
            await up.upload(data, "bucket", "key")
    error = caught.value
    message = str(error)
    assert f"no attempt of {operation} reached the server" in message, message
    assert "nothing was written" in message
    assert "may exist" not in message
    assert "may have succeeded" not in message
    assert error.upload_id is None
    assert error.abort_succeeded is None


async def test_a_write_that_reached_the_server_still_says_what_may_exist(
    proxy: FaultProxy, proxied: Any, bucket: str
) -> None:
    """The other side of the rule: a PutObject whose connection broke once sent may have
    been written; with the object at the key not ours, the error says one may exist."""
    for _ in range(2 * CONFIG.max_attempts):  # the HTTP layers resend once on a broken PUT
        proxy.fail("PutObject", "reset")
    proxy.fail("HeadObject", "alien")
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(
            random_bytes(PART - 1, seed=2), bucket, "key", client=proxied, config=CONFIG
        )
    message = str(caught.value)
    assert "PutObject may have succeeded" in message
    assert "nothing was written" not in message


# --- Every write verified, on a store that verifies nothing (moto) as on one that does ---

MOTO = pytest.mark.parametrize("server", ["moto"], indirect=True)
SOURCES = ("bytes", "path", "stream")


async def stream_of(data: bytes, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def source_of(kind: str, data: bytes, tmp_path: Path) -> object:
    if kind == "bytes":
        return data
    if kind == "path":
        path = tmp_path / "data.bin"
        path.write_bytes(data)
        return str(path)
    return stream_of(data)


@MOTO
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("operation", ["PutObject", "UploadPart"])
async def test_a_byte_flipped_in_transit_to_moto_is_sent_again(
    operation: str,
    source: str,
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    tmp_path: Path,
) -> None:
    """moto checks no checksum (and echoes whatever it is sent): with the default settings
    the ETag, compared with the MD5 of the bytes sent, gives the flipped byte away."""
    data = random_bytes(PART - 1 if operation == "PutObject" else 3 * PART, seed=5)
    proxy.fail(operation, "corrupt", part=None if operation == "PutObject" else 2)
    config = replace(CONFIG, concurrency=3)
    result = await asyncup.upload(
        source_of(source, data, tmp_path), bucket, "obj", client=proxied, config=config
    )
    assert result.verified_by == "asyncup"
    assert result.checksum_algorithm == "CRC32"
    assert proxy.counts[operation] == (2 if operation == "PutObject" else 4)
    assert (await read_object(s3, bucket, "obj")) == data
    if operation == "UploadPart":
        assert result.etag_verified  # the multipart ETag, from the parts' MD5s
        assert proxy.counts["ProbePart"] == 1


@MOTO
@pytest.mark.parametrize("operation", ["PutObject", "UploadPart"])
async def test_a_write_corrupted_every_time_fails_and_leaves_nothing(
    operation: str, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    size = PART - 1 if operation == "PutObject" else 3 * PART
    proxy.fail(operation, "corrupt", times=100)
    with pytest.raises(asyncup.IntegrityError) as caught:
        await asyncup.upload(random_bytes(size), bucket, "obj", client=proxied, config=CONFIG)
    assert "is not the MD5 of the bytes sent" in str(caught.value)
    if operation == "PutObject":
        assert "was deleted" in str(caught.value)
    else:
        assert caught.value.abort_succeeded is True
    await assert_nothing_left(s3, bucket, "obj")


@pytest.mark.parametrize(
    ("server", "verifies"), [("moto", False), ("seaweedfs", True)], indirect=["server"]
)
async def test_the_store_is_probed_once_and_no_md5_is_computed_where_it_verifies(
    verifies: bool,
    proxy: FaultProxy,
    proxied: Any,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SeaweedFS refuses a wrong checksum (as S3 does): its acceptance vouches for the
    bytes, and no MD5 is computed. moto takes anything: each part's MD5 is computed (with
    its checksum, in one pass) and compared with its ETag."""
    md5s = 0
    new_md5 = checksums.new_md5

    def counted() -> Any:
        nonlocal md5s
        md5s += 1
        return new_md5()

    monkeypatch.setattr(checksums, "new_md5", counted)
    async with asyncup.Uploader(client=proxied, config=CONFIG) as up:
        results = [
            await up.upload(random_bytes(3 * PART, seed=n), bucket, f"obj{n}") for n in (1, 2)
        ]
        small = await up.upload(b"small", bucket, "small")
    assert proxy.counts["ProbePart"] == 1  # once per client
    expected = "store" if verifies else "asyncup"
    assert [r.verified_by for r in [*results, small]] == [expected] * 3
    assert md5s == (0 if verifies else 2 * 3 + 1)


@MOTO
async def test_each_checksum_algorithm_is_probed_for_itself(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    """A store may verify one algorithm's checksums and ignore another's: here the proxy
    refuses a wrong CRC32, as a store that checks it, and moto behind it checks nothing.
    What the CRC32 probe learnt does not vouch for SHA256 parts: that algorithm is probed
    too, and the byte flipped in one of its parts is caught by the part's MD5."""
    proxy.checks_crc32 = True
    data = random_bytes(3 * PART, seed=8)
    async with asyncup.Uploader(client=proxied, config=CONFIG) as up:
        crc32 = await up.upload(data, bucket, "crc32")
        proxy.fail("UploadPart", "corrupt", part=2)
        sha256 = await up.upload(data, bucket, "sha", extra_args={"ChecksumAlgorithm": "SHA256"})
    assert (crc32.verified_by, sha256.verified_by) == ("store", "asyncup")
    assert proxy.counts["ProbePart"] == 2
    assert proxy.counts["UploadPart"] == 3 + 4  # the flipped part sent again
    assert (await read_object(s3, bucket, "sha")) == data


@MOTO
async def test_an_inconclusive_probe_leaves_every_part_checked_by_md5(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    proxy.fail("ProbePart", "503")
    data = random_bytes(3 * PART, seed=6)
    proxy.fail("UploadPart", "corrupt", part=3)
    result = await asyncup.upload(data, bucket, "obj", client=proxied, config=CONFIG)
    assert result.verified_by == "asyncup"
    assert proxy.counts["UploadPart"] == 4
    assert (await read_object(s3, bucket, "obj")) == data


SSE_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": bytes(range(32))}


@MOTO
@pytest.mark.parametrize("size", [PART - 1, 2 * PART], ids=["small", "multipart"])
async def test_require_fails_what_nothing_can_verify_and_leaves_nothing(
    size: int, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    """Under SSE-C the ETag is not an MD5; moto verifies no checksum: nothing can vouch
    for the bytes. A small object goes as a one-part multipart upload, so that it is
    aborted rather than left unverified."""
    config = replace(CONFIG, integrity="require")
    with pytest.raises(asyncup.IntegrityError, match="could not be verified") as caught:
        await asyncup.upload(
            random_bytes(size), bucket, "obj", client=proxied, config=config, extra_args=SSE_C
        )
    assert "SSE-C" in str(caught.value)
    assert caught.value.abort_succeeded is True
    assert proxy.counts["PutObject"] == 0
    assert proxy.counts["CompleteMultipartUpload"] == 0
    await assert_nothing_left(s3, bucket, "obj")


@MOTO
async def test_auto_uploads_what_nothing_can_verify_and_says_so(proxied: Any, bucket: str) -> None:
    result = await asyncup.upload(
        random_bytes(2 * PART), bucket, "obj", client=proxied, config=CONFIG, extra_args=SSE_C
    )
    assert result.verified_by is None
    assert result.unverified_reason is not None
    assert "SSE-C" in result.unverified_reason


@pytest.mark.parametrize("server", ["seaweedfs"], indirect=True)
async def test_require_is_met_under_sse_c_by_a_store_that_verifies(
    proxied: Any, bucket: str
) -> None:
    config = replace(CONFIG, integrity="require")
    result = await asyncup.upload(
        random_bytes(2 * PART), bucket, "obj", client=proxied, config=config, extra_args=SSE_C
    )
    assert result.verified_by == "store"


@MOTO
async def test_off_skips_asyncups_own_checks(proxy: FaultProxy, proxied: Any, bucket: str) -> None:
    proxy.fail("UploadPart", "corrupt", part=2)
    config = replace(CONFIG, integrity="off")
    result = await asyncup.upload(
        random_bytes(3 * PART), bucket, "obj", client=proxied, config=config
    )
    assert result.verified_by is None
    assert "integrity='off'" in str(result.unverified_reason)
    assert proxy.counts["ProbePart"] == 0


@pytest.mark.parametrize(
    ("server", "verifies"), [("moto", False), ("seaweedfs", True)], indirect=["server"]
)
async def test_a_client_writing_only_small_objects_probes_once_after_sixteen(
    verifies: bool, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    """Small objects only: the first 16 have their MD5 compared with their ETag; then one
    probe, in a multipart upload of its own that is aborted; where the store verifies, the
    later ones are vouched for by the store, with no MD5."""
    async with asyncup.Uploader(client=proxied, config=CONFIG) as up:
        results = [await up.upload(b"x%d" % n, bucket, f"small/{n}") for n in range(20)]
    assert proxy.counts["ProbePart"] == 1
    assert proxy.counts["CreateMultipartUpload"] == proxy.counts["AbortMultipartUpload"] == 1
    later = "store" if verifies else "asyncup"
    assert [r.verified_by for r in results] == ["asyncup"] * 16 + [later] * 4
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


async def test_small_objects_to_s3_itself_are_vouched_for_without_a_probe() -> None:
    """An amazonaws.com endpoint verifies every checksum (documented): known before the
    first small object, without a request and without MD5s."""
    store = StoreChecks()
    job: Any = SimpleNamespace(
        s3=SimpleNamespace(endpoint_url="https://s3.eu-west-3.amazonaws.com"),
        store=store,
        args=route(None, "CRC32"),
        config=CONFIG,
    )
    await learn_for_small(job)
    assert store.verifies is True
    assert not store.probed
