"""Part bodies sent from worker threads, over connections of their own.

aiohttp writes every byte from the event-loop thread, and uvloop keeps the GIL while the
kernel copies those bytes into the socket (over TLS, Python's SSL object encrypts them
there too): one thread does it for every part in flight, and on two cores that thread was
the ceiling of a large upload. A blocking ``send`` releases the GIL, so parts sent from
worker threads are copied and encrypted in parallel (benchmarks/PROFILE.md, "Parts sent
from threads").

``ThreadedSession`` is aiobotocore's HTTP session (``AioConfig(http_session_cls=...)``)
with two changes: a PUT whose body is a part (``payloads``) of at least ``THRESHOLD`` bytes
goes out on a stdlib ``http.client`` connection in a worker thread, and a request with a
smaller body in memory, or none (Create, Complete, Abort, lists, a bucket's first write),
goes out on asyncup's own connections (``pool``), as the lean path's small writes do. A
HEAD, an answer read as a stream, a body that is a file, and every request through a proxy
go through aiohttp as before. botocore still builds, signs and parses these requests; only
the bytes on the wire take another path.

What aiohttp did is kept: the session's timeouts, TLS settings and client certificate; the
botocore exception for each failure; one resend of a PUT whose connection broke
(aiohttp's own, RFC 9112 9.3.1), which asyncup does not see as an attempt. A cancelled send
shuts its socket down, so the thread stops at once and no byte goes out afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import ssl
from typing import Any
from urllib.parse import SplitResult, urlsplit

import anyio
import anyio.to_thread
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.httpsession import AIOHTTPSession

from .._concurrency.shield import shielded
from .._core import wire
from . import (
    aio_bodies,  # noqa: F401  (how aiohttp writes asyncup's bodies, registered)
    blocking,
)
from .payloads import PartPayload, RangePayload, TrailedPayload
from .pool import Answer, Idle, Pool

IDLE = 10.0  # seconds an idle connection is kept (aiobotocore keeps aiohttp's 12)

_Key = tuple[str, str, int]


class ThreadedSession(AIOHTTPSession):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tls: ssl.SSLContext | None = None
        self._threads: anyio.CapacityLimiter | None = None
        # A caller's connector_args (a resolver, a socket factory, force_close...) are
        # aiohttp's to honour: with any of them every request stays with aiohttp.
        self._threaded = set(self._connector_args) <= {"keepalive_timeout"}
        keepalive = self._connector_args.get("keepalive_timeout")
        self._idle_for = min(IDLE, keepalive) if keepalive is not None else IDLE
        # Whether an idle connection is still open is asked in the thread that takes it
        # (``blocking.usable``): a system call on the event loop gives the GIL away, and
        # the loop waited ~0.13 ms per part to get it back from the sending threads.
        self._idle: Idle[http.client.HTTPConnection] = Idle(
            self._max_pool_connections, self._idle_for, blocking.is_open
        )
        self._pool: Pool | None = None
        self._direct: dict[tuple[str, str], _Key | None] = {}

    async def send(self, request: Any) -> Any:
        body = request.body
        if (
            not self._threaded
            or request.headers.get("Transfer-Encoding")  # a body botocore could not size
            or self._proxy_config.proxy_url_for(request.url)
        ):
            return await super().send(request)
        if isinstance(body, TrailedPayload) or (
            request.method == "PUT"
            and isinstance(body, PartPayload | RangePayload)
            and body.size is not None
            and body.size >= wire.THRESHOLD
        ):  # (only threads frame a trailed body: ``lean`` sends one here alone)
            return await self._send_threaded(request, body)
        small = _small_body(request)
        if small is None:
            return await super().send(request)
        return await self._send_pooled(request, small)

    def small_route(self, scheme: str, netloc: str) -> _Key | None:
        """Where the lean path's small PUTs to this endpoint go through ``pool``: its
        (scheme, host, port); None when there is a proxy for it or a connector argument of
        the caller's (aiohttp sends them then)."""
        if (scheme, netloc) not in self._direct:
            url = f"{scheme}://{netloc}/"
            split = urlsplit(url)
            port = split.port or (443 if scheme == "https" else 80)
            direct = self._threaded and not self._proxy_config.proxy_url_for(url)
            key = (scheme, split.hostname or "", port)
            self._direct[(scheme, netloc)] = key if direct else None
        return self._direct[(scheme, netloc)]

    async def _send_pooled(self, request: Any, body: memoryview) -> Any:
        """botocore's ``request`` through ``pool``, as aiohttp would send it: the headers
        botocore signed (``request_head`` leaves out Expect), Host as it signed it,
        Accept-Encoding identity, a Content-Length for any body (0 for a PUT or POST
        without one)."""
        split = urlsplit(request.url)
        key = self.small_route(split.scheme, split.netloc)
        if key is None:
            return await super().send(request)
        headers = [(name, _text(value)) for name, value in request.headers.items()]
        sized = len(body) or request.method in ("PUT", "POST")
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        length = len(body) if sized else None
        head = wire.request_head(request.method, target, _host(split), headers, length=length)
        try:
            status, headers_in, data = await self.send_small(
                key, request.url, head, body, idempotent=request.method != "POST"
            )
        finally:
            if isinstance(request.body, io.BytesIO):
                body.release()  # botocore may close it now (no buffer of it exported)
        response = AioAWSResponse(request.url, status, headers_in, _Read(data))
        await response.content
        return response

    async def send_small(
        self, key: _Key, url: str, head: bytes, body: memoryview, *, idempotent: bool = True
    ) -> Answer:
        """A small request to ``key`` (``small_route``'s) through ``pool``: ``head`` is its
        request line and signed headers."""
        https = key[0] == "https"
        if https and self._tls is None:
            contexts = await anyio.to_thread.run_sync(self._build_ssl_contexts, None)
            self._tls = contexts[0]
        if self._pool is None:
            self._pool = Pool(
                connect_timeout=self._timeout.sock_connect,
                read_timeout=self._timeout.sock_read,
                keep=self._max_pool_connections,
                idle_for=self._idle_for,
            )
        tls = self._tls if https else None
        return await self._pool.send(url, key, head, body, tls, idempotent=idempotent)

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._pool is not None:
            self._pool.close()
        self._idle.close()
        await super().__aexit__(*exc_info)

    async def _send_threaded(self, request: Any, body: PartPayload | RangePayload) -> Any:
        url = request.url
        split = urlsplit(url)
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        headers = {name: _text(value) for name, value in request.headers.items()}
        headers["Accept-Encoding"] = "identity"  # as aiobotocore sends it
        timeouts = self._get_request_timeout(request) or self._timeout
        https = split.scheme == "https"
        key = (split.scheme, split.hostname or "", split.port or (443 if https else 80))
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self._max_pool_connections)
        if https and self._tls is None:
            contexts = await anyio.to_thread.run_sync(self._build_ssl_contexts, None)
            self._tls = contexts[0]
        tls = self._tls if https else None

        def exchange(connection: http.client.HTTPConnection, call: blocking.Call) -> Answer:
            if connection.sock is not None and not blocking.usable(connection):
                connection.close()  # closed by the server while idle: a new one
            if connection.sock is None:
                blocking.connect(connection, call, tls, timeouts.sock_connect, url)
            else:
                call.publish(connection.sock)
            connection.sock.settimeout(timeouts.sock_read)
            return blocking.exchange(connection, request.method, target, headers, body, url)

        for resend in (False, True):
            # A resend takes a new connection, as aiohttp's does.
            connection = (None if resend else self._idle.take(key)) or self._new(key)
            try:
                status, response_headers, data = await self._in_thread(connection, exchange)
            except blocking.Broken as broken:
                if not resend:
                    continue  # aiohttp's one resend of a PUT on a broken connection
                raise broken.error from broken.__cause__
            self._idle.give(key, connection)
            response = AioAWSResponse(url, status, response_headers, _Read(data))
            await response.content
            return response
        raise AssertionError("unreachable")

    async def _in_thread(self, connection: http.client.HTTPConnection, work: Any) -> Answer:
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        call = blocking.Call()
        # An idle anyio worker thread keeps its last function until it gets another: through
        # this box, emptied once the call is over, that function holds no part buffer.
        box: list[Any] = [work, connection]

        def run() -> Answer:
            work, connection = box
            try:
                call.publish(None)  # stopped while it waited for a thread: nothing to do
                answer: Answer = work(connection, call)
                return answer
            finally:
                if call.finish():  # stopped meanwhile: the connection is the thread's to close
                    connection.close()
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    loop.call_soon_threadsafe(finished.set)

        try:
            return await anyio.to_thread.run_sync(
                run, abandon_on_cancel=True, limiter=self._threads
            )
        except BaseException:
            state = call.stop()
            if state is blocking.State.SENDING:  # its socket is shut down: the thread ends now
                with contextlib.suppress(TimeoutError):
                    await shielded(finished.wait, 5.0)
            elif state is not blocking.State.CONNECTING:  # no thread uses it (any more)
                connection.close()
            raise
        finally:
            box.clear()

    def _new(self, key: _Key) -> http.client.HTTPConnection:
        _, host, port = key
        return http.client.HTTPConnection(host, port)


