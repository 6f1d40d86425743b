"""asyncup's own HTTP/1.1 connections (issue 17): a small request, its bytes and its answer.

aiohttp's ClientSession cost ~0.2 ms of the event loop per small PutObject (its request and
response objects, headers in multidicts, its connector and timers: benchmarks/PROFILE.md).
An S3 request needs much less: headers already signed, a body in memory (or none), and
an answer's status, headers and body, read whole. Here each connection is an asyncio
protocol whose answer is parsed by httptools; idle connections are kept per host as
aiohttp keeps them.

What aiohttp did is kept, as ``threaded`` keeps it for large parts: the session's connect
and read timeouts, its TLS context, botocore's exception for each failure, and one resend
of a PUT whose connection broke before any answer came (aiohttp's resend of an idempotent
request, RFC 9112 9.3.1; the threaded sends do the same). A
cancelled or failed exchange closes its connection: it is never reused half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

import httptools
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)

Answer = tuple[int, dict[str, str], bytes]
# A body goes to the transport a slice at a time, each after the socket drained: the
# transport's buffer (encrypted, over TLS) then holds a slice per connection, not a body
# (as ``payloads.PartPayload`` writes through aiohttp).
SLICE = 256 * 1024
_Key = tuple[str, str, int]


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class Idle(Generic[C]):
    """Idle keep-alive connections by (scheme, host, port): at most ``keep`` per host, each
    for at most ``idle_for`` seconds, the newest taken first; ``usable`` says whether one
    can carry a request (it is closed otherwise)."""

    def __init__(self, keep: int, idle_for: float, usable: Callable[[C], bool]) -> None:
        self._keep, self._idle_for, self._usable = keep, idle_for, usable
        self._idle: dict[_Key, list[tuple[float, C]]] = {}
        self._closed = False

    def take(self, key: _Key) -> C | None:
        idle = self._idle.get(key)
        expired = time.monotonic() - self._idle_for
        while idle and idle[0][0] < expired:  # the oldest first
            idle.pop(0)[1].close()
        while idle:
            _, connection = idle.pop()
            if self._usable(connection):
                return connection
            connection.close()
        return None

    def give(self, key: _Key, connection: C) -> None:
        idle = self._idle.setdefault(key, [])
        if self._closed or len(idle) >= self._keep or not self._usable(connection):
            connection.close()  # or the server said it would close it, or did
            return
        idle.append((time.monotonic(), connection))

    def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for _, connection in connections:
                connection.close()


class Pool:
    """Keep-alive connections for small PUTs, by (scheme, host, port)."""

    def __init__(
        self,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        keep: int,
        idle_for: float,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle: Idle[_Connection] = Idle(keep, idle_for, _Connection.usable)

    async def send(
        self,
        url: str,
        key: _Key,
        head: bytes,
        body: memoryview,
        tls: ssl.SSLContext | None,
        *,
        idempotent: bool = True,
    ) -> Answer:
        """Send ``body`` after ``head`` (request line and headers, ending in an empty line)
        and read the whole answer. An ``idempotent`` request (a PUT) is sent again once on a
        new connection when its connection broke before any answer; a POST is not."""
        for resend in (False, True):
            connection = (None if resend else self._idle.take(key)) or await self._connect(
                key, tls, url
            )
            try:
                answer = await connection.exchange(head, body, self._read_timeout, url)
            except _Broken as broken:
                connection.close()
                if not resend and idempotent:
                    continue  # aiohttp's one resend, on a new connection
                raise broken.error from broken.__cause__
            except BaseException:
                connection.close()
                raise
            self._idle.give(key, connection)
            return answer
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._idle.close()

    async def _connect(self, key: _Key, tls: ssl.SSLContext | None, url: str) -> _Connection:
        _, host, port = key
        loop = asyncio.get_running_loop()
        with connect_errors(url):
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        return connection


@contextlib.contextmanager
def connect_errors(url: str) -> Iterator[None]:
    """A failure to connect, as aiobotocore's connector reports it (never resent)."""
    try:
        yield
    except TimeoutError as exc:
        raise ConnectTimeoutError(endpoint_url=url, error=exc) from exc
    except ssl.SSLError as exc:
        raise SSLError(endpoint_url=url, error=exc) from exc
    except OSError as exc:
        raise EndpointConnectionError(endpoint_url=url, error=exc) from exc


class _Broken(Exception):
    """The connection broke before any answer: ``error`` is what to raise unless resent."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one exchange at a time, its answer parsed by httptools."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._answering = False  # some of the answer came
        self._keep_alive = False
        self._lost = False
        self._error: Exception | None = None
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None  # the read timeout's, while one runs

    # The exchange, from the event loop.
    async def exchange(
        self, head: bytes, body: memoryview, read_timeout: float | None, url: str
    ) -> Answer:
        transport = self._transport
        if transport is None or self._lost:
            raise _Broken(ConnectionClosedError(endpoint_url=url))
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._answering = False
        self._status, self._headers, self._body = 0, {}, []
        self._last = loop.time()
        if self._timer is None and read_timeout is not None:
            self._timer = loop.call_later(read_timeout, self._check_timeout, read_timeout)
        try:
            # The head with the first slice: one send for a small body (uvloop: writev).
            transport.writelines([head, body[:SLICE]])
            for start in range(SLICE, len(body), SLICE):
                if self._paused:
                    self._drained = loop.create_future()
                    await self._drained
                if waiter.done():  # answered early (an error), or broken: the server
                    self._keep_alive = False  # would read what follows as this body
                    break
                transport.write(body[start : start + SLICE])
            await waiter
        finally:
            self._waiter = self._drained = None
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, TimeoutError):
                raise ReadTimeoutError(endpoint_url=url, error=error) from error
            closed = ConnectionClosedError(endpoint_url=url, error=error)
            if not self._answering:
                raise _Broken(closed) from error
            raise closed from error
        return self._status, self._headers, b"".join(self._body)

    def usable(self) -> bool:
        """Open, kept alive by the server, and nothing of a request left unsent (a server
        may answer before reading the whole body)."""
        transport = self._transport
        return (
            not self._lost
            and self._keep_alive
            and transport is not None
            and not transport.get_write_buffer_size()
        )

    def close(self) -> None:
        """At once: what is not sent yet never goes out."""
        self._lost = True
        self._stop_timer()
        if self._transport is not None:
            self._transport.abort()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_timeout(self, read_timeout: float) -> None:
        """The read timeout's timer: one per connection, not per exchange (a timer costs
        the event loop ~3 us). It lapses while the connection is idle, and the next
        exchange starts it again; during an exchange it waits out the time since the
        last bytes (or the exchange's start) came."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._last
        if idle < read_timeout:  # data came meanwhile: wait the rest of the time
            self._timer = loop.call_later(read_timeout - idle, self._check_timeout, read_timeout)
            return
        self._fail(TimeoutError(f"no answer for {read_timeout:g} s"))

    def _fail(self, error: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._error = error
            waiter.set_result(None)
        self._wake()

    def _wake(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    # asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._last = asyncio.get_running_loop().time()
        self._wake()

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is not reusable
            self.close()
            return
        self._answering = True
        self._last = asyncio.get_running_loop().time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._stop_timer()
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    # httptools' callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._wake()
