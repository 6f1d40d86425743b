"""A fast start (issue 17): a command's first writes without making botocore's client.

In a new process, making an aiobotocore client costs ~300 ms (aiobotocore, aiohttp and
botocore's client side, imported; the client made): most of an ``asyncup cp`` of one small
file. What the lean path needs of the client is little: credentials, each bucket's endpoint
and signing region, the User-Agent, the timeouts and the answers' header members. Here

- the credentials are the environment's keys, read as botocore's first provider reads them
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, a session token; keys with an
  expiration are refreshed by botocore, so they make no fast start);
- the rest is what an earlier process's client said (a ``Record``, in the user's cache
  directory), under a name that stands for everything botocore reads to say it: asyncup's
  and botocore's versions, Python's and the system's, the Uploader's endpoint, region, TLS
  setting and concurrency, every ``AWS_`` environment variable but the secrets, the proxy and
  CA bundle variables, the system's proxies (macOS, Windows), and the AWS config and
  credentials files' sizes and times. No secret is written; a record is read only from a
  folder that is the user's own and that no one else may write (``cachedir``).

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
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.to_thread

from . import cachedir
from .fast import FORMAT, Fast, Record

log = logging.getLogger("asyncup")

_BUCKETS = 256  # endpoints a record keeps (the latest learnt)
_SECRETS = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
)
# Read besides by the client's HTTP session: its proxies, its CAs (botocore's ``verify``), the
# TLS key log (urllib3's).
_OTHERS = frozenset(
    {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE",
     "SSL_CERT_DIR", "SSLKEYLOGFILE"}
)  # fmt: skip


def environment_keys() -> tuple[str, str, str | None] | None:
    """The keys botocore's first provider would find in the environment, if they are static:
    (access key, secret key, token)."""
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret or os.environ.get("AWS_CREDENTIAL_EXPIRATION"):
        return None
    token = os.environ.get("AWS_SECURITY_TOKEN") or os.environ.get("AWS_SESSION_TOKEN")
    return access, secret, token or None


def record_path(
    endpoint_url: str | None, region_name: str | None, verify: object, concurrency: int
) -> str | None:
    """Where the record for an Uploader made with these settings, in this environment, is
    kept; None when there is no cache directory."""
    import botocore  # the package alone: its version

    # botocore reads settings (region, endpoint_url, ca_bundle, s3 = ...) from both files.
    files = [
        _stamp(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"),
        _stamp(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"),
    ]
    environment = sorted(
        (name, value)
        for name, value in os.environ.items()
        if (name.startswith("AWS_") and name not in _SECRETS) or name.upper() in _OTHERS
    )
    about = "\0".join(
        map(
            str,
            (
                FORMAT,
                _installed(),
                botocore.__version__,
                sys.version,
                os.uname().release if hasattr(os, "uname") else sys.platform,
                endpoint_url,
                region_name,
                verify,
                concurrency,
                files,
                environment,
                _system_proxies(),
            ),
        )
    )
    return cachedir.entry("start", about, ".marshal")


def _stamp(path: str) -> str:
    """``path`` as botocore finds it (variables, then ``~``), and its size and time."""
    path = os.path.expanduser(os.path.expandvars(path))
    try:
        stat = os.stat(path)
    except OSError:
        return f"{path} none"
    return f"{path} {stat.st_size} {stat.st_mtime_ns} {stat.st_ino}"


def _system_proxies() -> object:
    """The proxies the system's settings give (macOS, Windows), which botocore's session
    reads besides the environment's (``_OTHERS``, the only ones elsewhere)."""
    if sys.platform not in ("darwin", "win32"):
        return None
    import urllib.request

    return sorted(urllib.request.getproxies().items())


def _installed() -> str:
    """asyncup as installed: this module's and ``client``'s files (which make the User-Agent,
    with asyncup's version), as a new version or a change rewrites them. (Its version from
    the package's metadata costs ~30 ms to read.)"""
    here = os.path.dirname(__file__)
    stats = [os.stat(os.path.join(here, name)) for name in ("start.py", "client.py")]
    return " ".join(f"{stat.st_size}:{stat.st_mtime_ns}" for stat in stats)


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

        def find() -> Start | None:
            path = record_path(endpoint_url, region_name, verify, concurrency)
            if path is None:
                return None
            data = cachedir.read(path)
            return cls(path, Record.thawed(data) if data is not None else None)

        return await anyio.to_thread.run_sync(find)

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
        record = Record.of(client)
        if record is None:
            return
        old = self._record
        if old is not None and _but_endpoints(old) == _but_endpoints(record):
            if record.endpoints.items() <= old.endpoints.items():
                return  # nothing new
            record.endpoints = {**old.endpoints, **record.endpoints}
        while len(record.endpoints) > _BUCKETS:
            del record.endpoints[next(iter(record.endpoints))]  # the oldest learnt
        self._record = record
        cachedir.write(self._path, record.frozen())


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
