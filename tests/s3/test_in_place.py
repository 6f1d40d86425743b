"""A file's parts sent from where they lie in the file (``FilePart``), on asyncup's own clients:
read to digest each part, read again as it is sent, never held whole in memory.

Each test runs on both wires: asyncup's client with aiobotocore's plain aiohttp session
(``RangePayload`` written by aiohttp, as through a proxy) and as asyncup makes it
(``sendfile`` from a worker thread). A caller's own client keeps buffered parts.
"""

from __future__ import annotations

import errno
import os
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from aiobotocore.httpsession import AIOHTTPSession

import asyncup
from asyncup._s3.client import open_client
from tests.conftest import (
    MiB,
    assert_nothing_left,
    assert_object,
    client_config,
    make_client,
    random_bytes,
)
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


def ours(endpoint: str, wire: str, read_timeout: float) -> Any:
    """A client as asyncup makes its own; on the "aiohttp" wire with aiobotocore's own session."""
    session = {} if wire == "threads" else {"http_session_cls": AIOHTTPSession}
    return open_client(
        endpoint,
        asyncup.TransferConfig(),
        region_name="us-east-1",
        client_config=client_config(read_timeout=read_timeout, **session),
    )


@pytest.fixture
async def unsigned(proxy: FaultProxy, wire: str) -> AsyncIterator[Any]:
    """asyncup's own client, through the fault proxy."""
    async with ours(proxy.url, wire, 10) as client:
        yield client


async def refused_as_changed(
    client: Any, s3: Any, bucket: str, path: pathlib.Path, **options: Any
) -> asyncup.SourceChangedError:
    """The SourceChangedError of an upload of ``path`` that must fail: aborted, nothing left."""
    with pytest.raises(asyncup.SourceChangedError) as caught:
        await asyncup.upload(path, bucket, "obj", client=client, **options)
    assert caught.value.abort_succeeded is True
    await assert_nothing_left(s3, bucket, "obj")
    return caught.value


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
    async with ours(proxy.url, wire, 1.5) as client:
        result = await asyncup.upload(path, bucket, "obj", client=client, config=CONFIG)
    assert proxy.faults_injected[fault] == 2
    assert proxy.counts["UploadPart"] == 4 + 2
    assert result.parts == 4
    await assert_object(s3, bucket, "obj", DATA, PART)


@pytest.mark.parametrize("server", ["moto"])
@pytest.mark.parametrize("signing", [False, True])
async def test_a_callers_own_client_keeps_buffered_parts(
    server: str, signing: bool, proxy: FaultProxy, s3: Any, bucket: str, path: pathlib.Path
) -> None:
    """Whatever its settings (here: payloads signed, or set as asyncup sets its own), a
    caller's client is not one asyncup knows to send a file range without reading it on the
    loop: its parts are read into the budget's buffers, one at a time for a one-part budget."""
    proxy.delay("UploadPart", 0.3)
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, concurrency=4, max_buffer_bytes=PART
    )
    settings: dict[str, Any] = {"s3": {"payload_signing_enabled": signing}}
    if not signing:
        settings["request_checksum_calculation"] = "when_required"
    async with (
        await make_client(proxy.url, read_timeout=10, **settings) as client,
        asyncup.Uploader(client=client, config=config) as uploader,
    ):
        await uploader.upload(path, bucket, "obj")
    assert proxy.max_parts_in_flight == 1
    await assert_object(s3, bucket, "obj", DATA, PART)


async def test_a_file_that_grows_while_its_parts_are_sent_is_source_changed(
    unsigned: Any, s3: Any, bucket: str, path: pathlib.Path
) -> None:
    """The end of the file is checked once every part has been read, not when the last part
    is queued: bytes appended while the parts go out are seen."""

    def append_once_the_last_part_starts(event: asyncup.UploadEvent) -> None:
        if event.kind == "part_started" and event.part_number == 4:
            with path.open("ab") as file:
                file.write(b"more")

    error = await refused_as_changed(
        unsigned, s3, bucket, path, config=CONFIG, on_event=append_once_the_last_part_starts
    )
    assert "holds more than" in str(error)


@pytest.mark.parametrize("wire", ["threads"])
async def test_without_sendfile_each_part_is_still_read_at_its_own_offset(
    wire: str,
    unsigned: Any,
    s3: Any,
    bucket: str,
    path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the kernel refuses sendfile, Python's socket.sendfile falls back to reading the
    file object: reading through a descriptor that shares the source's file offset, parts
    in flight at once would read each other's bytes."""

    def no_sendfile(*args: object) -> int:
        raise OSError(errno.EINVAL, "sendfile refused (as by some file systems)")

    monkeypatch.setattr(os, "sendfile", no_sendfile)
    result = await asyncup.upload(path, bucket, "obj", client=unsigned, config=CONFIG)
    assert result.parts == 4
    await assert_object(s3, bucket, "obj", DATA, PART)


async def test_a_file_that_shrinks_before_a_part_is_read_is_source_changed(
    unsigned: Any, s3: Any, bucket: str, path: pathlib.Path
) -> None:
    def truncate_after_first_part(n: int) -> None:
        os.truncate(path, PART + PART // 2)

    error = await refused_as_changed(
        unsigned, s3, bucket, path, config=ONE_AT_A_TIME, on_progress=truncate_after_first_part
    )
    assert error.part_number == 2
    assert "ended inside part 2" in str(error)


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

    error = await refused_as_changed(
        unsigned, s3, bucket, path, config=ONE_AT_A_TIME, on_event=truncate_once_part_2_is_digested
    )
    assert error.part_number == 2
    assert "ended inside part 2" in str(error)
    assert [event for event in events if event.kind == "retry"] == []


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

    error = await refused_as_changed(
        unsigned, s3, bucket, path, config=ONE_AT_A_TIME, on_event=overwrite_once_part_2_is_digested
    )
    assert error.part_number == 2
    assert "changed while sending part 2" in str(error)
