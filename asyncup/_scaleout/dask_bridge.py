"""Dask futures awaited from asyncio, whatever kind of ``distributed.Client`` is given.

An asynchronous Client runs on the caller's event loop: its calls are awaited. A synchronous
one runs its own loop in a thread: its blocking calls go to a worker thread, and a future is
awaited through its done-callback (run by distributed in a thread of its own), handed to
this loop with ``call_soon_threadsafe``. The stop signal of an upload is a named
``distributed.Event`` on the scheduler: the coordinator sets it, each task polls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from distributed import WorkerPlugin, get_worker

from .._core.config import TransferConfig
from .._pipeline.uploader import Uploader

T = TypeVar("T")
STOP_POLL = 1.0  # seconds between a task's looks at its upload's stop signal


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How a worker reaches S3: sent with every task, so never a secret."""

    endpoint_url: str | None
    region_name: str | None
    config: TransferConfig
    verify: bool | str | None
    sse_customer_key_env: str | None

    def uploader(self) -> Uploader:
        return Uploader(
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            config=self.config,
            verify=self.verify,
        )

    def sse_customer_key(self) -> str | None:
        if self.sse_customer_key_env is None:
            return None
        key = os.environ.get(self.sse_customer_key_env)
        if not key:
            raise ValueError(f"{self.sse_customer_key_env} is not set on this worker")
        return key


PLUGIN = "asyncup-uploaders"


class _Uploaders(WorkerPlugin):
    """A worker's open Uploaders, one per ``Settings``, shared by the tasks it runs: a task
    does not pay for a client of its own (the service model, the connections), and the
    tasks of one worker share one budget. A worker plugin, so that they are closed with
    the worker."""

    def __init__(self) -> None:
        super().__init__()
        self.open: dict[Settings, Uploader] = {}
        self.lock = anyio.Lock()

    async def get(self, settings: Settings) -> Uploader:
        async with self.lock:
            up = self.open.get(settings)
            if up is None:
                up = await settings.uploader().__aenter__()
                self.open[settings] = up
            return up

    async def teardown(self, worker: Any) -> None:
        opened, self.open = self.open, {}
        for up in opened.values():
            await up.__aexit__(None, None, None)


async def worker_uploader(settings: Settings) -> Uploader:
    """This worker's Uploader for ``settings`` (opened on first use, closed with it)."""
    worker = get_worker()
    plugin = worker.plugins.get(PLUGIN)
    if not isinstance(plugin, _Uploaders):
        plugin = _Uploaders()
        await worker.plugin_add(plugin=plugin, name=PLUGIN)
    return await plugin.get(settings)


class Bridge:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.asynchronous = bool(client.asynchronous)
        self._loop = asyncio.get_running_loop()

    async def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.asynchronous:
            return await function(*args, **kwargs)
        return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))

    def submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.client.submit(function, *args, pure=False, **kwargs)

    async def result(self, future: Any) -> Any:
        """The future's result (its exception raised), once it is done."""
        if self.asynchronous:
            return await future
        done = asyncio.Event()

        def wake(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # this loop is closed: nobody waits
                self._loop.call_soon_threadsafe(done.set)

        future.add_done_callback(wake)
        await done.wait()
        return await anyio.to_thread.run_sync(future.result)

    async def cancel(self, futures: list[Any]) -> None:
        if futures:
            await self._call(self.client.cancel, futures, force=True)

    async def slots(self) -> dict[str, int]:
        """Each worker's address and its number of task slots (threads)."""
        if self.asynchronous:
            info = await self.client.scheduler.identity(n_workers=-1)
        else:
            info = await anyio.to_thread.run_sync(self.client.scheduler_info, -1)
        return {address: int(w.get("nthreads", 1)) for address, w in info["workers"].items()}

    async def set_stop(self, name: str) -> None:
        await self._scheduler("event_set", name)

    async def clear_stop(self, name: str) -> None:
        await self._scheduler("event_clear", name)

    async def _scheduler(self, method: str, name: str) -> None:
        call = getattr(self.client.scheduler, method)
        if self.asynchronous:
            await call(name=name)
        else:
            await anyio.to_thread.run_sync(partial(self.client.sync, call, name=name))


async def stopped(name: str) -> None:
    """Return once the coordinator has set the stop signal ``name`` (on a Dask worker).
    Polled (a short call, then a sleep): a long wait cut short when the task ends would
    make the scheduler log an error for every task."""
    while True:
        if await is_stopped(name):
            return
        await anyio.sleep(STOP_POLL)


async def is_stopped(name: str) -> bool:
    return bool(await get_worker().scheduler.event_is_set(name=name))


class Stopped(Exception):
    """The coordinator asked the senders to stop."""


async def unless_stopped(name: str, work: Callable[[], Awaitable[T]]) -> T:
    """``work()``, cancelled (``Stopped``) as soon as the stop signal ``name`` is set."""
    done: list[T] = []
    failed: list[Exception] = []

    async def watch(scope: anyio.CancelScope) -> None:
        await stopped(name)
        scope.cancel()

    if await is_stopped(name):  # a task that starts after the stop sends nothing
        raise Stopped
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as watchers:
            watchers.start_soon(watch, scope)
            try:
                done.append(await work())
            except Exception as exc:
                failed.append(exc)
            finally:
                watchers.cancel_scope.cancel()
    if failed:
        raise failed[0]
    if not done:
        raise Stopped
    return done[0]


def worker_address() -> str:
    address: str = get_worker().address
    return address
