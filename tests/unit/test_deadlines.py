"""Many requests' deadlines on one coarse timer (``_concurrency.deadlines``)."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest

from asyncup._concurrency.deadlines import Deadlines

TICK = 0.05


async def test_a_request_past_its_deadline_is_cut_at_most_a_tick_late() -> None:
    deadlines = Deadlines(tick=TICK)
    started = time.monotonic()
    deadline = deadlines.within(0.2)
    with pytest.raises(TimeoutError), deadline:
        await asyncio.sleep(10)
    assert 0.2 <= time.monotonic() - started < 0.2 + TICK + 0.5
    assert deadline.expired


async def test_requests_in_time_are_left_alone_and_the_timer_stops() -> None:
    deadlines = Deadlines(tick=TICK)

    async def request(seconds: float) -> str:
        with deadlines.within(0.5) as deadline:
            await asyncio.sleep(seconds)
        assert not deadline.expired
        return "answered"

    async with anyio.create_task_group() as group:
        for n in range(10):  # ten in flight, across several ticks
            group.start_soon(request, 0.02 * n)
    await asyncio.sleep(3 * TICK)
    assert deadlines._timer is None  # nothing in flight: no timer left on the loop
    with deadlines.within(0.5):  # and a later request arms it again
        assert deadlines._timer is not None


async def test_one_late_request_among_others_is_the_only_one_cut() -> None:
    deadlines = Deadlines(tick=TICK)
    outcomes: dict[str, str] = {}

    async def request(name: str, limit: float | None, seconds: float) -> None:
        try:
            with deadlines.within(limit):
                await asyncio.sleep(seconds)
        except TimeoutError:
            outcomes[name] = "cut"
        else:
            outcomes[name] = "answered"

    async with anyio.create_task_group() as group:
        group.start_soon(request, "slow", 0.1, 5.0)
        group.start_soon(request, "quick", 1.0, 0.3)
        group.start_soon(request, "unbounded", None, 0.4)
    assert outcomes == {"slow": "cut", "quick": "answered", "unbounded": "answered"}


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    deadlines = Deadlines(tick=TICK)
    with anyio.move_on_after(0.1) as outer:
        with deadlines.within(5.0):
            await asyncio.sleep(10)
    assert outer.cancelled_caught
    assert deadlines._due == {}


async def test_an_error_inside_is_raised_as_itself() -> None:
    deadlines = Deadlines(tick=TICK)
    with pytest.raises(KeyError), deadlines.within(5.0):
        raise KeyError("x")
    assert deadlines._due == {}


async def test_a_deadline_and_another_cancellation_at_once_stay_a_cancellation() -> None:
    """As with ``asyncio.timeout``: a task.cancel() from elsewhere that comes with the
    deadline is raised as itself, not taken for the deadline's."""
    deadlines = Deadlines(tick=60)  # expired by hand below, not by its timer
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    deadline = deadlines.within(0.0)
    loop.call_soon(deadlines._check)  # the deadline cancels this task as it waits...
    loop.call_soon(task.cancel)  # ...and so does someone else
    with pytest.raises(asyncio.CancelledError), deadline:
        await asyncio.sleep(10)
    assert deadline.expired
    assert task.uncancel() == 0  # the deadline took its own back
