"""The byte budget: FIFO, cancellation-safe, and charged for pooled buffers too."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from asyncup import TransferConfig
from asyncup._budget import ByteBudget, Lease
from asyncup._job import Job
from asyncup._params import route


async def fill(view: memoryview) -> int:
    view[:] = b"x" * len(view)
    return len(view)


def make_job(budget: ByteBudget) -> Job:
    s3: Any = None
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
