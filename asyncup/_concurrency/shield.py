"""Clean-up that must finish even when the caller is cancelled.

``anyio.CancelScope(shield=True)`` stops anyio's own cancellation, but not a native
``task.cancel()``, which is what asyncio.timeout, wait_for and aiohttp's handler
cancellation use. ``shielded`` runs the work in an inner task, waits for it whatever
cancellations arrive (the inner task is always awaited to its end: no stray task), bounds it
in time, and hands the cancellation back so the caller re-raises it after its clean-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


async def shielded(
    work: Callable[[], Awaitable[T]], limit: float
) -> tuple[T, BaseException | None]:
    """Run ``work()`` to its end, at most ``limit`` seconds (else ``TimeoutError``).

    Returns its result and the cancellation that arrived meanwhile (None if none); the
    caller must re-raise that cancellation once it is done. If ``work`` raises while a
    cancellation is pending, the cancellation is raised instead.
    """

    async def bounded() -> T:
        with anyio.fail_after(limit):
            return await work()

    cancel: BaseException | None = None
    with anyio.CancelScope(shield=True):  # keeps anyio from re-cancelling us meanwhile
        inner = asyncio.ensure_future(bounded())
        while not inner.done():
            try:
                await asyncio.wait({inner})  # a cancelled wait() leaves ``inner`` running
            except asyncio.CancelledError as exc:
                cancel = exc
    if cancel is not None:
        if inner.cancelled() or inner.exception() is not None:
            raise cancel
        return inner.result(), cancel
    return inner.result(), None
