"""The byte budget: FIFO, cancellation-safe, and charged for pooled buffers too."""

from __future__ import annotations

import mmap
import platform
import threading
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

import asyncup
import asyncup._pipeline.job
import asyncup._pipeline.memory
from asyncup import TransferConfig
from asyncup._core.params import route
from asyncup._core.verify import StoreChecks
from asyncup._pipeline.budget import ByteBudget, Lease, mapped_buffer
from asyncup._pipeline.job import Job
from asyncup._s3.client import open_client
from asyncup._s3.payloads import PartPayload
from asyncup._s3.threaded import ThreadedSession
from tests.conftest import MiB, assert_object, client_config, random_bytes
from tests.faultproxy import FaultProxy
from tests.pipeline.test_many import LiveBuffers


async def fill(view: memoryview) -> int:
    view[:] = b"x" * len(view)
    return len(view)


def make_job(budget: ByteBudget) -> Job:
    s3: Any = SimpleNamespace(store=lambda algorithm: StoreChecks())
    return Job(
        s3=s3,
        bucket="bucket",
        key="key",
        config=TransferConfig(),
        args=route(None, None),
        limiter=anyio.CapacityLimiter(1),
        lease=Lease(budget),
    )


async def test_a_pooled_buffer_stays_charged_until_reading_is_done() -> None:
    budget = ByteBudget(10)
    job = make_job(budget)
    part = await job.read_part(fill, 1, 6, 6)
    job.recycle(part)  # back in the pool for the next part: still memory, still charged
    assert budget.in_use == 6
    assert budget.try_acquire(6) is None
    again = await job.read_part(fill, 2, 6, 6)
    assert again.buffer is part.buffer  # reused, not reallocated
    assert budget.in_use == 6
    job.recycle(again)
    job.done_reading()
    assert budget.in_use == 0


async def test_a_recycled_buffer_is_given_up_when_another_upload_waits() -> None:
    budget = ByteBudget(10)
    job = make_job(budget)
    part = await job.read_part(fill, 1, 6, 6)
    other = Lease(budget)
    async with anyio.create_task_group() as tg:
        tg.start_soon(other.acquire, 6)
        await anyio.wait_all_tasks_blocked()
        assert budget.contended
        job.recycle(part)
    assert other.held == 6
    assert job.lease.held == 0


async def test_waiters_are_served_in_order_and_cancelled_waits_give_back() -> None:
    budget = ByteBudget(10)
    first = await budget.acquire(8)
    order: list[str] = []

    async def want(name: str, amount: int) -> None:
        await budget.acquire(amount)
        order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(want, "big", 9)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(want, "small", 1)  # fits now, but waits behind "big": FIFO
        await anyio.wait_all_tasks_blocked()
        assert order == []
        budget.release(first)
        await anyio.wait_all_tasks_blocked()
        assert order == ["big", "small"]
        budget.release(10)
    with anyio.move_on_after(0.05):
        await budget.acquire(10)
        await budget.acquire(1)  # cancelled while waiting
    assert budget.in_use == 10
    budget.release(10)
    assert budget.in_use == 0


async def test_a_request_larger_than_the_budget_takes_all_of_it() -> None:
    budget = ByteBudget(10)
    assert await budget.acquire(25) == 10
    with pytest.raises(RuntimeError, match="more than was acquired"):
        budget.release(11)