class _Read:
    """The ``raw`` of an ``AioAWSResponse``: its body, already read."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self) -> bytes:
        return self._data


def _small_body(request: Any) -> memoryview | None:
    """The body of a request ``pool`` sends (one in memory, below ``THRESHOLD``), or None for
    one that stays with aiohttp: a HEAD (its answer says a length it does not send), an
    answer read as a stream (GetObject), a file or a stream."""
    if request.method == "HEAD" or request.stream_output:
        return None
    body = request.body
    if body is None:
        return memoryview(b"")
    if isinstance(body, bytes | bytearray):
        body = memoryview(body)
    elif isinstance(body, PartPayload):
        body = body.view
    elif isinstance(body, io.BytesIO):  # botocore's for a bytes Body
        body = body.getbuffer()[body.tell() :]
    if isinstance(body, memoryview) and body.nbytes < wire.THRESHOLD:
        return body.cast("B") if body.ndim != 1 or body.format != "B" else body
    return None


def _host(split: SplitResult) -> str:
    """The Host header as botocore signs it: the port left out where it is the scheme's."""
    default = {"http": 80, "https": 443}.get(split.scheme)
    if split.port is None or split.port == default:
        host = split.hostname or ""
        return f"[{host}]" if ":" in host else host
    return split.netloc.rpartition("@")[2]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
