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

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._concurrency.stages import run_stages
from .._core.errors import AsyncupError
from .._core.results import UploadResult

Item = tuple[object, str]
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
    send, receive = anyio.create_memory_object_stream[Item](objects_in_flight)
    receivers = [receive.clone() for _ in range(objects_in_flight)]
    receive.close()

    async def work(stream: MemoryObjectReceiveStream[Item]) -> None:
        async with stream:
            async for source, key in stream:
                try:
                    results.append(await upload(source, key))
                except (AsyncupError, ValueError, TypeError) as exc:
                    if stop_on_error:
                        raise
                    errors.append((key, exc))

    try:
        await run_stages([partial(_feed, items, send)] + [partial(work, r) for r in receivers])
    finally:
        send.close()
        for stream in receivers:
            stream.close()
    return UploadSummary(
        results=tuple(results), errors=tuple(errors), seconds=time.monotonic() - started
    )


async def _feed(
    items: Iterable[Item] | AsyncIterable[Item], send: MemoryObjectSendStream[Item]
) -> None:
    async with send:
        if isinstance(items, AsyncIterable):
            async for item in items:
                await send.send(_checked(item))
        else:
            for item in items:
                await send.send(_checked(item))


def _checked(item: object) -> Item:
    if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)):
        raise TypeError(f"upload_many takes (source, key) pairs; got {item!r:.80}")
    return item
