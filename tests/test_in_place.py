"""A file's parts sent from where they lie in the file (``FilePart``), on a client that does not
sign payloads (asyncup's own clients, or a caller's with payload signing off): read to digest
each part, read again as it is sent, never held whole in memory.

Each test runs on both wires: a caller's aiohttp client (``RangePayload`` written by aiohttp)
and a client as asyncup makes it (``sendfile`` from a worker thread).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import asyncup
from tests.conftest import MiB, assert_nothing_left, assert_object, make_client, random_bytes
from tests.faultproxy import FaultProxy

PART = 5 * MiB
FAST_RETRY = {"retry_base_delay": 0.01, "retry_max_delay": 0.05}
CONFIG = asyncup.TransferConfig(
    part_size=PART, multipart_threshold=PART, concurrency=3, max_attempts=3, **FAST_RETRY
)
ONE_AT_A_TIME = asyncup.TransferConfig(
    part_size=PART, multipart_threshold=PART, concurrency=1, queue_size=0, **FAST_RETRY
)
DATA = random_bytes(3 * PART + 1000, seed=21)  # 4 parts
OTHER = random_bytes(len(DATA), seed=22)


@pytest.fixture
async def unsigned(proxy: FaultProxy, wire: str) -> AsyncIterator[Any]:
    """Through the fault proxy, payloads unsigned (as asyncup's own clients send them)."""
    async with await make_client(
        proxy.url, wire=wire, read_timeout=10, s3={"payload_signing_enabled": False}
    ) as client:
        yield client


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    file = tmp_path / "data.bin"
    file.write_bytes(DATA)
    return file


async def test_a_files_parts_take_nothing_from_the_memory_budget(
    proxy: FaultProxy, unsigned: Any, s3: Any, bucket: str, path: pathlib.Path
) -> None:
    """A budget of one part: the bytes' parts go one at a time, the file's all at once."""
    proxy.delay("UploadPart", 0.3)
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, concurrency=4, max_buffer_bytes=PART
    )
    async with asyncup.Uploader(client=unsigned, config=config) as uploader:
        await uploader.upload(DATA, bucket, "from-bytes")
        assert proxy.max_parts_in_flight == 1
        await uploader.upload(path, bucket, "from-file")
    assert proxy.max_parts_in_flight == 4
    await assert_object(s3, bucket, "from-bytes", DATA, PART)
    await assert_object(s3, bucket, "from-file", DATA, PART)


@pytest.mark.parametrize("fault", ["503", "reset", "stall"])
async def test_a_files_parts_are_sent_again_from_the_file_after_a_fault(
    fault: str, proxy: FaultProxy, wire: str, s3: Any, bucket: str, path: pathlib.Path
) -> None:
    proxy.fail("UploadPart", fault, times=2, part=2, stall=5)
    async with await make_client(
        proxy.url, wire=wire, read_timeout=1.5, s3={"payload_signing_enabled": False}
    ) as client:
        result = await asyncup.upload(path, bucket, "obj", client=client, config=CONFIG)
    assert proxy.faults_injected[fault] == 2
    assert proxy.counts["UploadPart"] == 4 + 2
    assert result.parts == 4
    await assert_object(s3, bucket, "obj", DATA, PART)


async def test_a_file_that_shrinks_before_a_part_is_read_is_source_changed(
    unsigned: Any, s3: Any, bucket: str, path: pathlib.Path
) -> None:
    def truncate_after_first_part(n: int) -> None:
        os.truncate(path, PART + PART // 2)

    with pytest.raises(asyncup.SourceChangedError) as caught:
        await asyncup.upload(
            path,
            bucket,
            "obj",
            client=unsigned,
            config=ONE_AT_A_TIME,
            on_progress=truncate_after_first_part,
        )
    assert caught.value.part_number == 2
    assert "ended inside part 2" in str(caught.value)
    assert caught.value.abort_succeeded is True
    await assert_nothing_left(s3, bucket, "obj")


async def test_a_file_that_shrinks_while_a_part_is_sent_is_source_changed_at_once(
    proxy: FaultProxy, unsigned: Any, s3: Any, bucket: str, path: pathlib.Path
) -> None:
    """Digested whole, then found short as it is sent: not retried (the bytes will not come
    back), one SourceChangedError."""
    events: list[asyncup.UploadEvent] = []

    def truncate_once_part_2_is_digested(event: asyncup.UploadEvent) -> None:
        events.append(event)
        if event.kind == "part_started" and event.part_number == 2:
            os.truncate(path, PART + PART // 2)

    with pytest.raises(asyncup.SourceChangedError) as caught:
        await asyncup.upload(
            path,
            bucket,
            "obj",
            client=unsigned,
            config=ONE_AT_A_TIME,
            on_event=truncate_once_part_2_is_digested,
        )
    assert caught.value.part_number == 2
    assert "ended inside part 2" in str(caught.value)
    assert [event for event in events if event.kind == "retry"] == []
    assert caught.value.abort_succeeded is True
    await assert_nothing_left(s3, bucket, "obj")


async def test_a_file_renamed_over_during_the_upload_is_sent_as_it_was_opened(
    unsigned: Any, s3: Any, bucket: str, path: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """The parts are read through the descriptor opened at the start, not by path: a file
    moved into place meanwhile does not mix into the object."""
    newer = tmp_path / "newer.bin"
    newer.write_bytes(OTHER)

    def replace_after_first_part(n: int) -> None:
        if newer.exists():
            os.replace(newer, path)

    await asyncup.upload(
        path,
        bucket,
        "obj",
        client=unsigned,
        config=ONE_AT_A_TIME,
        on_progress=replace_after_first_part,
    )
    assert await anyio.Path(path).read_bytes() == OTHER
    await assert_object(s3, bucket, "obj", DATA, PART)


@pytest.mark.parametrize("server", ["seaweedfs"])  # moto does not check part checksums
async def test_a_file_changed_while_a_part_is_sent_is_source_changed(
    server: str, unsigned: Any, s3: Any, bucket: str, path: pathlib.Path
) -> None:
    """Digested, then changed in place before it is sent: S3 refuses the bytes, and the part
    read again does not match what was sent, so the file changed (not the network)."""

    def overwrite_once_part_2_is_digested(event: asyncup.UploadEvent) -> None:
        if event.kind == "part_started" and event.part_number == 2:
            with path.open("r+b") as file:
                file.seek(PART)
                file.write(OTHER[:PART])

    with pytest.raises(asyncup.SourceChangedError) as caught:
        await asyncup.upload(
            path,
            bucket,
            "obj",
            client=unsigned,
            config=ONE_AT_A_TIME,
            on_event=overwrite_once_part_2_is_digested,
        )
    assert caught.value.part_number == 2
    assert "changed while sending part 2" in str(caught.value)
    assert caught.value.abort_succeeded is True
    await assert_nothing_left(s3, bucket, "obj")
