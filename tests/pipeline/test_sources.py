"""Every source kind x sizes around the part boundary, uploaded to moto and read back."""

from __future__ import annotations

import asyncio
import io
import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from unittest import mock

import anyio
import pytest
from aiohttp.streams import StreamReader

import asyncup
import asyncup._pipeline.sources
from tests.conftest import MiB, assert_object, random_bytes

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(part_size=PART, multipart_threshold=PART, concurrency=4)


class NonSeekableFile:
    """A blocking binary stream without seek (a pipe, a socket file): read(n) only."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._buffer.read(min(n, 70_001))  # short reads, as pipes give

    def seekable(self) -> bool:
        return False


class AsyncReader:
    """An object with an awaitable read(n) returning short reads, like aiohttp's StreamReader."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    async def read(self, n: int = -1) -> bytes:
        await anyio.lowlevel.checkpoint()
        n = min(n, 65_537)
        chunk = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk


async def chunks(
    data: bytes, sizes: tuple[int, ...] = (1, 100_003, 4_000_000, 7)
) -> AsyncIterator[bytes]:
    """Chunks of awkward sizes, spanning part boundaries."""
    pos = 0
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield data[pos : pos + n]
        pos += n
        i += 1


Factory = Callable[[bytes, pathlib.Path], Any]


async def _path_str(data: bytes, tmp: pathlib.Path) -> Any:
    path = tmp / "source.bin"
    path.write_bytes(data)
    return str(path)


async def _path_obj(data: bytes, tmp: pathlib.Path) -> Any:
    path = tmp / "source.bin"
    path.write_bytes(data)
    return path


async def _seekable_file(data: bytes, tmp: pathlib.Path) -> Any:
    path = tmp / "source.bin"
    path.write_bytes(data)
    return path.open("rb")


async def _anyio_file(data: bytes, tmp: pathlib.Path) -> Any:
    path = tmp / "source.bin"
    path.write_bytes(data)
    return await anyio.open_file(path, "rb")


async def _bytes(data: bytes, tmp: pathlib.Path) -> Any:
    return data


async def _bytearray(data: bytes, tmp: pathlib.Path) -> Any:
    return bytearray(data)


async def _memoryview(data: bytes, tmp: pathlib.Path) -> Any:
    return memoryview(data)


async def _non_seekable(data: bytes, tmp: pathlib.Path) -> Any:
    return NonSeekableFile(data)


async def _async_reader(data: bytes, tmp: pathlib.Path) -> Any:
    return AsyncReader(data)


async def _async_iterable(data: bytes, tmp: pathlib.Path) -> Any:
    return chunks(data)


MAIN_KINDS = {
    "bytes": _bytes,
    "path": _path_str,
    "seekable-file": _seekable_file,
    "non-seekable-file": _non_seekable,
    "async-reader": _async_reader,
    "async-iterable": _async_iterable,
}
VARIANTS = {
    "bytearray": _bytearray,
    "memoryview": _memoryview,
    "pathlib": _path_obj,
    "anyio-file": _anyio_file,
}
SIZES = {
    "0": 0,
    "1": 1,
    "part-1": PART - 1,
    "part": PART,
    "part+1": PART + 1,
    "3parts+": 3 * PART + 123,
}


async def _upload_and_check(
    kind: Callable[..., Any], size: int, s3: Any, bucket: str, tmp_path: pathlib.Path, server: str
) -> None:
    data = random_bytes(size, seed=size)
    source = await kind(data, tmp_path)
    progress: list[int] = []
    try:
        result = await asyncup.upload(
            source, bucket, "obj", client=s3, config=CONFIG, on_progress=progress.append
        )
    finally:
        if hasattr(source, "aclose"):
            await source.aclose()
        elif hasattr(source, "close"):
            source.close()
    multipart = size >= PART
    assert result.size == size
    assert result.parts == (-(-size // PART) if multipart else 1)
    assert (result.upload_id is not None) == multipart
    # SeaweedFS, like S3, returns the object's checksum and asyncup checks it; moto returns
    # one only for single PutObjects, an echo of what it was sent.
    if server == "seaweedfs":
        assert result.checksum_verified
    assert sum(progress) == size
    await assert_object(s3, bucket, "obj", data, PART if multipart else None)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("kind", MAIN_KINDS.values(), ids=MAIN_KINDS.keys())
async def test_every_source_kind_round_trips(
    kind: Factory, size: int, s3: Any, bucket: str, tmp_path: pathlib.Path, server: str
) -> None:
    await _upload_and_check(kind, size, s3, bucket, tmp_path, server)


@pytest.mark.parametrize("size", [1, PART + 1], ids=["single", "multipart"])
@pytest.mark.parametrize("kind", VARIANTS.values(), ids=VARIANTS.keys())
async def test_source_variants_round_trip(
    kind: Factory, size: int, s3: Any, bucket: str, tmp_path: pathlib.Path, server: str
) -> None:
    await _upload_and_check(kind, size, s3, bucket, tmp_path, server)


async def test_seekable_file_uploads_from_its_current_position(
    s3: Any, bucket: str, tmp_path: pathlib.Path
) -> None:
    data = random_bytes(PART + 10)
    path = tmp_path / "f.bin"
    path.write_bytes(b"skip me" + data)
    with path.open("rb") as file:
        file.seek(7)
        result = await asyncup.upload(file, bucket, "obj", client=s3, config=CONFIG)
    assert result.size == len(data)
    await assert_object(s3, bucket, "obj", data, PART)


async def test_stream_with_threshold_above_part_size_goes_single_when_short(
    s3: Any, bucket: str
) -> None:
    """A stream of unknown length that ends below multipart_threshold is one PutObject,
    even when the threshold is larger than a part."""
    config = asyncup.TransferConfig(part_size=PART, multipart_threshold=3 * PART)
    data = random_bytes(2 * PART)
    result = await asyncup.upload(chunks(data), bucket, "obj", client=s3, config=config)
    assert (result.parts, result.upload_id) == (1, None)
    await assert_object(s3, bucket, "obj", data, None)


@pytest.mark.parametrize(
    "bad",
    [12, "text".encode, ["list"], {"a": 1}, io.StringIO("text")],
    ids=["int", "method", "list", "dict", "text-file"],
)
async def test_unsupported_sources_raise_type_error_naming_what_is_accepted(
    bad: object, s3: Any, bucket: str
) -> None:
    with pytest.raises(TypeError, match="AsyncIterable"):
        await asyncup.upload(bad, bucket, "obj", client=s3)


async def test_reading_an_aiohttp_stream_leaves_its_read_ahead_as_it_was() -> None:
    """aiohttp's StreamReader raises its buffer's limits to 2n for a read(n): a stream read
    a part at a time would read megabytes of each client's body ahead (issue 19)."""
    protocol = mock.Mock(_reading_paused=False)
    reader = StreamReader(protocol, limit=32 * 1024, loop=asyncio.get_running_loop())
    limits = reader.get_read_buffer_limits()
    data = random_bytes(3 * MiB, seed=19)
    for start in range(0, len(data), 256 * 1024):
        reader.feed_data(data[start : start + 256 * 1024])
    reader.feed_eof()
    source = asyncup._pipeline.sources.AsyncReaderSource(reader)
    buffer = bytearray(2 * MiB)
    assert await source.readinto(memoryview(buffer)) == 2 * MiB
    assert bytes(buffer) == data[: 2 * MiB]
    assert reader.get_read_buffer_limits() <= (64 * 1024, 128 * 1024)  # aiohttp's defaults
    assert limits == (32 * 1024, 64 * 1024)
