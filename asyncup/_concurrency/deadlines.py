"""Many requests' deadlines on one coarse timer.

A timer per request (``asyncio.timeout``, anyio's scope) costs the event loop ~10 us per
small request in a long-lived process: a handle made, pushed on the loop's heap and
cancelled each time, and the context manager's own bookkeeping (benchmarks/PROFILE.md).
A request's deadline is seconds long and need not hold to the millisecond, so here one
timer per ``Deadlines``, armed only while a request is in flight, looks every ``tick``
seconds for requests past their deadline and cancels their tasks then, at most a tick late.
The cancellation becomes ``TimeoutError`` as ``asyncio.timeout`` makes it: only when no
other cancellation came meanwhile (``Task.uncancel``), which is then raised as itself.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadlines:
    """The deadlines of the requests in flight, on one event loop at a time."""

    def __init__(self, tick: float = 0.25) -> None:
        self._tick = tick
        self._due: dict[asyncio.Task[object], tuple[Deadline, float]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def within(self, seconds: float | None) -> Deadline:
        """A deadline ``seconds`` from entering it (None: none), for ``with`` around one
        request's awaits in the current task."""
        return Deadline(self, seconds)

    def _add(self, task: asyncio.Task[object], deadline: Deadline, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._due[task] = (deadline, loop.time() + seconds)
        if self._timer is None or self._loop is not loop:
            self._loop = loop
            self._timer = loop.call_later(self._tick, self._check)

    def _check(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        late = [task for task, (_, due) in self._due.items() if due <= now]
        for task in late:
            deadline, _ = self._due.pop(task)
            deadline.expired = True
            task.cancel()
        self._timer = self._loop.call_later(self._tick, self._check) if self._due else None


class Deadline:
    """One request's deadline. ``expired``: it cut the request, which raised TimeoutError."""

    __slots__ = ("_cancelling", "_deadlines", "_seconds", "_task", "expired")

    def __init__(self, deadlines: Deadlines, seconds: float | None) -> None:
        self._deadlines, self._seconds = deadlines, seconds
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self.expired = False

    def __enter__(self) -> Deadline:
        if self._seconds is not None:
            task = self._task = asyncio.current_task()
            assert task is not None
            assert task not in self._deadlines._due, "one deadline at a time per task"
            self._cancelling = task.cancelling()
            self._deadlines._add(task, self, self._seconds)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task = self._task
        if task is None:
            return
        self._deadlines._due.pop(task, None)
        # Our cancellation is taken back whatever came of it; the request's CancelledError
        # is ours to turn into TimeoutError only if nobody else cancelled the task meanwhile.
        if self.expired and task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from error
