"""The small-object path and the client's own cost: digests on the event loop below a size,
one read per object, the User-Agent asyncup's own clients send (built once, not per request),
and the endpoint data their session keeps (S3's only)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import botocore.exceptions
import botocore.loaders
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

import asyncup
from asyncup._core.checksums import CRCS, HASHES, INLINE_DIGEST_MAX, digests_inline
from asyncup._pipeline import job as job_module
from asyncup._pipeline import opener as opener_module
from asyncup._s3.models import _ENDPOINT_SERVICES, _LeanFileLoader
from tests.conftest import assert_object, random_bytes


def test_every_algorithm_has_an_inline_limit_and_parts_never_go_inline() -> None:
    for algorithm in [*CRCS, *HASHES, None]:
        limit = INLINE_DIGEST_MAX[algorithm]
        assert digests_inline(algorithm, limit)
        assert not digests_inline(algorithm, limit + 1)
        assert not digests_inline(algorithm, 5 * 1024 * 1024)  # S3's smallest part
    assert digests_inline("CRC32", 64 * 1024)
    assert not digests_inline("SOMETHING-ELSE", 1)


class GrowingFile(io.RawIOBase):
    """A seekable file that says it holds ``size`` bytes and then reads ``extra`` more."""

    def __init__(self, data: bytes, extra: int) -> None:
        self._data = data + b"x" * extra if extra >= 0 else data[:extra]
        self._size = len(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._size if whence == os.SEEK_END else offset
        return self._pos

    def readinto(self, view: Any) -> int:
        chunk = self._data[self._pos : self._pos + len(view)]
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


@pytest.mark.parametrize("extra", [1, 4096, -1])
async def test_a_small_source_that_is_not_its_size_is_refused(
    s3: Any, bucket: str, extra: int
) -> None:
    data = random_bytes(64 * 1024)
    with pytest.raises(asyncup.SourceChangedError):
        await asyncup.upload(GrowingFile(data, extra), bucket, "small", client=s3)
    listing = await s3.list_objects_v2(Bucket=bucket)
    assert listing.get("KeyCount", 0) == 0


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA256", None])
async def test_small_objects_digested_inline_are_whole(
    s3: Any, bucket: str, endpoint: str, algorithm: str | None
) -> None:
    config = asyncup.TransferConfig(checksum_algorithm=algorithm)
    sizes = [0, 1, 16 * 1024, 64 * 1024, 200 * 1024]
    blobs = {f"small/{size}": random_bytes(size) for size in sizes}
    async with asyncup.Uploader(endpoint_url=endpoint, config=config) as up:
        summary = await up.upload_many(list((b, k) for k, b in blobs.items()), bucket)
    assert summary.ok, summary.errors
    for key, blob in blobs.items():
        await assert_object(s3, bucket, key, blob, None)


async def _user_agent(endpoint: str, bucket: str, **kwargs: Any) -> str:
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.headers["User-Agent"])

    async with asyncup.Uploader(endpoint_url=endpoint, **kwargs) as up:
        up.client.meta.events.register("before-send.s3.PutObject", capture)
        await up.upload(b"hello", bucket, "ua")
    ua = seen[-1]
    return ua.decode() if isinstance(ua, bytes) else str(ua)


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_asyncups_own_client_sends_a_user_agent_built_once(
    endpoint: str, bucket: str
) -> None:
    ua = await _user_agent(endpoint, bucket)
    assert ua.startswith("asyncup/")
    assert "botocore/" in ua
    extra = await _user_agent(endpoint, bucket, client_config=AioConfig(user_agent_extra="myapp/2"))
    assert extra.startswith("asyncup/")
    assert extra.endswith(" myapp/2")
    app = await _user_agent(endpoint, bucket, client_config=AioConfig(user_agent_appid="myapp"))
    assert "app/myapp" in app  # an app id keeps botocore's own header, which carries it
    own = await _user_agent(endpoint, bucket, client_config=AioConfig(user_agent="mine/1"))
    assert own.startswith("mine/1")


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-west-1", "us-gov-west-1", "cn-north-1", "aws-global"]
)
async def test_asyncups_own_client_resolves_s3_as_botocore_does(region: str) -> None:
    """asyncup's session keeps only S3's (and the credential services') legacy endpoint data:
    the client it makes is the one botocore makes with all of it."""
    async with (
        asyncup.Uploader(region_name=region) as up,
        get_session().create_client("s3", region_name=region) as plain,
    ):
        ours = up.client.meta
        assert ours.endpoint_url == plain.meta.endpoint_url
        assert ours.region_name == plain.meta.region_name
        assert ours.partition == plain.meta.partition
        params = {"Bucket": "bucket", "Key": "key"}
        url = await up.client.generate_presigned_url("get_object", Params=params)
        expected = await plain.generate_presigned_url("get_object", Params=params)
        assert url.split("?")[0] == expected.split("?")[0]


def test_the_lean_endpoint_data_keeps_s3_whole() -> None:
    path = os.path.join(botocore.loaders.Loader.BUILTIN_DATA_PATH, "endpoints")
    whole = botocore.loaders.JSONFileLoader().load_file(path)
    lean = _LeanFileLoader().load_file(path)
    assert [p["partition"] for p in lean["partitions"]] == [
        p["partition"] for p in whole["partitions"]
    ]
    for kept, full in zip(lean["partitions"], whole["partitions"], strict=True):
        assert set(kept["services"]) <= set(_ENDPOINT_SERVICES)
        assert kept["services"].get("s3") == full["services"].get("s3")
        assert {k: v for k, v in kept.items() if k != "services"} == {
            k: v for k, v in full.items() if k != "services"
        }


async def test_a_client_is_made_without_listing_every_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """botocore lists every service directory to check that "s3" is one; asyncup's session
    does not, and a service that is not there still fails."""
    listed: list[str] = []
    listing = botocore.loaders.Loader.list_available_services

    def counted(self: Any, type_name: str) -> Any:
        listed.append(type_name)
        return listing(self, type_name)

    monkeypatch.setattr(botocore.loaders.Loader, "list_available_services", counted)
    async with asyncup.Uploader(region_name="us-east-1") as up:
        assert up.client.meta.service_model.service_name == "s3"
        assert listed == []
        session_loader = up.client._loader
        with pytest.raises(botocore.exceptions.DataNotFoundError):
            session_loader.load_service_model("no-such-service", "service-2")
        assert "s3" in session_loader.list_available_services("service-2")
    assert listed == ["service-2"]


def test_anyios_backend_is_imported_with_the_pipeline_not_in_the_first_upload() -> None:
    probe = (
        "import sys, asyncup; asyncup.Uploader; print('anyio._backends._asyncio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("server", ["moto"], indirect=True)
@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (64 * 1024, ["_open_all"]),  # opened, stat'ed, read and closed at once
        (2 * 1024 * 1024, ["_open_all", "_pread_and_close"]),  # above READ_AHEAD
    ],
)
async def test_a_small_file_takes_one_thread_hop_and_is_closed(
    s3: Any,
    bucket: str,
    endpoint: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
    expected: list[str],
) -> None:
    """A file below 1 MiB: one thread hop, the file closed after it (issue 17); a larger
    one below the multipart threshold: open and stat in one hop, read and close in another,
    not one hop per call."""
    path = tmp_path / "small.bin"
    data = random_bytes(size)
    path.write_bytes(data)
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(func, "__module__", None) in ("posix", "asyncup._pipeline.sources"):
            hops.append(func.__name__)
        return await run_sync(func, *args, **kwargs)

    open_all = opener_module._open_all

    def opened(*args: Any) -> Any:  # the Opener's hop, in the event loop's executor
        hops.append("_open_all")
        return open_all(*args)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    monkeypatch.setattr(opener_module, "_open_all", opened)
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        hops.clear()  # the client's own set-up is not the file's
        await up.upload(path, bucket, "small")
        assert str(path) not in open_files()
    assert hops == expected
    await assert_object(s3, bucket, "small", data, None)


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_bytes_are_sent_as_they_are_a_mutable_buffer_is_copied_first(
    s3: Any, bucket: str, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``bytes`` cannot change: PutObject sends them without a copy (and without taking
    from the memory budget); a bytearray or a memoryview is copied before it is sent."""
    copies: list[int] = []
    plain_buffer = job_module.plain_buffer

    def counted(size: int) -> bytearray:
        copies.append(size)
        return plain_buffer(size)

    monkeypatch.setattr(job_module, "plain_buffer", counted)
    data = random_bytes(64 * 1024)
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        await up.upload(data, bucket, "bytes")
        assert copies == []
        await up.upload(bytearray(data), bucket, "bytearray")
        await up.upload(memoryview(data), bucket, "view")
        assert copies == [len(data) + 1] * 2
    for key in ("bytes", "bytearray", "view"):
        await assert_object(s3, bucket, key, data, None)


def hold_first_hop(
    monkeypatch: pytest.MonkeyPatch, asked: Callable[[], int], until: int, linger: float = 0
) -> list[int]:
    """Hold the first open's thread hop until ``asked()`` files wait for the next one, and
    the second ``linger`` seconds; return the number of files each hop opens."""
    hops: list[int] = []
    open_all = opener_module._open_all

    def held(batch: list[tuple[str, int]], unclaimed: list[int]) -> Any:
        hops.append(len(batch))
        deadline = time.monotonic() + 10
        while len(hops) == 1 and asked() < until and time.monotonic() < deadline:
            time.sleep(0.005)
        if len(hops) == 2:
            time.sleep(linger)
        return open_all(batch, unclaimed)

    monkeypatch.setattr(opener_module, "_open_all", held)
    monkeypatch.setattr(opener_module, "STALLED", 60)  # held on purpose: not stalled
    return hops


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_files_asked_for_while_a_hop_is_out_share_the_next_hop(
    s3: Any, bucket: str, endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """upload_many's files are opened (and read) together: those asked for while a thread
    hop is out go in one more hop, not one each; a file that cannot be opened fails alone."""
    data = {f"f{i}": random_bytes(1000 + i) for i in range(10)}
    for name, body in data.items():
        (tmp_path / name).write_bytes(body)
    items = [(tmp_path / name, name) for name in data] + [(tmp_path / "missing", "missing")]
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        hops = hold_first_hop(monkeypatch, lambda: len(up._opener._asked), 10)
        summary = await up.upload_many(items, bucket, objects_in_flight=11)
    assert hops == [1, 10]
    assert [key for key, _ in summary.errors] == ["missing"]
    assert isinstance(summary.errors[0][1].__cause__, FileNotFoundError)
    for name, body in data.items():
        await assert_object(s3, bucket, name, body, None)


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_a_cancelled_upload_many_leaves_no_file_open(
    s3: Any, bucket: str, endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uploads cancelled while their files are being opened leave at once; the files opened
    for them (above 1 MiB, kept open to be read later) are closed by the next hop. The
    first hop is held until three more files are asked for, the second (theirs) is held
    past the cancellation."""
    paths = [tmp_path / f"f{i}" for i in range(4)]
    for path in paths:
        path.write_bytes(random_bytes(2 * 1024 * 1024))
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        hops = hold_first_hop(monkeypatch, lambda: len(up._opener._asked), 3, linger=1)
        with anyio.move_on_after(0.5) as scope:
            await up.upload_many([(p, p.name) for p in paths], bucket, objects_in_flight=4)
        assert scope.cancelled_caught
        with anyio.fail_after(5):
            while len(hops) < 3 or set(map(str, paths)) & set(open_files()):  # noqa: ASYNC110
                await anyio.sleep(0.01)
    assert hops == [1, 3, 0]  # the last hop only closed the three files nobody took


async def test_an_open_cancelled_natively_costs_the_others_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A web server cancels the task of a request whose client left (``task.cancel()``, not
    anyio's cancellation): the uploads waiting for the same hop still get their files, and
    the file opened for the cancelled one is closed by the next hop."""
    paths = [tmp_path / f"f{i}" for i in range(4)]
    for path in paths:
        path.write_bytes(b"x" * (2 * 1024 * 1024))  # above read_below: they stay open
    gates = [threading.Event(), threading.Event()]
    hops: list[int] = []
    open_all = opener_module._open_all

    def held(asked: list[tuple[str, int]], unclaimed: list[int]) -> Any:
        hops.append(len(asked))
        if len(hops) <= len(gates):
            gates[len(hops) - 1].wait(10)
        return open_all(asked, unclaimed)

    monkeypatch.setattr(opener_module, "_open_all", held)
    monkeypatch.setattr(opener_module, "STALLED", 60)
    opener = opener_module.Opener()
    opens = [asyncio.ensure_future(opener.open(str(path), 1024 * 1024)) for path in paths]
    await anyio.wait_all_tasks_blocked()
    gates[0].set()  # the first file's hop comes back; the next three go in the second
    while hops != [1, 3]:  # noqa: ASYNC110 (a thread's doing: no event to wait for)
        await anyio.sleep(0.01)
    opens[1].cancel()
    gates[1].set()
    done = await asyncio.gather(*opens, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    opened = [outcome for outcome in done if not isinstance(outcome, BaseException)]
    assert len(opened) == 3
    with anyio.fail_after(5):
        while str(paths[1]) in open_files():  # noqa: ASYNC110 (as above)
            await anyio.sleep(0.01)
    assert hops == [1, 3, 0]  # the last one only closed the file nobody took
    for fd, _, _ in opened:
        os.close(fd)


async def test_a_file_that_hangs_opening_holds_up_no_other_upload(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose open hangs (a stalled network mount) keeps its own upload waiting, not
    the others: a hop out for ``STALLED`` seconds no longer holds up the files asked since."""
    stuck, other = tmp_path / "stuck", tmp_path / "other"
    stuck.write_bytes(b"s")
    other.write_bytes(b"o")
    release = threading.Event()
    open_all = opener_module._open_all

    def hanging(asked: list[tuple[str, int]], unclaimed: list[int]) -> Any:
        if any(path == str(stuck) for path, _ in asked):
            release.wait(10)
        return open_all(asked, unclaimed)

    monkeypatch.setattr(opener_module, "_open_all", hanging)
    opener = opener_module.Opener()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(opener.open, str(stuck), 1024)
            await anyio.wait_all_tasks_blocked()  # its hop is out
            with anyio.fail_after(5):
                fd, _, contents = await opener.open(str(other), 1024)
            assert (fd, contents) == (-1, bytearray(b"o"))
            assert not release.is_set()  # the stuck file's hop is still out
            release.set()
    finally:
        release.set()


async def test_hops_run_on_the_openers_own_thread_which_ends_when_idle(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hops of an Opener run on one thread of its own (no executor futures), which ends
    once idle for ``IDLE`` seconds; the next hop starts another."""
    monkeypatch.setattr(opener_module, "IDLE", 0.2)
    threads: list[threading.Thread] = []
    open_all = opener_module._open_all

    def seen(asked: list[tuple[str, int]], unclaimed: list[int]) -> Any:
        threads.append(threading.current_thread())
        return open_all(asked, unclaimed)

    monkeypatch.setattr(opener_module, "_open_all", seen)
    path = tmp_path / "f"
    path.write_bytes(b"x")
    opener = opener_module.Opener()
    for _ in range(3):
        assert (await opener.open(str(path), 1024))[2] == bytearray(b"x")
    assert len(set(threads)) == 1
    assert threads[0].name == "asyncup-opener"
    with anyio.fail_after(5):
        while threads[0].is_alive():  # noqa: ASYNC110 (a thread's doing: no event to wait for)
            await anyio.sleep(0.05)
    await opener.open(str(path), 1024)
    assert threads[-1] is not threads[0]
    assert threads[-1].name == "asyncup-opener"


def test_a_hop_back_to_a_closed_loop_closes_what_it_opened(tmp_path: Any) -> None:
    path = tmp_path / "kept-open"  # not read whole (read_below 0): its descriptor is kept
    path.write_bytes(b"x" * 10)
    loop = asyncio.new_event_loop()
    loop.close()
    opener_module._hop(loop, lambda outcomes: None, [(str(path), 0)], [])
    assert str(path) not in open_files()


def open_files() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


@pytest.mark.parametrize("server", ["moto"], indirect=True)
@pytest.mark.parametrize("change", [b"more", None], ids=["grew", "shrank"])
async def test_a_small_file_that_changes_after_its_stat_is_refused(
    s3: Any, bucket: str, endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
    change: bytes | None,
) -> None:  # fmt: skip
    """The one hop reads a byte more than the file's size: a file that grew (or shrank)
    between its stat and its read is refused, nothing written."""
    path = tmp_path / "changing.bin"
    path.write_bytes(random_bytes(64 * 1024))
    fstat = os.fstat

    def stat_then_change(fd: int) -> os.stat_result:
        stat = fstat(fd)
        if os.readlink(f"/proc/self/fd/{fd}") == str(path):
            if change is None:
                os.truncate(path, 1000)
            else:
                with open(path, "ab") as grow:
                    grow.write(change)
        return stat

    monkeypatch.setattr(os, "fstat", stat_then_change)
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        with pytest.raises(asyncup.SourceChangedError):
            await up.upload(path, bucket, "changing")
    listing = await s3.list_objects_v2(Bucket=bucket)
    assert listing.get("KeyCount", 0) == 0
