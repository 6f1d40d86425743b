"""The bandwidth cap: bytes per second for everything an Uploader sends, together.

A generic cell rate algorithm: each write reserves its bytes on a virtual clock that
advances by ``bytes / rate``, and waits only when that clock runs more than one second
(the burst) ahead of real time. Reservations are taken in order, so concurrent uploads
share the rate fairly, and a part's retry pays for its bytes again.
"""

from __future__ import annotations

import anyio


class Pacer:
    def __init__(self, rate: int) -> None:
        if rate < 1:
            raise ValueError("rate must be >= 1 byte per second")
        self.rate = rate
        self._burst = 1.0  # seconds' worth of bytes that may go at once
        self._clock = 0.0

    async def take(self, amount: int) -> None:
        """Wait until ``amount`` more bytes may be sent."""
        now = anyio.current_time()
        start = max(self._clock, now)
        self._clock = start + amount / self.rate
        delay = start - now - self._burst
        if delay > 0:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()
