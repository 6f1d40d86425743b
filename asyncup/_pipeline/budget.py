"""The budget an Uploader shares among its uploads: bytes of part buffers held at once.

Requests in flight are bounded by an ``anyio.CapacityLimiter``; bytes need a weighted
semaphore, which anyio does not have, so here is a small FIFO one. FIFO, so that one upload
asking for a large part is not starved by many asking for small ones.
"""

from __future__ import annotations

import mmap
from collections import deque
from dataclasses import dataclass, field

import anyio

from .._core.checksums import Buffer

"""A part buffer: a bytearray, or an anonymous mapping from ``mapped_buffer``."""

# Linux: the kernel puts every page in place inside mmap(), which runs without the GIL.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def plain_buffer(size: int) -> bytearray:
    """A part buffer on Python's heap, for clients that may read a body themselves."""
    return bytearray(size)


def mapped_buffer(size: int) -> mmap.mmap:
    """A part buffer of ``size`` bytes whose pages are already in place, for a worker thread
    to make.

    ``bytearray(size)`` zeroes its memory with the GIL held: each new 8 MiB buffer stalled the
    event loop ~2 ms in page faults (40 ms for the 20 buffers of a 160 MiB budget, measured:
    benchmarks/PROFILE.md). An anonymous mapping made with ``MAP_POPULATE`` takes its page
    faults in the kernel while the thread holds no GIL; filling it on the loop is then a
    plain copy.
    """
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE)


@dataclass(slots=True)
class _Waiter:
    amount: int
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


class ByteBudget:
    """At most ``capacity`` bytes acquired at once; a request larger than that waits for
    the whole budget and then takes it all (so one oversized part can still proceed)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._available = capacity
        self._waiters: deque[_Waiter] = deque()
        self._returned = 0  # bytes given back since idle_after last said yes

    @property
    def in_use(self) -> int:
        return self.capacity - self._available

    async def acquire(self, amount: int) -> int:
        """Wait until ``amount`` bytes are free and take them; returns what was taken."""
        amount = min(amount, self.capacity)
        if not self._waiters and self._available >= amount:
            self._available -= amount
            await anyio.lowlevel.checkpoint()
            return amount
        waiter = _Waiter(amount)
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.release(amount)
            else:
                self._waiters.remove(waiter)
                self._wake()
            raise
        return amount

    @property
    def contended(self) -> bool:
        """Whether someone is waiting for bytes."""
        return bool(self._waiters)

    def try_acquire(self, amount: int) -> int | None:
        """Take ``amount`` bytes if they are free now, without waiting; else None."""
        amount = min(amount, self.capacity)
        if self._waiters or self._available < amount:
            return None
        self._available -= amount
        return amount

    def release(self, amount: int) -> None:
        self._available += amount
        if self._available > self.capacity:
            raise RuntimeError("ByteBudget released more than was acquired")
        self._returned += amount
        self._wake()

    def idle_after(self, returned: int) -> bool:
        """Whether nothing is held now and at least ``returned`` bytes were given back since
        this last said yes (then the count starts again)."""
        if self._available < self.capacity or self._returned < returned:
            return False
        self._returned = 0
        return True

    def _wake(self) -> None:
        while self._waiters and self._waiters[0].amount <= self._available:
            waiter = self._waiters.popleft()
            self._available -= waiter.amount
            waiter.granted = True
            waiter.event.set()


class Lease:
    """One upload's share of a ``ByteBudget``: what it holds is all given back at the end,
    whatever happened to the buffers in between (``release_all`` in a ``finally``)."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.held = 0

    @property
    def capacity(self) -> int:
        return self._budget.capacity

    @property
    def contended(self) -> bool:
        return self._budget.contended

    async def acquire(self, amount: int) -> int:
        taken = await self._budget.acquire(amount)
        self.held += taken
        return taken

    def try_acquire(self, amount: int) -> int | None:
        taken = self._budget.try_acquire(amount)
        if taken is not None:
            self.held += taken
        return taken

    def release(self, amount: int) -> None:
        self.held -= amount
        self._budget.release(amount)

    def release_all(self) -> None:
        if self.held:
            self.release(self.held)


class BufferPool:
    """Part buffers of one upload, reused from part to part instead of reallocated.

    A pooled buffer keeps its share of the budget (it is memory all the same), so the
    budget bounds what is allocated, not only what is in use.
    """

    def __init__(self) -> None:
        self._free: list[tuple[Buffer, int]] = []

    def take(self, size: int, lease: Lease) -> tuple[Buffer, int] | None:
        """A free buffer of ``size`` bytes and its reservation, if the pool has one; buffers
        of another size (the part size grew) are dropped and their budget given back."""
        while self._free:
            buffer, reserved = self._free.pop()
            if len(buffer) == size:
                return buffer, reserved
            lease.release(reserved)
        return None

    def give(self, buffer: Buffer, reserved: int) -> None:
        self._free.append((buffer, reserved))

    def clear(self, lease: Lease) -> None:
        while self._free:
            lease.release(self._free.pop()[1])
