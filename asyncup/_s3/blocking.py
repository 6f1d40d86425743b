"""A request on a blocking connection, in a worker thread (``threaded``'s large parts):
connect, send the part, read the whole answer, and stop at once when the event loop says so
(``Call``), failing with botocore's exception for each failure, as aiohttp would.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import select
import socket
import ssl
import threading

from botocore.exceptions import (
    ConnectionClosedError,
    HTTPClientError,
    ReadTimeoutError,
)

from .._core.errors import ShortSourceError
from .payloads import PartPayload, RangePayload, send_blocking
from .pool import Answer, connect_errors


class State(enum.Enum):
    WAITING = "not started yet"
    CONNECTING = "connecting, no socket yet"
    SENDING = "using its socket"
    DONE = "done"


class Call:
    """One request's thread, seen from the event loop. Once ``stop`` is called, no byte goes
    out: the thread checks as it starts and as it opens each socket, and a socket already
    open is shut down. Whoever comes second (``stop`` or ``finish``) closes the connection:
    never the loop while the thread may still use its socket."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = State.WAITING
        self._stopped = False
        self._sock: socket.socket | None = None

    def publish(self, sock: socket.socket | None) -> None:
        """(thread) Starting (None), or about to use ``sock``; raises once stopped."""
        with self._lock:
            if self._stopped:
                raise Stopped
            self._state = State.CONNECTING if sock is None else State.SENDING
            self._sock = sock

    def finish(self) -> bool:
        """(thread) Done; True if stopped meanwhile (the thread then closes the connection)."""
        with self._lock:
            self._state = State.DONE
            return self._stopped

    def stop(self) -> State:
        """(loop) Stop the thread; what it was doing. A socket in use is shut down, so the
        thread's blocking call fails at once."""
        with self._lock:
            self._stopped = True
            state = self._state
            sock = self._sock if state is State.SENDING else None
        if sock is not None:
            # The plain socket's shutdown: SSLSocket's drops its SSL object under the thread.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        return state


class Stopped(Exception):
    """The call was cancelled before the thread sent anything."""


class Broken(Exception):
    """The connection broke after it was made: ``error`` is what to raise unless resent."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def connect(
    connection: http.client.HTTPConnection,
    call: Call,
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


def is_open(connection: http.client.HTTPConnection) -> bool:
    """Whether asyncup has not closed ``connection`` (nor http.client, after an answer that
    said ``Connection: close``); no system call."""
    return connection.sock is not None


def usable(connection: http.client.HTTPConnection) -> bool:
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


def exchange(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    headers: dict[str, str],
    body: PartPayload | RangePayload,
    url: str,
) -> Answer:
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
        raise Broken(ConnectionClosedError(endpoint_url=url, error=exc)) from exc
    except http.client.HTTPException as exc:  # a malformed or cut answer
        raise ConnectionClosedError(endpoint_url=url, error=exc) from exc
    except OSError as exc:
        if isinstance(exc, ShortSourceError):
            raise HTTPClientError(error=exc) from exc
        # Broken once connected: some of the request may have reached the server.
        raise Broken(ConnectionClosedError(endpoint_url=url, error=exc)) from exc
    except Exception as exc:  # as aiobotocore wraps whatever else the HTTP client raises
        raise HTTPClientError(error=exc) from exc
    headers_in = {name.lower(): value for name, value in answer.getheaders()}
    return answer.status, headers_in, data