async def test_a_mapped_part_buffer_is_made_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On asyncup's own clients (``Job.mapped_buffers``) a new part buffer is an anonymous
    mapping made in a worker thread, so its page faults do not stall the event loop; pooled,
    it is reused; a short part is sent from that buffer cut down to its size (no copy), and
    the rest of its budget goes back at once."""
    made: list[str] = []

    def spy(size: int) -> mmap.mmap:
        made.append(threading.current_thread().name)
        return mapped_buffer(size)

    monkeypatch.setattr(asyncup._pipeline.job, "mapped_buffer", spy)
    job = make_job(ByteBudget(100))
    job.mapped_buffers = True
    part = await job.read_part(fill, 1, 6, 6)
    assert isinstance(part.buffer, mmap.mmap)
    assert part.body is part.buffer
    assert bytes(part.body) == b"xxxxxx"
    job.recycle(part)

    async def three(view: memoryview) -> int:
        view[:3] = b"abc"
        return 3

    short = await job.read_part(three, 2, 6, 6)
    assert short.buffer is part.buffer  # from the pool: no new mapping ...
    assert short.body is short.buffer  # ... and no copy: cut down to the part's size
    assert len(short.body) == 3
    assert bytes(short.body) == b"abc"
    assert short.reserved == 3
    assert job.lease.held == 3
    assert len(made) == 1
    assert made[0] != threading.current_thread().name


async def test_a_stream_through_asyncups_own_client_is_sent_from_mapped_buffers(
    endpoint: str, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end on both servers: a stream's parts (the last one short) and a bytes
    source's, through a client asyncup made, go out from mapped buffers and arrive whole."""
    made: list[int] = []

    def spy(size: int) -> mmap.mmap:
        made.append(size)
        return mapped_buffer(size)

    monkeypatch.setattr(asyncup._pipeline.job, "mapped_buffer", spy)
    part = 5 * MiB
    data = random_bytes(3 * part + 12345, seed=5)
    config = TransferConfig(part_size=part, multipart_threshold=part, concurrency=2)

    async def chunks() -> Any:
        for start in range(0, len(data), 1 << 20):
            yield data[start : start + (1 << 20)]

    async with open_client(
        endpoint, config, region_name="us-east-1", client_config=client_config()
    ) as client:
        sent: list[type] = []
        send = ThreadedSession.send

        async def record(session: ThreadedSession, request: Any) -> Any:
            # What the HTTP session is handed, by botocore or by the lean path alike.
            if "partNumber=" in request.url and "partNumber=10000" not in request.url:
                sent.append(type(request.body))  # not the integrity probe's one byte
            return await send(session, request)

        send_small = ThreadedSession.send_small

        async def record_small(
            session: ThreadedSession, key: Any, url: str, *args: Any, **kwargs: Any
        ) -> Any:
            # The lean path's own connections, for parts under 1 MiB (the short last ones).
            if "partNumber=" in url and "partNumber=10000" not in url:
                sent.append(PartPayload if isinstance(args[-1], memoryview) else type(args[-1]))
            return await send_small(session, key, url, *args, **kwargs)

        monkeypatch.setattr(ThreadedSession, "send", record)
        monkeypatch.setattr(ThreadedSession, "send_small", record_small)
        await asyncup.upload(chunks(), bucket, "stream", client=client, config=config)
        await asyncup.upload(data, bucket, "bytes", client=client, config=config)
    assert made
    assert set(made) == {part}
    assert sent == [PartPayload] * 8  # views of the buffers, never read by botocore as files
    await assert_object(s3, bucket, "stream", data, part)
    await assert_object(s3, bucket, "bytes", data, part)


async def test_one_upload_holds_at_most_concurrency_plus_queue_plus_one_buffers(
    proxy: FaultProxy, proxied: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-upload bound on its own: with an Uploader budget far above it (100 parts) and
    a slow store, a stream holds at most concurrency + queue_size + 1 part buffers (being
    sent, waiting in the queue, being filled), not as many as the budget allows."""
    part = 5 * MiB
    config = TransferConfig(
        part_size=part, multipart_threshold=part, concurrency=2, queue_size=1,
        max_buffer_bytes=100 * part,
    )  # fmt: skip
    proxy.delay("UploadPart", 0.3)
    live = LiveBuffers(monkeypatch)
    data = random_bytes(12 * part, seed=12)

    async def stream() -> Any:
        for start in range(0, len(data), MiB):
            yield data[start : start + MiB]

    await asyncup.upload(stream(), bucket, "obj", client=proxied, config=config)
    assert 3 * part <= live.peak <= (2 + 1 + 1) * part


async def test_idle_after_says_yes_once_nothing_is_held_and_enough_went_back() -> None:
    budget = ByteBudget(10)
    assert not budget.idle_after(6)  # nothing went through yet
    taken = await budget.acquire(4)
    budget.release(taken)
    assert not budget.idle_after(6)  # 4 bytes back, not 6
    first, second = await budget.acquire(4), await budget.acquire(4)
    budget.release(first)
    assert not budget.idle_after(6)  # 8 back, but 4 still held
    budget.release(second)
    assert budget.idle_after(6)
    assert not budget.idle_after(6)  # the count starts again


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_freed_memory_is_given_back_at_the_end_of_a_burst(
    endpoint: str, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Uploader trims malloc's heap when its last part buffer comes back (after enough
    bytes went through), not while another upload still holds one."""
    trims: list[int] = []
    real = asyncup._pipeline.memory.give_back

    async def give_back() -> None:
        trims.append(budget_in_use())
        await real()

    monkeypatch.setattr(asyncup._pipeline.memory, "give_back", give_back)
    monkeypatch.setattr(asyncup._pipeline.memory, "TRIM_AFTER", MiB)
    part = 5 * MiB
    config = TransferConfig(part_size=part, multipart_threshold=part, concurrency=2)
    held = anyio.Event()
    data = random_bytes(part + MiB, seed=3)

    async def slow_stream() -> Any:
        yield data[:MiB]
        await held.wait()  # holds its part buffer, half filled, until released
        yield data[MiB:]

    async with asyncup.Uploader(endpoint_url=endpoint, config=config) as up:

        def budget_in_use() -> int:
            return up._budget.in_use

        async with anyio.create_task_group() as tg:
            tg.start_soon(up.upload, slow_stream(), bucket, "slow")
            await up.upload(data, bucket, "quick")
            assert trims == []  # "slow" still holds a buffer: not the end of the burst
            held.set()
    assert trims == [0]  # once, when "slow" ended and the budget was all back
    await assert_object(s3, bucket, "slow", data, part)


def test_the_trim_is_real_on_glibc() -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    trim = asyncup._pipeline.memory.trimmer()
    assert trim is not None
    assert trim() in (0, 1)
