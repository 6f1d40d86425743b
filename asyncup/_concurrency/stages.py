"""Run stages concurrently; the first to fail stops the others and is raised as itself.

anyio's task groups raise an ExceptionGroup when a child fails. asyncup's callers should
get one meaningful exception, so each stage reports its own failure here instead: the first
one cancels the group, and is re-raised once every stage has stopped. Cancellation from
outside goes through untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence

import anyio

# anyio imports its asyncio backend when it is first used, inside the first upload (12 ms
# here, a third of what opening a client takes). It is imported with asyncup's other
# dependencies instead, so that a service's first upload does not pay for it (moved, not
# saved).
with contextlib.suppress(ImportError):
    import anyio._backends._asyncio


async def run_stages(stages: Sequence[Callable[[], Awaitable[None]]]) -> None:
    first_error: Exception | None = None

    async def guarded(stage: Callable[[], Awaitable[None]]) -> None:
        nonlocal first_error
        try:
            await stage()
        except Exception as exc:
            if first_error is None:
                first_error = exc
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for stage in stages:
            group.start_soon(guarded, stage)
    if first_error is not None:
        raise first_error
