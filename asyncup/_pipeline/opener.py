"""Files opened off the event loop, those of many uploads in one thread hop (``Opener``);
a small one read whole and closed in the same hop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import stat as stat_module
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Opened = tuple[int, os.stat_result, bytearray | None]
"""An open file's descriptor and stat, or -1, its stat and its contents (read and closed)."""

STALLED = 0.05
"""Seconds after which a hop still out no longer holds up the files asked for since (a file
on a stalled network mount must not stop every other upload's)."""


class Opener:
    """Opens the files of many uploads: those asked for while a thread hop is out go together
    in the next one.

    A worker thread's hand-off and wake-up cost the event loop more than opening, reading and
    closing a 64 KiB file. A hop belongs to no upload: it runs on the Opener's own thread
    (``_Thread``: a queue, and a callback into the loop that hands its answers out; ~30 us
    of CPU less per hop than the loop's executor with its futures, measured:
    benchmarks/RESULTS.md). An upload cancelled meanwhile (by anyio, or natively, as a web
    server cancels the task of a request whose client left) leaves at once and costs the
    others nothing; the next hop closes what was opened for it. A hop out for ``STALLED``
    seconds no longer holds up the next one, which goes to the event loop's executor while
    the stalled one holds the Opener's thread.
    """

    def __init__(self) -> None:
        self._asked: list[_Ask] = []
        self._unclaimed: list[int] = []
        """Descriptors opened for uploads gone meanwhile: the next hop closes them."""
        self._out: dict[object, float] = {}
        """The hops out, and when each left."""
        self._thread = _Thread()
        self._thread_hop: object = None
        """The hop out on ``_thread``, if any."""

    async def open(self, path: str, read_below: int) -> Opened:
        loop = asyncio.get_running_loop()
        ask = _Ask(path, read_below, loop.create_future())
        self._asked.append(ask)
        self._serve(loop)
        try:
            outcome = await ask.answer
        except BaseException:  # cancelled: the file is closed if it was opened
            if ask in self._asked:
                self._asked.remove(ask)
            elif ask.answer.done() and not ask.answer.cancelled():  # as the task woke up
                self._unclaim(ask.answer.result())
                self._serve(loop)
            raise
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        """A hop for what waits, unless a hop out (and not stalled) will be back for it."""
        if not (self._asked or self._unclaimed):
            return
        now = loop.time()
        if any(now - left < STALLED for left in self._out.values()):
            return
        batch, self._asked = self._asked, []
        unclaimed, self._unclaimed = self._unclaimed, []
        asked = [(ask.path, ask.below) for ask in batch]
        hop = object()
        self._out[hop] = now
        stalled = loop.call_at(now + STALLED, self._serve, loop)
        back = functools.partial(self._back, hop, batch, loop, stalled)
        if self._thread_hop not in self._out:  # the Opener's thread is free
            self._thread_hop = hop
            self._thread.submit(functools.partial(_hop, loop, back, asked, unclaimed))
            return
        # Its thread is held up by a stalled hop: the event loop's executor takes this one.
        work = loop.run_in_executor(None, _open_all, asked, unclaimed)
        work.add_done_callback(functools.partial(_executor_done, back, len(batch)))

    def _back(
        self,
        hop: object,
        batch: list[_Ask],
        loop: asyncio.AbstractEventLoop,
        stalled: asyncio.TimerHandle,
        outcomes: list[Opened | BaseException],
    ) -> None:
        stalled.cancel()
        del self._out[hop]
        for ask, outcome in zip(batch, outcomes, strict=True):
            if ask.answer.done():  # cancelled with its upload meanwhile
                self._unclaim(outcome)
            else:
                ask.answer.set_result(outcome)
        self._serve(loop)

    def _unclaim(self, outcome: Opened | BaseException) -> None:
        if (fd := _kept_open(outcome)) is not None:
            self._unclaimed.append(fd)


IDLE = 1.0
"""Seconds after which the Opener's thread, given nothing to do, ends (the next hop starts
another): an Opener needs no closing, and an idle Uploader keeps no thread."""


class _Thread:
    """One worker thread for an Opener's hops, started when a hop comes and none runs."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.put(job)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="asyncup-opener", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE)
            except queue.Empty:
                with self._lock:  # a job put meanwhile is seen here, or starts a new thread
                    if self._jobs.empty():
                        self._running = False
                        return
                continue
            job()


def _hop(
    loop: asyncio.AbstractEventLoop,
    back: Callable[[list[Opened | BaseException]], None],
    asked: list[tuple[str, int]],
    unclaimed: list[int],
) -> None:
    """A hop on the Opener's thread: the files opened, the answers handed to the loop."""
    outcomes: list[Opened | BaseException]
    try:
        outcomes = _open_all(asked, unclaimed)
    except BaseException as exc:  # not a file's failure (those are its answer): the hop's
        outcomes = _failed(exc, len(asked))
    try:
        loop.call_soon_threadsafe(back, outcomes)
    except RuntimeError:  # the loop is closed: nobody will take what was opened
        for outcome in outcomes:
            if (fd := _kept_open(outcome)) is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _executor_done(
    back: Callable[[list[Opened | BaseException]], None], count: int, work: asyncio.Future[Any]
) -> None:
    outcomes: list[Opened | BaseException]
    try:
        outcomes = work.result()
    except BaseException as exc:  # the hop itself failed (its executor was shut down)
        outcomes = _failed(exc, count)
    back(outcomes)


def _kept_open(outcome: Opened | BaseException) -> int | None:
    """The descriptor a hop's outcome holds open (a file not read whole), if any."""
    if isinstance(outcome, BaseException) or outcome[0] < 0:
        return None
    return outcome[0]


def _failed(exc: BaseException, count: int) -> list[Opened | BaseException]:
    """What each of ``count`` files gets when their hop itself failed."""
    return [RuntimeError(f"files could not be opened: {exc!r}")] * count


@dataclass(eq=False, slots=True)
class _Ask:
    """One file asked for: opened whole below ``below`` bytes; ``answer`` takes the outcome."""

    path: str
    below: int
    answer: asyncio.Future[Opened | BaseException]


def _open_all(asked: list[tuple[str, int]], unclaimed: list[int]) -> list[Opened | BaseException]:
    for fd in unclaimed:
        with contextlib.suppress(OSError):
            os.close(fd)
    outcomes: list[Opened | BaseException] = []
    for path, read_below in asked:
        try:
            outcomes.append(_open_and_stat(path, read_below))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def _open_and_stat(path: str, read_below: int) -> Opened:
    fd = os.open(path, os.O_RDONLY)
    try:
        stat = os.fstat(fd)
        if not (stat_module.S_ISREG(stat.st_mode) and stat.st_size < read_below):
            return fd, stat, None
        # A byte more than its size: a file that grew since fstat says so.
        contents = bytearray(stat.st_size + 1)
        del contents[pread_full(fd, memoryview(contents), 0) :]
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return -1, stat, contents


def pread_full(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from the file's ``offset`` on, unless the file ends first; the bytes
    read."""
    filled = 0
    while filled < len(view):
        n = os.preadv(fd, [view[filled:]], offset + filled)
        if n == 0:
            break
        filled += n
    return filled
