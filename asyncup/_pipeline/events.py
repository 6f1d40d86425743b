"""Upload events, for backends that push progress to their own clients.

An upload reports what happens to it as ``UploadEvent``s: each part started and done
(with the bytes acknowledged so far, which only grow), each retry (with its attempt number
and S3's error code), and the end. Pass a callable as ``on_event``, or an ``UploadEvents``
and iterate it while the upload runs: the iteration ends when the upload does.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import anyio

EventKind = Literal["part_started", "part_done", "retry", "done"]


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadEvent:
    """One thing that happened to an upload.

    ``bytes_done`` counts the bytes S3 has acknowledged so far (never decreasing);
    ``total`` is the object's size when known in advance.
    """

    kind: EventKind
    bucket: str
    key: str
    bytes_done: int
    total: int | None = None
    part_number: int | None = None
    attempt: int | None = None
    error: str | None = None


class UploadEvents:
    """One upload's events as an async stream. Example::

        events = asyncup.UploadEvents()
        async with anyio.create_task_group() as tg:
            tg.start_soon(forward, events)        # async for event in events: ...
            await up.upload(source, "bucket", "key", on_event=events)

    The stream ends when the upload ends, whether it succeeded or failed.
    """

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[UploadEvent](math.inf)

    def __call__(self, event: UploadEvent) -> None:
        with contextlib.suppress(anyio.ClosedResourceError):  # the upload is over
            self._send.send_nowait(event)

    def close(self) -> None:
        self._send.close()

    async def __aiter__(self) -> AsyncIterator[UploadEvent]:
        async with self._receive:
            async for event in self._receive:
                yield event
