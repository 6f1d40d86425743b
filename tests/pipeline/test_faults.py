"""Retries through the fault proxy, and clean failure: aborted, nothing left, one UploadError."""

from __future__ import annotations

import asyncio
import os
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import asyncup
from tests.conftest import MiB, assert_nothing_left, assert_object, random_bytes
from tests.faultproxy import FaultProxy

PART = 5 * MiB
FAST_RETRY = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}
CONFIG = asyncup.TransferConfig(
    part_size=PART, multipart_threshold=PART, concurrency=3, max_attempts=4, **FAST_RETRY
)
DATA = random_bytes(3 * PART + 1000, seed=3)  # 4 parts


@pytest.mark.parametrize(
    ("operation", "fault", "part"),
    [
        ("UploadPart", "503", 2),
        ("UploadPart", "500", 1),
        ("UploadPart", "502", 2),
        ("UploadPart", "504", 3),
        ("UploadPart", "reset", 3),
        ("UploadPart", "stall", 4),
        ("CreateMultipartUpload", "503", None),
        ("CompleteMultipartUpload", "500", None),
        ("CompleteMultipartUpload", "200err", None),
    ],
)
async def test_transient_faults_are_retried_and_the_object_is_identical(
    operation: str,
    fault: str,
    part: int | None,
    proxy: FaultProxy,
    proxied_short: Any,
    s3: Any,
    bucket: str,
) -> None:
    proxy.fail(operation, fault, times=2, part=part, stall=5)
    result = await asyncup.upload(DATA, bucket, "obj", client=proxied_short, config=CONFIG)
    assert proxy.faults_injected[fault] == 2
    expected_requests = {"UploadPart": 4, "CreateMultipartUpload": 1, "CompleteMultipartUpload": 1}
    assert proxy.counts[operation] == expected_requests[operation] + 2
    assert result.parts == 4
    await assert_object(s3, bucket, "obj", DATA, PART)
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


