"""Upload events: parts started and done, retries, bytes acknowledged, and the end."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import asyncup
from tests.conftest import MiB, random_bytes
from tests.faultproxy import FaultProxy

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART, multipart_threshold=PART, concurrency=2, retry_base_delay=0.01
)


async def collect(events: asyncup.UploadEvents, into: list[asyncup.UploadEvent]) -> None:
    async for event in events:
        into.append(event)


@pytest.mark.parametrize("size", [1000, 3 * PART + 1], ids=["single", "multipart"])
async def test_events_stream_parts_retries_and_the_end(
    size: int, proxy: FaultProxy, proxied: Any, bucket: str
) -> None:
    proxy.fail("UploadPart", "503", part=2)
    proxy.fail("PutObject", "503")
    events = asyncup.UploadEvents()
    seen: list[asyncup.UploadEvent] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(collect, events, seen)
        result = await asyncup.upload(
            random_bytes(size), bucket, "obj", client=proxied, config=CONFIG, on_event=events
        )
    # The stream ended by itself once the upload was over, with a "done".
    assert seen[-1].kind == "done"
    assert seen[-1].bytes_done == size
    done = [e.part_number for e in seen if e.kind == "part_done"]
    assert sorted(done) == list(range(1, result.parts + 1))
    started = {e.part_number for e in seen if e.kind == "part_started"}
    assert started == set(done)
    retries = [e for e in seen if e.kind == "retry"]
    assert len(retries) == 1
    assert retries[0].part_number == (2 if result.parts > 1 else 1)
    assert (retries[0].attempt, retries[0].error) == (2, "SlowDown")
    acknowledged = [e.bytes_done for e in seen]
    assert acknowledged == sorted(acknowledged)
    assert all(e.total == size for e in seen)
    assert {(e.bucket, e.key) for e in seen} == {(bucket, "obj")}


async def test_the_event_stream_ends_when_the_upload_fails(
    proxy: FaultProxy, proxied: Any, bucket: str
) -> None:
    proxy.fail("UploadPart", "403", part=1)
    events = asyncup.UploadEvents()
    seen: list[asyncup.UploadEvent] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(collect, events, seen)
        with pytest.raises(asyncup.UploadError):
            await asyncup.upload(
                random_bytes(2 * PART),
                bucket,
                "obj",
                client=proxied,
                config=CONFIG,
                on_event=events,
            )
    assert seen[-1].kind == "done"


async def test_a_plain_callback_gets_the_same_events(s3: Any, bucket: str) -> None:
    seen: list[str] = []
    await asyncup.upload(
        random_bytes(2 * PART),
        bucket,
        "obj",
        client=s3,
        config=CONFIG,
        on_event=lambda event: seen.append(event.kind),
    )
    assert seen.count("part_started") == seen.count("part_done") == 2
    assert seen[-1] == "done"
