"""Behaviour under pressure, through the fault proxy: fewer requests in flight while S3
throttles and as many again after, a retry quota that ends a storm's retries for every upload
of an Uploader, and a deadline on each request that a trickled answer cannot dodge."""

from __future__ import annotations

import time
from typing import Any

import pytest

import asyncup
from tests.conftest import MiB, assert_nothing_left, assert_object, random_bytes
from tests.faultproxy import FaultProxy

PART = 5 * MiB
FAST_RETRY = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}
QUOTA_RETRIES = 100  # the SDKs' quota of 500 tokens, 5 per retry after a 503


def in_flight_between(proxy: FaultProxy, start: float, end: float) -> int:
    """The most UploadPart requests in flight at once from ``start`` to ``end``."""
    return max((n for t, n in proxy.part_timeline if start <= t <= end), default=0)


async def test_a_slowdown_storm_lowers_the_parts_in_flight_and_they_recover(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    concurrency = 4
    config = asyncup.TransferConfig(
        part_size=PART, concurrency=concurrency, max_attempts=20, **FAST_RETRY
    )
    data = random_bytes(12 * PART, seed=5)
    proxy.delay("UploadPart", 0.25)
    # Every part's first attempt and the retries after them: 12 answers of 503 SlowDown.
    proxy.fail("UploadPart", "503", times=12)
    await asyncup.upload(data, bucket, "obj", client=proxied, config=config)
    assert proxy.faults_injected["503"] == 12
    storm_over = proxy.fault_times[-1]
    # Right after the storm a single part goes (the limit halved per round of throttled
    # answers: 4 -> 2 -> 1); without adaptive concurrency, the four parts waiting to be
    # retried would all be sent within the 0.05 s of their backoff. No request sent after
    # the storm can be answered before the proxy's 0.25 s delay, so the limit cannot have
    # gone up yet.
    assert in_flight_between(proxy, storm_over, storm_over + 0.2) == 1
    # Then one more per round of successes, back to the configured concurrency.
    assert in_flight_between(proxy, storm_over, time.monotonic()) == concurrency
    assert proxy.max_parts_in_flight == concurrency
    await assert_object(s3, bucket, "obj", data, PART)


async def test_a_storm_longer_than_the_retry_quota_fails_fast_and_is_aborted(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    # max_attempts would allow 300 requests per part: the quota ends the storm's retries
    # first, after 100 of them in all.
    config = asyncup.TransferConfig(part_size=PART, concurrency=3, max_attempts=300, **FAST_RETRY)
    data = random_bytes(3 * PART + 1000, seed=6)  # 4 parts
    proxy.fail("UploadPart", "503", times=10_000)
    started = time.monotonic()
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(data, bucket, "obj", client=proxied, config=config)
    assert time.monotonic() - started < 10
    error = caught.value
    assert error.code == "SlowDown"
    assert error.part_number in (1, 2, 3, 4)
    assert f"(part {error.part_number})" in str(error)
    assert error.abort_succeeded is True
    assert any("retry quota is spent" in note for note in getattr(error.__cause__, "__notes__", []))
    assert "retry quota is spent" in str(error)
    # First attempts of the parts sent, plus at most the 100 retries the quota paid for.
    assert QUOTA_RETRIES <= proxy.counts["UploadPart"] <= 4 + QUOTA_RETRIES
    await assert_nothing_left(s3, bucket, "obj")


async def test_the_retry_quota_is_shared_by_the_uploads_of_an_uploader(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    config = asyncup.TransferConfig(part_size=PART, concurrency=3, max_attempts=150, **FAST_RETRY)
    proxy.fail("UploadPart", "503", times=10_000)
    async with asyncup.Uploader(client=proxied, config=config) as uploader:
        with pytest.raises(asyncup.UploadError):
            await uploader.upload(random_bytes(2 * PART, seed=7), bucket, "stormy")
        proxy.rules.clear()
        # The storm spent the Uploader's quota: a single 503 on another upload is final.
        proxy.fail("PutObject", "503")
        with pytest.raises(asyncup.UploadError) as caught:
            await uploader.upload(b"small", bucket, "small")
        assert caught.value.code == "SlowDown"
        assert proxy.counts["PutObject"] == 1
    # Another Uploader has a quota of its own: the same fault is retried and goes through.
    proxy.fail("PutObject", "503")
    async with asyncup.Uploader(client=proxied, config=config) as uploader:
        await uploader.upload(b"elsewhere", bucket, "elsewhere")
    assert proxy.counts["PutObject"] == 1 + 2
    await assert_object(s3, bucket, "elsewhere", b"elsewhere", None)
    await assert_nothing_left(s3, bucket, "stormy")


@pytest.mark.parametrize(
    ("operation", "part"),
    [("UploadPart", 2), ("CompleteMultipartUpload", None)],
)
async def test_a_trickled_answer_is_cut_at_the_deadline_and_retried(
    operation: str, part: int | None, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    # The proxy forwards the request, then sends the answer's headers and a space every
    # 0.1 s for 20 s: the client's 10 s read timeout never trips. The deadline of part 2
    # (1,000 bytes) is 1 s and a bit, Complete's 1 s + 0.05 s per part.
    config = asyncup.TransferConfig(
        part_size=PART,
        multipart_threshold=PART,
        concurrency=2,
        max_attempts=3,
        request_timeout=1.0,
        **FAST_RETRY,
    )
    data = random_bytes(PART + 1000, seed=8)
    proxy.fail(operation, "trickle", part=part, stall=20)
    started = time.monotonic()
    result = await asyncup.upload(data, bucket, "obj", client=proxied, config=config)
    assert time.monotonic() - started < 8
    assert proxy.faults_injected["trickle"] == 1
    assert proxy.counts[operation] == {"UploadPart": 3, "CompleteMultipartUpload": 2}[operation]
    assert result.parts == 2
    await assert_object(s3, bucket, "obj", data, PART)
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
