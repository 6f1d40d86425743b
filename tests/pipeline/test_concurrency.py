"""Concurrency and memory bounds, observed from the server's side through the proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import asyncup
from tests.conftest import MiB, assert_object, random_bytes
from tests.faultproxy import FaultProxy

PART = 5 * MiB


class MeteredStream:
    """An async iterable that records how far reading runs ahead of acknowledged bytes."""

    def __init__(self, data: bytes, chunk: int = 256 * 1024) -> None:
        self.data = data
        self.chunk = chunk
        self.read = 0
        self.acknowledged = 0
        self.max_ahead = 0

    def on_progress(self, n: int) -> None:
        self.acknowledged += n

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.chunk):
            piece = self.data[start : start + self.chunk]
            self.read += len(piece)
            self.max_ahead = max(self.max_ahead, self.read - self.acknowledged)
            yield piece


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_parts_in_flight_reach_concurrency_and_never_exceed_it(
    concurrency: int, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    proxy.delay("UploadPart", 0.3)
    data = random_bytes(7 * PART + 3)
    config = asyncup.TransferConfig(part_size=PART, concurrency=concurrency)
    await asyncup.upload(data, bucket, "obj", client=proxied, config=config)
    assert proxy.counts["UploadPart"] == 8
    assert proxy.max_parts_in_flight == concurrency
    await assert_object(s3, bucket, "obj", data, PART)


@pytest.mark.parametrize(("concurrency", "queue_size"), [(2, 1), (1, 0), (2, 3)])
async def test_read_ahead_stays_within_the_memory_bound(
    concurrency: int, queue_size: int, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    proxy.delay("UploadPart", 0.3)
    stream = MeteredStream(random_bytes(10 * PART + 7))
    config = asyncup.TransferConfig(part_size=PART, concurrency=concurrency, queue_size=queue_size)
    await asyncup.upload(
        stream, bucket, "obj", client=proxied, config=config, on_progress=stream.on_progress
    )
    # The pipeline's own bound is concurrency + queue_size + 1 parts; the Uploader's default
    # byte budget holds it to concurrency + queue_size.
    bound = (concurrency + queue_size) * PART
    assert stream.max_ahead <= bound + stream.chunk
    # ... and the queue is really used: reading runs ahead of the parts being sent.
    assert stream.max_ahead > (concurrency + queue_size - 1) * PART
    await assert_object(s3, bucket, "obj", stream.data, PART)


async def test_one_uploader_shares_its_budget_among_uploads(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    proxy.delay("UploadPart", 0.3)
    config = asyncup.TransferConfig(
        part_size=PART, concurrency=3, queue_size=1, max_buffer_bytes=4 * PART
    )
    streams = [MeteredStream(random_bytes(4 * PART + i, seed=i)) for i in range(4)]
    in_buffers = 0
    max_in_buffers = 0

    def sample() -> None:
        nonlocal in_buffers, max_in_buffers
        in_buffers = sum(s.read - s.acknowledged for s in streams)
        max_in_buffers = max(max_in_buffers, in_buffers)

    def make_progress(stream: MeteredStream) -> Any:
        def on_progress(n: int) -> None:
            stream.on_progress(n)
            sample()

        return on_progress

    async def watch() -> None:
        while True:
            sample()
            await asyncio.sleep(0.005)

    async with asyncup.Uploader(client=proxied, config=config) as uploader:
        watcher = asyncio.create_task(watch())
        try:
            await asyncio.gather(
                *(
                    uploader.upload(s, bucket, f"obj{i}", on_progress=make_progress(s))
                    for i, s in enumerate(streams)
                )
            )
        finally:
            watcher.cancel()
    # Four uploads, each with concurrency 3, yet 3 requests in flight in all.
    assert proxy.max_parts_in_flight == 3
    # And the bytes buffered by all of them together stay within max_buffer_bytes
    # (plus one source chunk per stream in transit).
    assert max_in_buffers <= 4 * PART + len(streams) * streams[0].chunk
    for i, s in enumerate(streams):
        await assert_object(s3, bucket, f"obj{i}", s.data, PART)
