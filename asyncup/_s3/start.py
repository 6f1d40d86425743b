"""A fast start (issue 17): a command's first writes without making botocore's client.

In a new process, making an aiobotocore client costs ~300 ms (aiobotocore, aiohttp and
botocore's client side, imported; the client made): most of an ``asyncup cp`` of one small
file. What the lean path needs of the client is little: credentials, each bucket's endpoint
and signing region, the User-Agent, the timeouts and the answers' header members. Here

- the credentials are the environment's keys, read as botocore's first provider reads them
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, a session token; keys with an
  expiration are refreshed by botocore, so they make no fast start);
- the rest is what an earlier process's client said (a ``Record``, in the user's cache
  directory, under a name that stands for everything botocore reads to say it: ``record``).
  No secret is written.

A write to a bucket the record knows goes out as the lean path sends it, without the client
(``fast``). Anything else opens the client then, and that request and all after it go
through it as without a fast start: a bucket the record does not know, a body sent from a
thread (``THRESHOLD`` or more), a CompleteMultipartUpload, a request ``wire`` cannot say, an
answer botocore must handle (another region, the clock, an expired token), and an error whose
code the client raises as a class of its own (NoSuchUpload...; any other is botocore's
ClientError, as the client raises it). When the Uploader closes, what its client learnt is
recorded for the next.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.to_thread

from . import cachedir, record
from .fast import Fast, recorded
from .record import Record, environment_keys

log = logging.getLogger("asyncup")

_BUCKETS = 256  # endpoints a record keeps (the latest learnt)


class Start:
    """One Uploader's fast start: the record it found, and what its client learnt."""

    def __init__(self, path: str, record: Record | None) -> None:
        self._path = path
        self._record = record

    @classmethod
    async def look(
        cls, endpoint_url: str | None, region_name: str | None, verify: object, concurrency: int
    ) -> Start | None:
        """The record for these settings (one trip to a thread); None without a place to
        keep one."""

        found = await anyio.to_thread.run_sync(
            record.find, endpoint_url, region_name, verify, concurrency
        )
        return None if found is None else cls(*found)

    def fast(self, opening: Callable[[], Awaitable[Any]]) -> Fast | None:
        """The fast path, if the record and the environment allow one; ``opening`` opens the
        client when it is needed."""
        keys = environment_keys()
        if self._record is None or not self._record.endpoints or keys is None:
            return None
        return Fast(self._record, keys, opening)

    async def remember(self, client: Any) -> None:
        """Record what ``client`` learnt (if anything new), for the next process: in a thread
        (its TLS context may be made, CAs read, to be described). A record is only a head
        start: failing to make one never fails the command."""
        if client is not None:
            try:
                await anyio.to_thread.run_sync(self._remember, client)
            except Exception as exc:  # (cancellation is not an Exception: it goes on)
                log.debug("no fast start recorded: %s: %s", type(exc).__name__, exc)

    def _remember(self, client: Any) -> None:
        new = recorded(client)
        if new is None:
            return
        old = self._record
        if old is not None and _but_endpoints(old) == _but_endpoints(new):
            if new.endpoints.items() <= old.endpoints.items():
                return  # nothing new
            new.endpoints = {**old.endpoints, **new.endpoints}
        while len(new.endpoints) > _BUCKETS:
            del new.endpoints[next(iter(new.endpoints))]  # the oldest learnt
        self._record = new
        cachedir.write(self._path, new.frozen())


def _but_endpoints(record: Record) -> dict[str, Any]:
    return record.frozen() | {"endpoints": None}


async def opened(
    stack: AsyncExitStack,
    opening: Callable[[], Awaitable[Any]],
    where: tuple[str | None, str | None, object, int] | None,
) -> tuple[Any, Fast | None]:
    """An Uploader's own client, opened by ``opening`` (into ``stack``); or, on a fast start
    (``where``: the endpoint, region, TLS setting and concurrency, whose record is looked
    up), none yet and the path that opens it when first needed. Either way, what the client
    learnt is recorded when ``stack`` closes."""
    start = None
    if where is not None and os.environ.get("ASYNCUP_LEAN", "1") != "0":
        start = await Start.look(*where)
    fast = start.fast(opening) if start is not None else None
    client = await opening() if fast is None else None
    if start is not None:

        async def remember() -> None:  # what the client learnt, for the next process
            await start.remember(client if fast is None else fast.client)

        stack.push_async_callback(remember)
    if fast is not None:
        stack.callback(fast.close)
    return client, fast
