"""Part bodies sent from worker threads, over connections of their own.

aiohttp writes every byte from the event-loop thread, and uvloop keeps the GIL while the
kernel copies those bytes into the socket (over TLS, Python's SSL object encrypts them
there too): one thread does it for every part in flight, and on two cores that thread was
the ceiling of a large upload. A blocking ``send`` releases the GIL, so parts sent from
worker threads are copied and encrypted in parallel (benchmarks/PROFILE.md, "Parts sent
from threads").

``ThreadedSession`` is aiobotocore's HTTP session (``AioConfig(http_session_cls=...)``)
with one change: a PUT whose body is a part (``_payloads``) of at least ``THRESHOLD`` bytes
goes out on a stdlib ``http.client`` connection in a worker thread. Every other request,
and every request through a proxy, goes through aiohttp as before. botocore still builds,
signs and parses every request; only the bytes on the wire take another path.

What aiohttp did is kept: the session's timeouts, TLS settings and client certificate; the
botocore exception for each failure; one resend of a PUT whose connection broke
(aiohttp's own, RFC 9112 9.3.1), which asyncup does not see as an attempt. A cancelled send
shuts its socket down, so the thread stops at once and no byte goes out afterwards.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    SSLError,
)

from ._payloads import PartPayload, RangePayload, ShortSourceError, send_blocking
from ._shield import shielded

THRESHOLD = 1024 * 1024  # smaller bodies: a trip to a thread costs more than it saves
IDLE = 10.0  # seconds an idle connection is kept (aiobotocore keeps aiohttp's 12)

_Key = tuple[str, str, int]


class ThreadedSession(AIOHTTPSession):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: dict[_Key, list[tuple[float, http.client.HTTPConnection]]] = {}
        self._tls: ssl.SSLContext | None = None
        self._threads: anyio.CapacityLimiter | None = None

    async def send(self, request: Any) -> Any:
        body = request.body
        if (
            request.method != "PUT"
            or not isinstance(body, PartPayload | RangePayload)
            or body.size is None
            or body.size < THRESHOLD
            or self._proxy_config.proxy_url_for(request.url)
        ):
            return await super().send(request)
        return await self._send_threaded(request, body)

    async def __aexit__(self, *exc_info: Any) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for _, connection in connections:
                connection.close()
        await super().__aexit__(*exc_info)

    async def _send_threaded(self, request: Any, body: PartPayload | RangePayload) -> Any:
        url = request.url
        split = urlsplit(url)
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        headers = {name: _text(value) for name, value in request.headers.items()}
        names = {name.lower() for name in headers}
        if "content-length" not in names:
            headers["Content-Length"] = str(body.size)
        headers["Accept-Encoding"] = "identity"  # as aiobotocore sends it
        timeouts = self._get_request_timeout(request) or self._timeout
        https = split.scheme == "https"
        key = (split.scheme, split.hostname or "", split.port or (443 if https else 80))
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self._max_pool_connections)
        if https and self._tls is None:
            contexts = await anyio.to_thread.run_sync(self._build_ssl_contexts, None)
            self._tls = contexts[0]

        def exchange(connection: http.client.HTTPConnection) -> tuple[int, dict[str, str], bytes]:
            if connection.sock is None:
                _connect(connection, url)
            connection.sock.settimeout(timeouts.sock_read)
            return _exchange(connection, request.method, target, headers, body, url)

        for resend in (False, True):
            connection = self._take(key) or self._new(key, timeouts.sock_connect)
            try:
                status, response_headers, data = await self._in_thread(connection, exchange)
            except _Broken as broken:
                if not resend:
                    continue  # aiohttp's one resend of a PUT on a broken connection
                raise broken.error from broken.__cause__
            self._give(key, connection)
            response = AioAWSResponse(url, status, response_headers, _Read(data))
            await response.content
            return response
        raise AssertionError("unreachable")

    async def _in_thread(
        self,
        connection: http.client.HTTPConnection,
        work: Any,
    ) -> tuple[int, dict[str, str], bytes]:
        done = threading.Event()
        # An idle anyio worker thread keeps its last function until it gets another: through
        # this box, emptied once the call is over, that function holds no part buffer.
        box: list[Any] = [work, connection]

        def run() -> tuple[int, dict[str, str], bytes]:
            try:
                result: tuple[int, dict[str, str], bytes] = box[0](box[1])
                return result
            finally:
                done.set()

        try:
            return await anyio.to_thread.run_sync(
                run, abandon_on_cancel=True, limiter=self._threads
            )
        except BaseException:
            if not done.is_set():  # cancelled while the thread sends: stop it, then wait
                _shut(connection)
                await shielded(lambda: _ended(done), 5.0)
            connection.close()
            raise
        finally:
            box.clear()

    def _take(self, key: _Key) -> http.client.HTTPConnection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            since, connection = idle.pop()
            if now - since < IDLE:
                return connection
            connection.close()
        return None

    def _give(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        if connection.sock is None:  # the server said it would close it
            return
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self._max_pool_connections:
            connection.close()
            return
        idle.append((time.monotonic(), connection))

    def _new(self, key: _Key, connect_timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=self._tls
            )
        return http.client.HTTPConnection(host, port, timeout=connect_timeout)


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


def _connect(connection: http.client.HTTPConnection, url: str) -> None:
    """Open the connection, failing as aiobotocore fails to (never resent: aiohttp does not
    resend after a failed connect either)."""
    try:
        connection.connect()
    except TimeoutError as exc:
        raise ConnectTimeoutError(endpoint_url=url, error=exc) from exc
    except ssl.SSLError as exc:
        raise SSLError(endpoint_url=url, error=exc) from exc
    except OSError as exc:
        raise EndpointConnectionError(endpoint_url=url, error=exc) from exc


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
        raise _Broken(EndpointConnectionError(endpoint_url=url, error=exc)) from exc
    headers_in = {name.lower(): value for name, value in answer.getheaders()}
    return answer.status, headers_in, data


def _shut(connection: http.client.HTTPConnection) -> None:
    """Stop a send in another thread: its blocking call fails at once."""
    sock = connection.sock
    if sock is not None:
        # The plain socket's shutdown: SSLSocket's drops its SSL object under the thread.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


async def _ended(done: threading.Event) -> None:
    await anyio.to_thread.run_sync(done.wait, 5.0)
