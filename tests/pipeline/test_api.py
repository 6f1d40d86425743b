"""The public API: names, validation before any request, extra_args, progress, checksums."""

from __future__ import annotations

import hashlib
import io
import types
from typing import Any

import pytest

import asyncup
from tests.conftest import MiB, assert_nothing_left, assert_object, random_bytes
from tests.faultproxy import FaultProxy

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART, multipart_threshold=PART, concurrency=3, retry_base_delay=0.01
)
SIZES = {"single": PART - 1, "multipart": 2 * PART + 1}


def test_all_is_exactly_the_public_api() -> None:
    assert asyncup.__all__ == sorted(asyncup.__all__)
    assert set(asyncup.__all__) == {
        "AsyncupError",
        "IntegrityError",
        "PendingUpload",
        "SourceChangedError",
        "TransferConfig",
        "UploadError",
        "UploadEvent",
        "UploadEvents",
        "UploadResult",
        "UploadSummary",
        "Uploader",
        "upload",
    }
    public = {
        name
        for name in dir(asyncup)
        if not name.startswith("_") and not isinstance(getattr(asyncup, name), types.ModuleType)
    }
    assert public == set(asyncup.__all__)
    for name in asyncup.__all__:
        assert getattr(asyncup, name).__doc__, f"{name} has no docstring"


def test_error_tree() -> None:
    assert issubclass(asyncup.UploadError, asyncup.AsyncupError)
    assert issubclass(asyncup.IntegrityError, asyncup.UploadError)
    assert issubclass(asyncup.SourceChangedError, asyncup.UploadError)


class HugeFile(io.RawIOBase):
    """A seekable file that claims to be larger than S3 allows; never read."""

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return 49 * 1024**4 if whence == io.SEEK_END else offset

    def readinto(self, b: Any) -> int:
        raise AssertionError("must not be read")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        ({"extra_args": {"ContentTyp": "text/plain"}}, ValueError, "unknown extra_args"),
        ({"extra_args": {"ChecksumAlgorithm": "MD5"}}, ValueError, "ChecksumAlgorithm"),
        ({"extra_args": {"Metadata": "a=b"}}, ValueError, "Metadata"),
        ({"source": 42}, TypeError, "accepted"),
        ({"source": HugeFile()}, ValueError, "larger than S3's limit"),
        ({"key": ""}, ValueError, "key"),
        ({"key": "k" * 1025}, ValueError, "1024"),
        ({"bucket": None}, ValueError, "bucket"),
        ({"config": {"part_size": 1}}, TypeError, "TransferConfig"),
        ({"on_progress": 3}, TypeError, "on_progress"),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    call: dict[str, Any],
    error: type[Exception],
    match: str,
    proxy: FaultProxy,
    proxied: Any,
    bucket: str,
) -> None:
    kwargs: dict[str, Any] = {"source": b"data", "bucket": bucket, "key": "obj", **call}
    with pytest.raises(error, match=match):
        await asyncup.upload(
            kwargs.pop("source"), kwargs.pop("bucket"), kwargs.pop("key"), client=proxied, **kwargs
        )
    assert sum(proxy.counts.values()) == 0


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_common_extra_args_reach_the_object(size: int, s3: Any, bucket: str) -> None:
    data = random_bytes(size)
    await asyncup.upload(
        data,
        bucket,
        "obj",
        client=s3,
        config=CONFIG,
        extra_args={
            "ContentType": "application/x-test",
            "CacheControl": "max-age=60",
            "ContentDisposition": 'attachment; filename="x.bin"',
            "Metadata": {"origin": "asyncup"},
            "Tagging": {"team": "core", "kind": "test"},
            "StorageClass": "STANDARD_IA",
        },
    )
    head = await s3.head_object(Bucket=bucket, Key="obj")
    assert head["ContentType"] == "application/x-test"
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="x.bin"'
    assert head["Metadata"] == {"origin": "asyncup"}
    assert head["StorageClass"] == "STANDARD_IA"
    tags = await s3.get_object_tagging(Bucket=bucket, Key="obj")
    assert {t["Key"]: t["Value"] for t in tags["TagSet"]} == {"team": "core", "kind": "test"}
    await assert_object(s3, bucket, "obj", data, PART if size >= PART else None)


async def test_own_client_from_endpoint_url_and_default_credentials(
    endpoint: str, s3: Any, bucket: str
) -> None:
    data = random_bytes(2 * PART)
    result = await asyncup.upload(data, bucket, "obj", endpoint_url=endpoint, config=CONFIG)
    assert result.parts == 2
    await assert_object(s3, bucket, "obj", data, PART)


async def test_own_client_pool_is_at_least_the_concurrency(moto_endpoint: str) -> None:
    config = asyncup.TransferConfig(concurrency=50)
    async with asyncup.Uploader(endpoint_url=moto_endpoint, config=config) as uploader:
        assert uploader.client.meta.config.max_pool_connections >= 50


async def test_the_callers_client_is_not_closed(s3: Any, bucket: str) -> None:
    await asyncup.upload(b"one", bucket, "a", client=s3)
    async with asyncup.Uploader(client=s3) as uploader:
        await uploader.upload(b"two", bucket, "b")
    assert (await s3.head_object(Bucket=bucket, Key="b"))["ContentLength"] == 3


