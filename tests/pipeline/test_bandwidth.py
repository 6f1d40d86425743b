"""The bandwidth cap: one rate for everything an Uploader sends."""

from __future__ import annotations

import time
from typing import Any

import anyio

import asyncup
from asyncup._pipeline.pace import Pacer
from tests.conftest import MiB, assert_object, random_bytes

PART = 5 * MiB


async def test_a_pacer_lets_one_second_of_bytes_go_at_once_then_keeps_the_rate() -> None:
    pacer = Pacer(100_000)
    started = anyio.current_time()
    await pacer.take(100_000)  # the burst: no wait
    assert anyio.current_time() - started < 0.05
    for _ in range(3):
        await pacer.take(50_000)
    # 150,000 bytes beyond the burst at 100,000 B/s: at least 1.5 s in all... minus the
    # half-reservation the last take may start inside; never faster than the rate.
    assert anyio.current_time() - started >= 1.0


async def test_the_cap_holds_for_all_uploads_of_an_uploader_together(s3: Any, bucket: str) -> None:
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, concurrency=4, max_bandwidth=10 * MiB
    )
    data = [random_bytes(2 * PART + 1, seed=i) for i in range(3)]
    total = sum(len(d) for d in data)
    started = time.monotonic()
    async with asyncup.Uploader(client=s3, config=config) as uploader:
        summary = await uploader.upload_many([(d, f"k{i}") for i, d in enumerate(data)], bucket)
    elapsed = time.monotonic() - started
    assert summary.ok
    # One second's worth may go at once; the rest at 10 MiB/s, whatever the concurrency.
    # (A busy machine only makes this slower, so the bound cannot flake.)
    assert elapsed >= (total - 10 * MiB) / (10 * MiB) - 0.6
    for i, d in enumerate(data):
        await assert_object(s3, bucket, f"k{i}", d, PART)
