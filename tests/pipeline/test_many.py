"""Uploader.upload_many: many objects at once under ONE budget, failures per object."""

from __future__ import annotations

import gc
import mmap
import pathlib
from typing import Any

import anyio
import pytest

import asyncup
import asyncup._pipeline.job
from asyncup._pipeline.many import for_each
from tests.conftest import MiB, assert_nothing_left, assert_object, random_bytes
from tests.faultproxy import FaultProxy

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART, multipart_threshold=PART, concurrency=4, queue_size=2, retry_base_delay=0.01
)


class LiveBuffers:
    """Counts the bytes of the part buffers asyncup has allocated and not yet freed: the
    bytearrays of a caller's client and the mappings of asyncup's own (``mapped_buffer``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0
        self.peak = 0
        monkeypatch.setattr(
            asyncup._pipeline.job, "plain_buffer", lambda size: self._counted(bytearray, size, size)
        )
        monkeypatch.setattr(
            asyncup._pipeline.job,
            "mapped_buffer",
            lambda size: self._counted(mmap.mmap, size, -1, size),
        )

    def _counted(self, kind: type, size: int, *args: Any) -> Any:
        """A ``kind(*args)`` of ``size`` bytes, counted until it is freed (and as it is cut
        down: a short part's buffer is)."""
        counter = self

        class Counted(kind):
            counted = size

            def __del__(self) -> None:
                counter.now -= self.counted

            def resize(self, new: int) -> None:  # a mapping
                super().resize(new)
                counter.now -= self.counted - new
                self.counted = new

            def __delitem__(self, index: Any) -> None:  # a bytearray cut down
                super().__delitem__(index)
                counter.now -= self.counted - len(self)
                self.counted = len(self)

        self.now += size
        self.peak = max(self.peak, self.now)
        return Counted(*args)


async def test_thousands_of_small_objects_and_a_few_large_ones_share_one_budget(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = [(random_bytes(1024, seed=i), f"small/{i:04d}") for i in range(1000)]
    large = [(random_bytes(3 * PART, seed=-i), f"large/{i}") for i in range(1, 4)]
    items = small[:500] + large + small[500:]
    proxy.delay("UploadPart", 0.1)
    live = LiveBuffers(monkeypatch)
    async with asyncup.Uploader(client=proxied, config=CONFIG) as uploader:
        summary = await uploader.upload_many(items, bucket, objects_in_flight=16)
    assert summary.ok
    assert len(summary.results) == 1003
    assert summary.size == 1000 * 1024 + 3 * 3 * PART
    # Sixteen objects open at once, yet never more than 4 writes in flight in all ...
    assert proxy.max_writes_in_flight == 4
    # ... and never more part buffers than the one budget: (4 + 2) x 5 MiB, not 3 x that.
    assert CONFIG.buffer_budget == 30 * MiB
    assert 2 * PART < live.peak <= CONFIG.buffer_budget
    del uploader, summary
    gc.collect()
    assert live.now == 0
    listing = await s3.list_objects_v2(Bucket=bucket, Prefix="small/")
    assert listing["KeyCount"] == 1000
    for data, key in large:
        await assert_object(s3, bucket, key, data, PART)
    for data, key in small[::250]:
        await assert_object(s3, bucket, key, data, None)


async def test_a_failed_object_does_not_stop_the_others(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str, tmp_path: pathlib.Path
) -> None:
    proxy.fail("UploadPart", "403", part=2)
    items: list[tuple[object, str]] = [
        (b"one", "a"),
        (tmp_path / "missing.bin", "missing"),
        (random_bytes(3 * PART), "big"),
        (b"two", "b"),
    ]
    async with asyncup.Uploader(client=proxied, config=CONFIG) as uploader:
        summary = await uploader.upload_many(items, bucket)
    assert not summary.ok
    assert sorted(r.key for r in summary.results) == ["a", "b"]
    failed = dict(summary.errors)
    assert set(failed) == {"missing", "big"}
    assert isinstance(failed["missing"].__cause__, FileNotFoundError)
    assert isinstance(failed["big"], asyncup.UploadError)
    assert failed["big"].abort_succeeded is True
    await assert_nothing_left(s3, bucket, "big")


async def test_stop_on_error_cancels_the_rest_and_raises_the_first_failure(
    proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    proxy.delay("UploadPart", 1)
    proxy.fail("PutObject", "403")
    items = [(random_bytes(3 * PART, seed=i), f"big{i}") for i in range(2)] + [(b"x", "small")]
    async with asyncup.Uploader(client=proxied, config=CONFIG) as uploader:
        with pytest.raises(asyncup.UploadError, match="AccessDenied"):
            await uploader.upload_many(items, bucket, stop_on_error=True)
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
    assert (await s3.list_objects_v2(Bucket=bucket)).get("KeyCount", 0) == 0


async def test_async_iterables_of_items_and_bad_items(s3: Any, bucket: str) -> None:
    async def items() -> Any:
        for i in range(5):
            yield (f"object {i}".encode(), f"k{i}")

    async with asyncup.Uploader(client=s3, config=CONFIG) as uploader:
        summary = await uploader.upload_many(items(), bucket)
        assert sorted(r.key for r in summary.results) == [f"k{i}" for i in range(5)]
        with pytest.raises(TypeError, match="pairs"):
            await uploader.upload_many([b"no key"], bucket)  # type: ignore[list-item]
        with pytest.raises(ValueError, match="objects_in_flight"):
            await uploader.upload_many([], bucket, objects_in_flight=0)
        with pytest.raises(ValueError, match="unknown extra_args"):
            await uploader.upload_many([], bucket, extra_args={"Nope": 1})


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_for_each_runs_every_item_once_in_flight_at_most_and_reads_lazily(kind: str) -> None:
    """A plain iterable's items are taken by the workers themselves (no stream between): each
    item once, at most ``in_flight`` at a time, and a generator read only as workers free up
    (never the whole of it ahead); an async iterable goes through the stream, the same."""
    taken: list[int] = []
    running = peak = 0
    ahead = 0

    def plain() -> Any:
        for n in range(50):
            taken.append(n)
            yield n

    async def from_async() -> Any:
        for n in plain():
            yield n

    async def handle(n: int) -> None:
        nonlocal running, peak, ahead
        running += 1
        peak = max(peak, running)
        ahead = max(ahead, len(taken) - n)
        await anyio.sleep(0.001 * (n % 3))
        running -= 1
        done.append(n)

    done: list[int] = []
    await for_each(plain() if kind == "plain" else from_async(), handle, in_flight=4)
    assert sorted(done) == list(range(50))
    assert peak == 4
    assert ahead <= 4 + (4 if kind == "async" else 0)  # the stream buffers in_flight more


async def test_each_file_guesses_its_own_content_type(
    s3: Any, bucket: str, tmp_path: pathlib.Path
) -> None:
    """upload_many routes its extra_args once for all the objects, but a file's ContentType
    is still guessed from its own name, and bytes get the store's default."""
    (tmp_path / "page.html").write_bytes(b"<p>hi</p>")
    (tmp_path / "data.json").write_bytes(b"{}")
    items: list[tuple[object, str]] = [
        (tmp_path / "page.html", "page"),
        (b"raw bytes", "raw"),
        (tmp_path / "data.json", "data"),
    ]
    async with asyncup.Uploader(client=s3, config=CONFIG) as uploader:
        summary = await uploader.upload_many(items, bucket, extra_args={"Metadata": {"k": "v"}})
    assert summary.ok, summary.errors
    types = {}
    for key in ("page", "raw", "data"):
        head = await s3.head_object(Bucket=bucket, Key=key)
        types[key] = head["ContentType"]
        assert head["Metadata"] == {"k": "v"}
    assert types["page"] == "text/html"
    assert types["data"] == "application/json"
    assert types["raw"] not in ("text/html", "application/json")  # the store's own default