@pytest.mark.parametrize("fault", ["503", "reset"])
async def test_single_put_object_is_retried(
    fault: str, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    data = random_bytes(PART - 1)
    proxy.fail("PutObject", fault, times=2)
    result = await asyncup.upload(data, bucket, "obj", client=proxied, config=CONFIG)
    assert proxy.counts["PutObject"] == 3
    assert result.upload_id is None
    await assert_object(s3, bucket, "obj", data, None)


async def test_client_with_retries_off_still_gets_part_retries(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    # The ``proxied`` client has botocore's total_max_attempts=1: every retry is asyncup's.
    assert proxied.meta.config.retries["total_max_attempts"] == 1
    proxy.fail("UploadPart", "503", times=3)
    await asyncup.upload(DATA, bucket, "obj", client=proxied, config=CONFIG)
    assert proxy.counts["UploadPart"] == 4 + 3
    await assert_object(s3, bucket, "obj", DATA, PART)


@pytest.mark.parametrize(("fault", "code"), [("403", "AccessDenied"), ("400", "InvalidArgument")])
async def test_access_denied_on_a_part_is_not_retried_and_the_upload_is_aborted(
    fault: str, code: str, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    proxy.fail("UploadPart", fault, part=2)
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(DATA, bucket, "obj", client=proxied, config=CONFIG)
    error = caught.value
    assert type(error) is asyncup.UploadError
    assert (error.code, error.part_number, error.abort_succeeded) == (code, 2, True)
    assert error.upload_id
    assert (error.bucket, error.key) == (bucket, "obj")
    assert code in str(error)
    assert "part 2" in str(error)
    assert error.__cause__ is not None
    assert proxy.counts["UploadPart"] <= 4  # part 2 was not sent twice
    assert proxy.counts["AbortMultipartUpload"] >= 1
    await assert_nothing_left(s3, bucket, "obj")


async def test_a_part_that_keeps_failing_stops_the_others_promptly(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    # 500, not 503: a throttled answer lowers the requests in flight, and the retry would
    # then wait for the slow parts' slots (tests/test_pressure.py).
    proxy.fail("UploadPart", "500", part=1, times=100)
    proxy.delay("UploadPart", 20)  # the other parts would take 20 s
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, concurrency=3, max_attempts=3, **FAST_RETRY
    )
    started = time.monotonic()
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(DATA, bucket, "obj", client=proxied, config=config)
    assert caught.value.code == "InternalError"
    assert caught.value.part_number == 1
    assert caught.value.abort_succeeded is True
    assert time.monotonic() - started < 10  # not waiting for the other parts' 20 s
    await assert_nothing_left(s3, bucket, "obj")


async def test_missing_bucket_fails_with_the_s3_code_in_the_message(moto_endpoint: str) -> None:
    # moto only: SeaweedFS creates a missing bucket on the first write, which S3 never does.
    for data in (b"small", DATA):
        with pytest.raises(asyncup.UploadError, match="NoSuchBucket") as caught:
            await asyncup.upload(
                data, "asyncup-no-such-bucket", "obj", endpoint_url=moto_endpoint, config=CONFIG
            )
        assert caught.value.code == "NoSuchBucket"
        assert caught.value.upload_id is None
        assert caught.value.abort_succeeded is None


class SourceBroke(Exception):
    pass


async def failing_stream(after: int) -> AsyncIterator[bytes]:
    yield random_bytes(after)
    raise SourceBroke("the client went away")


async def test_a_failing_source_surfaces_its_own_exception_and_is_aborted(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(
            failing_stream(2 * PART + 5), bucket, "obj", client=proxied, config=CONFIG
        )
    assert isinstance(caught.value.__cause__, SourceBroke)
    assert "the client went away" in str(caught.value)
    assert caught.value.abort_succeeded is True
    assert proxy.counts["CreateMultipartUpload"] == 1
    assert proxy.counts["AbortMultipartUpload"] >= 1
    await assert_nothing_left(s3, bucket, "obj")


async def test_a_file_that_cannot_be_read_is_an_upload_error(
    s3: Any, bucket: str, tmp_path: pathlib.Path
) -> None:
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(tmp_path / "missing.bin", bucket, "obj", client=s3)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


class BrokenFile:
    """A sync file whose disk fails after the first part."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, n: int) -> bytes:
        self.calls += 1
        if self.calls > 1:
            raise OSError(5, "Input/output error")
        return bytes(n)


async def test_a_sync_file_that_fails_mid_way_is_aborted(s3: Any, bucket: str) -> None:
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(BrokenFile(), bucket, "obj", client=s3, config=CONFIG)
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.abort_succeeded is True
    await assert_nothing_left(s3, bucket, "obj")


async def test_a_file_truncated_while_read_is_source_changed(
    s3: Any, bucket: str, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "shrinking.bin"
    path.write_bytes(DATA)
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, concurrency=1, queue_size=0
    )

    def truncate_after_first_part(n: int) -> None:
        os.truncate(path, PART + PART // 2)

    with pytest.raises(asyncup.SourceChangedError) as caught:
        await asyncup.upload(
            path, bucket, "obj", client=s3, config=config, on_progress=truncate_after_first_part
        )
    assert isinstance(caught.value, asyncup.UploadError)
    # One part in flight, none read ahead (concurrency 1, queue 0): part 2 is read after
    # part 1 is acknowledged, so after the truncation.
    assert caught.value.part_number == 2
    assert caught.value.abort_succeeded is True
    await assert_nothing_left(s3, bucket, "obj")


@pytest.mark.parametrize("stage", ["parts", "create", "complete"])
async def test_cancellation_aborts_and_propagates(
    stage: str, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    operation = {
        "parts": "UploadPart",
        "create": "CreateMultipartUpload",
        "complete": "CompleteMultipartUpload",
    }[stage]
    proxy.delay(operation, 1)  # under the client's read timeout: no retries here
    task = asyncio.create_task(asyncup.upload(DATA, bucket, "obj", client=proxied, config=CONFIG))
    await proxy.seen[operation].wait()
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 10
    if stage == "complete":
        # Complete may have landed before the abort: then the object is whole, not partial.
        uploads = await s3.list_multipart_uploads(Bucket=bucket)
        assert uploads.get("Uploads", []) == []
        listing = await s3.list_objects_v2(Bucket=bucket)
        if listing.get("KeyCount"):
            await assert_object(s3, bucket, "obj", DATA, PART)
        return
    assert proxy.counts["AbortMultipartUpload"] >= 1
    await assert_nothing_left(s3, bucket, "obj")


async def test_no_exception_group_reaches_the_caller_when_several_parts_fail(
    proxy: FaultProxy, proxied: Any, bucket: str
) -> None:
    proxy.fail("UploadPart", "403", times=4)
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(DATA, bucket, "obj", client=proxied, config=CONFIG)
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert not isinstance(caught.value.__cause__, BaseExceptionGroup)


async def test_complete_answering_200_with_an_error_body_is_never_a_success(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    proxy.fail("CompleteMultipartUpload", "200err", times=100)
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(DATA, bucket, "obj", client=proxied, config=CONFIG)
    assert caught.value.code == "InternalError"
    assert caught.value.abort_succeeded is True
    assert proxy.counts["CompleteMultipartUpload"] == CONFIG.max_attempts
    await assert_nothing_left(s3, bucket, "obj")


@pytest.mark.parametrize("how", ["asyncio.timeout", "anyio.move_on_after"])
async def test_deadlines_abort_the_upload(
    how: str, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    import anyio

    proxy.delay("UploadPart", 5)
    upload = asyncup.upload(DATA, bucket, "obj", client=proxied, config=CONFIG)
    if how == "asyncio.timeout":
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await upload
    else:
        with anyio.move_on_after(0.5) as scope:
            await upload
        assert scope.cancelled_caught
    assert proxy.counts["AbortMultipartUpload"] >= 1
    await assert_nothing_left(s3, bucket, "obj")


@pytest.mark.parametrize(
    ("server", "algorithm"),
    [
        pytest.param("moto", None, id="moto-md5"),
        pytest.param("seaweedfs", None, id="seaweedfs-md5"),
        pytest.param("seaweedfs", "CRC32", id="seaweedfs-crc32"),
    ],
    indirect=["server"],
)
async def test_a_lost_complete_answer_is_found_out(
    algorithm: str | None, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    """The server completed the upload, but its answer never arrived, and the retry finds no
    upload (as S3 may answer; moto and SeaweedFS would accept the repeat, so the proxy says
    NoSuchUpload): asyncup asks the object itself, and accepts it only with the ETag or
    checksum computed from the parts sent."""
    proxy.fail("CompleteMultipartUpload", "lost")
    proxy.fail("CompleteMultipartUpload", "404", times=10)
    config = asyncup.TransferConfig(
        part_size=PART,
        multipart_threshold=PART,
        checksum_algorithm=algorithm,
        max_attempts=3,
        **FAST_RETRY,
    )
    result = await asyncup.upload(DATA, bucket, "obj", client=proxied, config=config)
    assert proxy.counts["CompleteMultipartUpload"] == 2
    assert proxy.counts["HeadObject"] == 1
    assert result.etag_verified or result.checksum_verified
    assert proxy.counts["AbortMultipartUpload"] == 0
    await assert_object(s3, bucket, "obj", DATA, PART)
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


async def test_a_lost_complete_answer_that_cannot_be_confirmed_says_so(
    proxy: FaultProxy, proxied: Any, bucket: str
) -> None:
    # As above, but the object found at the key is not this upload's.
    proxy.fail("CompleteMultipartUpload", "lost")
    proxy.fail("CompleteMultipartUpload", "404", times=10)
    proxy.fail("HeadObject", "alien")
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, max_attempts=2, **FAST_RETRY
    )
    with pytest.raises(asyncup.UploadError, match="an object may exist at the key"):
        await asyncup.upload(DATA, bucket, "obj", client=proxied, config=config)


async def test_uploads_begun_by_timed_out_creates_are_aborted(
    proxy: FaultProxy, proxied_short: Any, s3: Any, bucket: str
) -> None:
    """Create attempts that time out may still succeed on the server, one before asyncup's
    own upload and one after it: each would be an orphan. asyncup looks for such twins (same
    key, begun while Create was retried) as the upload begins and once more as it ends."""
    proxy.delays["CreateMultipartUpload"] = 2.0  # > the client's 1.5 s read timeout
    proxy.delays["UploadPart"] = 0.5  # the upload outlasts the second late Create
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, concurrency=3, max_attempts=4, **FAST_RETRY
    )

    async def speed_up_once_the_first_landed() -> None:
        for _ in range(200):  # 10 s at most
            if (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads"):
                break
            await anyio.sleep(0.05)
        proxy.delays.pop("CreateMultipartUpload")

    async with anyio.create_task_group() as tg:
        tg.start_soon(speed_up_once_the_first_landed)
        result = await asyncup.upload(DATA, bucket, "obj", client=proxied_short, config=config)
    assert proxy.counts["CreateMultipartUpload"] == 3
    assert proxy.counts["AbortMultipartUpload"] == 2  # the two twins, not ours
    await assert_object(s3, bucket, "obj", DATA, PART)
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
    assert result.parts == 4


async def test_a_put_object_done_before_its_failure_is_found_out(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    """The first PutObject wrote the object but its answer had no ETag; the retry was
    refused (403). The object itself says it is ours: success, not a failure that lies
    about an object left at the key."""
    data = random_bytes(PART - 1, seed=8)
    proxy.fail("PutObject", "noetag")
    proxy.fail("PutObject", "403")
    result = await asyncup.upload(data, bucket, "obj", client=proxied, config=CONFIG)
    assert proxy.counts["PutObject"] == 2
    assert proxy.counts["HeadObject"] == 1
    assert result.checksum_verified or result.etag_verified
    await assert_object(s3, bucket, "obj", data, None)


async def test_a_put_object_that_may_have_landed_but_is_not_ours_says_so(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    data = random_bytes(PART - 1, seed=8)
    proxy.fail("PutObject", "noetag")
    proxy.fail("PutObject", "403")
    proxy.fail("HeadObject", "alien")
    with pytest.raises(asyncup.UploadError, match="PutObject may have succeeded") as caught:
        await asyncup.upload(data, bucket, "obj", client=proxied, config=CONFIG)
    assert "an object may exist at the key" in str(caught.value)


async def test_a_single_attempt_complete_whose_answer_is_lost_is_found_out(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    # No retry to meet NoSuchUpload: the broken answer alone is reason to ask the object.
    proxy.fail("CompleteMultipartUpload", "lost")
    config = asyncup.TransferConfig(part_size=PART, multipart_threshold=PART, max_attempts=1)
    result = await asyncup.upload(DATA, bucket, "obj", client=proxied, config=config)
    assert proxy.counts["HeadObject"] == 1
    assert proxy.counts["AbortMultipartUpload"] == 0
    assert result.parts == 4
    await assert_object(s3, bucket, "obj", DATA, PART)
