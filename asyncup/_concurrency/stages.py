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
    failed: list[Exception] = []  # the first failure, until it is raised

    async def guarded(stage: Callable[[], Awaitable[None]]) -> None:
        try:
            await stage()
        except Exception as exc:
            if not failed:
                failed.append(exc)
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for stage in stages:
            group.start_soon(guarded, stage)
    if failed:
        # No frame keeps the error once it is raised: its traceback holds the stages' frames
        # (and their part buffers), and a cycle through them would wait for the cyclic GC,
        # which an idle process may not run for long (a web backend kept failed uploads'
        # buffers, measured: benchmarks/RESULTS.md).
        error = failed.pop()
        try:
            raise error
        finally:
            del error
