"""Part bodies sent from worker threads, over connections of their own.

aiohttp writes every byte from the event-loop thread, and uvloop keeps the GIL while the
kernel copies those bytes into the socket (over TLS, Python's SSL object encrypts them
there too): one thread does it for every part in flight, and on two cores that thread was
the ceiling of a large upload. A blocking ``send`` releases the GIL, so parts sent from
worker threads are copied and encrypted in parallel (benchmarks/PROFILE.md, "Parts sent
from threads").

``ThreadedSession`` is aiobotocore's HTTP session (``AioConfig(http_session_cls=...)``)
with one change: a PUT whose body is a part (``payloads``) of at least ``THRESHOLD`` bytes
goes out on a stdlib ``http.client`` connection in a worker thread. Every other request,
and every request through a proxy, goes through aiohttp as before. botocore still builds,
signs and parses every request; only the bytes on the wire take another path.

What aiohttp did is kept: the session's timeouts, TLS settings and client certificate; the
botocore exception for each failure; one resend of a PUT whose connection broke
(aiohttp's own, RFC 9112 9.3.1), which asyncup does not see as an attempt. A cancelled send
shuts its socket down, so the thread stops at once and no byte goes out afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import http.client
import select
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import (
    ConnectionClosedError,
    HTTPClientError,
    ReadTimeoutError,
)

from .._concurrency.shield import shielded
from .._core.errors import ShortSourceError
from .payloads import PartPayload, RangePayload, send_blocking
from .pool import Answer, Idle, Pool, connect_errors

THRESHOLD = 1024 * 1024  # smaller bodies: a trip to a thread costs more than it saves
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
        self._idle: Idle[http.client.HTTPConnection] = Idle(
            self._max_pool_connections, self._idle_for, _usable
        )
        self._pool: Pool | None = None
        self._direct: dict[tuple[str, str], _Key | None] = {}

    async def send(self, request: Any) -> Any:
        body = request.body
        if (
            not self._threaded
            or request.method != "PUT"
            or not isinstance(body, PartPayload | RangePayload)
            or body.size is None
            or body.size < THRESHOLD
            or request.headers.get("Transfer-Encoding")  # a body botocore could not size
            or self._proxy_config.proxy_url_for(request.url)
        ):
            return await super().send(request)
        return await self._send_threaded(request, body)

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

    async def put_small(self, key: _Key, url: str, head: bytes, body: memoryview) -> Answer:
        """A small PUT of the lean path to ``key`` (``small_route``'s): ``head`` is its
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
        return await self._pool.put(url, key, head, body, self._tls if https else None)

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

        def exchange(connection: http.client.HTTPConnection, call: _Call) -> _Answer:
            if connection.sock is None:
                _connect(connection, call, tls, timeouts.sock_connect, url)
            else:
                call.publish(connection.sock)
            connection.sock.settimeout(timeouts.sock_read)
            return _exchange(connection, request.method, target, headers, body, url)

        for resend in (False, True):
            # A resend takes a new connection, as aiohttp's does.
            connection = (None if resend else self._idle.take(key)) or self._new(key)
            try:
                status, response_headers, data = await self._in_thread(connection, exchange)
            except _Broken as broken:
                if not resend:
                    continue  # aiohttp's one resend of a PUT on a broken connection
                raise broken.error from broken.__cause__
            self._idle.give(key, connection)
            response = AioAWSResponse(url, status, response_headers, _Read(data))
            await response.content
            return response
        raise AssertionError("unreachable")

    async def _in_thread(self, connection: http.client.HTTPConnection, work: Any) -> _Answer:
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        call = _Call()
        # An idle anyio worker thread keeps its last function until it gets another: through
        # this box, emptied once the call is over, that function holds no part buffer.
        box: list[Any] = [work, connection]

        def run() -> _Answer:
            work, connection = box
            try:
                call.publish(None)  # stopped while it waited for a thread: nothing to do
                answer: _Answer = work(connection, call)
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
            if state is _State.SENDING:  # its socket is shut down: the thread ends now
                with contextlib.suppress(TimeoutError):
                    await shielded(finished.wait, 5.0)
            elif state is not _State.CONNECTING:  # no thread uses it (any more)
                connection.close()
            raise
        finally:
            box.clear()

    def _new(self, key: _Key) -> http.client.HTTPConnection:
        _, host, port = key
        return http.client.HTTPConnection(host, port)


_Answer = tuple[int, dict[str, str], bytes]


class _State(enum.Enum):
    WAITING = "not started yet"
    CONNECTING = "connecting, no socket yet"
    SENDING = "using its socket"
    DONE = "done"


class _Call:
    """One request's thread, seen from the event loop. Once ``stop`` is called, no byte goes
    out: the thread checks as it starts and as it opens each socket, and a socket already
    open is shut down. Whoever comes second (``stop`` or ``finish``) closes the connection:
    never the loop while the thread may still use its socket."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State.WAITING
        self._stopped = False
        self._sock: socket.socket | None = None

    def publish(self, sock: socket.socket | None) -> None:
        """(thread) Starting (None), or about to use ``sock``; raises once stopped."""
        with self._lock:
            if self._stopped:
                raise _Stopped
            self._state = _State.CONNECTING if sock is None else _State.SENDING
            self._sock = sock

    def finish(self) -> bool:
        """(thread) Done; True if stopped meanwhile (the thread then closes the connection)."""
        with self._lock:
            self._state = _State.DONE
            return self._stopped

    def stop(self) -> _State:
        """(loop) Stop the thread; what it was doing. A socket in use is shut down, so the
        thread's blocking call fails at once."""
        with self._lock:
            self._stopped = True
            state = self._state
            sock = self._sock if state is _State.SENDING else None
        if sock is not None:
            # The plain socket's shutdown: SSLSocket's drops its SSL object under the thread.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        return state


class _Stopped(Exception):
    """The call was cancelled before the thread sent anything."""


class _Broken(Exception):
    """The connection broke after it was made: ``error`` is what to raise unless resent."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Read:
    """The ``raw`` of an ``AioAWSResponse``: its body, already read."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self) -> bytes:
        return self._data


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _connect(
    connection: http.client.HTTPConnection,
    call: _Call,
    tls: ssl.SSLContext | None,
    timeout: float | None,
    url: str,
) -> None:
    """Open the connection (TLS too), each socket published to ``call`` before it is used,
    failing as aiobotocore fails to connect (never resent: aiohttp does not either)."""
    sock: socket.socket | None = None
    with connect_errors(url):
        try:
            sock = socket.create_connection((connection.host, connection.port), timeout)
            call.publish(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(
                    sock, server_hostname=connection.host, do_handshake_on_connect=False
                )
                call.publish(sock)
                sock.do_handshake()
        except BaseException:
            if sock is not None:
                sock.close()  # a failed handshake, a timeout, a stop: nobody else will
            raise
    connection.sock = sock


def _usable(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection is still open: a keep-alive connection with something to
    read (the server's close, or stray bytes) is not."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    headers: dict[str, str],
    body: PartPayload | RangePayload,
    url: str,
) -> tuple[int, dict[str, str], bytes]:
    """One request and its whole answer, on an open connection (blocking)."""
    try:
        connection.putrequest(
            method,
            target,
            skip_host="host" in {name.lower() for name in headers},
            skip_accept_encoding=True,
        )
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        send_blocking(body, connection.sock)
        answer = connection.getresponse()
        data = answer.read()
    except TimeoutError as exc:
        raise ReadTimeoutError(endpoint_url=url, error=exc) from exc
    except http.client.RemoteDisconnected as exc:  # closed before an answer
        raise _Broken(ConnectionClosedError(endpoint_url=url, error=exc)) from exc
    except http.client.HTTPException as exc:  # a malformed or cut answer
        raise ConnectionClosedError(endpoint_url=url, error=exc) from exc
    except OSError as exc:
        if isinstance(exc, ShortSourceError):
            raise HTTPClientError(error=exc) from exc
        # Broken once connected: some of the request may have reached the server.
        raise _Broken(ConnectionClosedError(endpoint_url=url, error=exc)) from exc
    except Exception as exc:  # as aiobotocore wraps whatever else the HTTP client raises
        raise HTTPClientError(error=exc) from exc
    headers_in = {name.lower(): value for name, value in answer.getheaders()}
    return answer.status, headers_in, data