async def test_uploader_must_be_entered() -> None:
    uploader = asyncup.Uploader(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="async with"):
        await uploader.upload(b"x", "bucket", "key")


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_progress_adds_up_to_the_size_with_retries_and_async_callbacks(
    size: int, proxy: FaultProxy, proxied: Any, bucket: str
) -> None:
    proxy.fail("UploadPart", "503", times=2)
    proxy.fail("PutObject", "reset", times=1)
    calls: list[int] = []

    async def on_progress(n: int) -> None:
        calls.append(n)

    await asyncup.upload(
        random_bytes(size), bucket, "obj", client=proxied, config=CONFIG, on_progress=on_progress
    )
    assert sum(proxy.faults_injected.values()) >= 1
    assert sum(calls) == size
    assert all(n > 0 for n in calls)


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"])
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_checksum_algorithms_round_trip(
    algorithm: str, size: int, s3: Any, bucket: str
) -> None:
    data = random_bytes(size)
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, checksum_algorithm=algorithm
    )
    result = await asyncup.upload(data, bucket, "obj", client=s3, config=config)
    assert result.checksum_algorithm == algorithm
    await assert_object(s3, bucket, "obj", data, PART if size >= PART else None)


# moto ignores checksums and Content-MD5 and keeps a corrupted part; only the MD5 mode's ETag
# check can catch it there. SeaweedFS, like S3, refuses the part itself (BadDigest).
INTEGRITY_MODES = [
    pytest.param("moto", None, id="moto-md5"),
    pytest.param("seaweedfs", None, id="seaweedfs-md5"),
    pytest.param("seaweedfs", "CRC32", id="seaweedfs-crc32"),
    pytest.param("seaweedfs", "CRC64NVME", id="seaweedfs-crc64nvme"),
]


def integrity_config(algorithm: str | None) -> asyncup.TransferConfig:
    return asyncup.TransferConfig(
        part_size=PART,
        multipart_threshold=PART,
        concurrency=3,
        retry_base_delay=0.01,
        checksum_algorithm=algorithm,
    )


@pytest.mark.parametrize(("server", "algorithm"), INTEGRITY_MODES, indirect=["server"])
async def test_a_part_corrupted_in_transit_is_sent_again(
    algorithm: str | None, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    data = random_bytes(3 * PART)
    proxy.fail("UploadPart", "corrupt", part=2)
    result = await asyncup.upload(
        data, bucket, "obj", client=proxied, config=integrity_config(algorithm)
    )
    assert proxy.counts["UploadPart"] == 4
    assert result.etag_verified or result.checksum_verified
    await assert_object(s3, bucket, "obj", data, PART)


@pytest.mark.parametrize(("server", "algorithm"), INTEGRITY_MODES, indirect=["server"])
async def test_a_part_corrupted_every_time_is_an_integrity_error(
    algorithm: str | None, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    proxy.fail("UploadPart", "corrupt", part=2, times=100)
    with pytest.raises(asyncup.IntegrityError) as caught:
        await asyncup.upload(
            random_bytes(3 * PART),
            bucket,
            "obj",
            client=proxied,
            config=integrity_config(algorithm),
        )
    assert caught.value.part_number == 2
    assert caught.value.abort_succeeded is True
    await assert_nothing_left(s3, bucket, "obj")


@pytest.mark.parametrize(("server", "algorithm"), INTEGRITY_MODES, indirect=["server"])
async def test_a_corrupted_single_put_is_sent_again(
    algorithm: str | None, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    data = random_bytes(1000)
    proxy.fail("PutObject", "corrupt")
    await asyncup.upload(data, bucket, "obj", client=proxied, config=integrity_config(algorithm))
    assert proxy.counts["PutObject"] == 2
    await assert_object(s3, bucket, "obj", data, None)


async def test_upload_part_without_an_etag_is_never_completed(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    proxy.fail("UploadPart", "noetag", part=1, times=100)
    with pytest.raises(asyncup.UploadError, match="without an ETag"):
        await asyncup.upload(random_bytes(2 * PART), bucket, "obj", client=proxied, config=CONFIG)
    assert proxy.counts["CompleteMultipartUpload"] == 0
    await assert_nothing_left(s3, bucket, "obj")


@pytest.mark.parametrize("algorithm", ["CRC32", None], ids=["crc32", "md5"])
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_own_client_sends_unsigned_payloads_that_the_store_accepts(
    algorithm: str | None, size: int, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    """asyncup's own client signs headers (the checksum header included) but not the body,
    so no SHA256 of the part runs on the event loop; SeaweedFS checks every signature."""
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, checksum_algorithm=algorithm
    )
    data = random_bytes(size)
    result = await asyncup.upload(data, bucket, "obj", endpoint_url=proxy.url, config=config)
    writes = [h for op, h in proxy.requests if op in ("UploadPart", "PutObject")]
    assert writes
    for headers in writes:
        assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
        assert ("content-md5" if algorithm is None else "x-amz-checksum-crc32") in signed
    assert result.size == size
    await assert_object(s3, bucket, "obj", data, PART if size >= PART else None)


async def test_own_client_can_sign_payloads_again(proxy: FaultProxy, s3: Any, bucket: str) -> None:
    from aiobotocore.config import AioConfig

    data = random_bytes(PART + 1)
    async with asyncup.Uploader(
        endpoint_url=proxy.url,
        config=CONFIG,
        client_config=AioConfig(s3={"payload_signing_enabled": True}),
    ) as uploader:
        await uploader.upload(data, bucket, "obj")
    writes = [h for op, h in proxy.requests if op == "UploadPart"]
    assert {h["x-amz-content-sha256"] for h in writes} == {
        hashlib.sha256(data[:PART]).hexdigest(),
        hashlib.sha256(data[PART:]).hexdigest(),
    }
    await assert_object(s3, bucket, "obj", data, PART)
