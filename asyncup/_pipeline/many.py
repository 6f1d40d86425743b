"""upload_many: many objects through one Uploader, under its one budget.

    items -> bounded stream -> ``objects_in_flight`` workers -> Uploader.upload

The objects share the Uploader's budget (requests in flight, bytes buffered), so a thousand
files never cost a thousand sets of part buffers. A failed object is recorded and the others
go on; with ``stop_on_error`` the first failure cancels the rest (their multipart uploads are
aborted) and is raised.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._concurrency.stages import run_stages
from .._core.errors import AsyncupError
from .._core.results import UploadResult

Item = tuple[object, str]
T = TypeVar("T")
UploadOne = Callable[[object, str], Awaitable[UploadResult]]


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadSummary:
    """What ``Uploader.upload_many`` did: one result per object uploaded, one error per
    object that failed (with its key), and the time it took.

    Example::

        summary = await up.upload_many([(path, path.name) for path in paths], "bucket")
        for key, error in summary.errors:
            print(key, error)
    """

    results: tuple[UploadResult, ...]
    errors: tuple[tuple[str, Exception], ...]
    seconds: float

    @property
    def size(self) -> int:
        """Bytes uploaded, in all."""
        return sum(result.size for result in self.results)

    @property
    def ok(self) -> bool:
        return not self.errors


async def upload_many(
    upload: UploadOne,
    items: Iterable[Item] | AsyncIterable[Item],
    *,
    objects_in_flight: int,
    stop_on_error: bool,
) -> UploadSummary:
    started = time.monotonic()
    results: list[UploadResult] = []
    errors: list[tuple[str, Exception]] = []

    async def upload_one(item: Item) -> None:
        source, key = item
        try:
            results.append(await upload(source, key))
        except (AsyncupError, ValueError, TypeError) as exc:
            if stop_on_error:
                raise
            errors.append((key, exc))

    await for_each(items, upload_one, in_flight=objects_in_flight, check=_checked)
    return UploadSummary(
        results=tuple(results), errors=tuple(errors), seconds=time.monotonic() - started
    )


async def for_each(
    items: Iterable[T] | AsyncIterable[T],
    handle: Callable[[T], Awaitable[None]],
    *,
    in_flight: int,
    check: Callable[[object], T] | None = None,
) -> None:
    """``await handle(item)`` for every item, ``in_flight`` at a time (a bounded stream feeds
    that many workers); the first exception a handler raises (or ``check``, refusing an
    item) stops the others and is raised as itself. ``asyncup cp`` runs its files on it.

    Items from a plain iterable are taken by the workers themselves, each ``next()`` in
    turn (no stream between them: its sends, receives and checkpoints cost an object ~10 %
    of its event-loop time); an async iterable is fed through the stream."""
    if not isinstance(items, AsyncIterable):
        shared = iter(items)

        async def take() -> None:
            for item in shared:
                await handle(item if check is None else check(item))

        await run_stages([take] * max(1, in_flight))
        return
    send, receive = anyio.create_memory_object_stream[T](in_flight)
    receivers = [receive.clone() for _ in range(max(1, in_flight))]
    receive.close()

    async def work(stream: MemoryObjectReceiveStream[T]) -> None:
        async with stream:
            async for item in stream:
                await handle(item)

    try:
        await run_stages(
            [partial(_feed, items, send, check)] + [partial(work, r) for r in receivers]
        )
    finally:
        send.close()
        for stream in receivers:
            stream.close()


async def _feed(
    items: AsyncIterable[T],
    send: MemoryObjectSendStream[T],
    check: Callable[[object], T] | None,
) -> None:
    async with send:
        async for item in items:
            await send.send(item if check is None else check(item))


def _checked(item: object) -> Item:
    if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)):
        raise TypeError(f"upload_many takes (source, key) pairs; got {item!r:.80}")
    return item
