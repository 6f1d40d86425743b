"""botocore's exceptions, mapped to asyncup's kinds of failure (one place).

``describe`` says what kind of failure an exception is (an S3 error code and status, a
timeout, a broken connection, an answer that cannot be right), which the retry policy
decides on; ``summarize`` is the one line messages show.
"""

from __future__ import annotations

import socket
import sys

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from .._core.errors import BadResponseError
from .._core.retry import Failure
from .payloads import source_shrank


def describe(exc: BaseException) -> Failure:
    """What kind of failure ``exc`` is, for the retry policy."""
    if source_shrank(exc):
        return Failure("other")  # the file ended inside a part: it will not grow back
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = error.get("Code") or None
        return Failure("http", code=code, status=int(status) if status else None)
    if isinstance(exc, ConnectTimeoutError):
        return Failure("timeout", sent=False)
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return Failure("timeout")
    if isinstance(exc, SSLError):
        # A certificate that fails now fails on every attempt; both HTTP layers raise it from
        # the handshake only (a TLS error once connected is a broken connection).
        return Failure("other", sent=False)
    if isinstance(exc, EndpointConnectionError):
        return Failure("connection", sent=_sent_before(exc.kwargs.get("error")))
    if isinstance(exc, HTTPClientError | BotocoreConnectionError | ConnectionError):
        return Failure("connection")
    if isinstance(exc, BadResponseError):
        return Failure("integrity")
    return Failure("other")


def _sent_before(error: object) -> bool:
    """Whether the request behind an ``EndpointConnectionError`` may have reached the server.
    aiohttp raises it for a connection that could not be made (``ClientConnectorError``, a
    name that did not resolve) and for one that broke mid-request (``ClientOSError``); the
    threaded sender only for one that could not be made (an ``OSError`` from connecting)."""
    if isinstance(error, socket.gaierror):
        return False
    aiohttp = sys.modules.get("aiohttp")  # not imported: none of its errors can be raised
    if aiohttp is not None and isinstance(error, aiohttp.ClientConnectorError):
        return False
    return not isinstance(error, OSError) or (
        aiohttp is not None and isinstance(error, aiohttp.ClientError)
    )


def error_code(exc: BaseException) -> str | None:
    return describe(exc).code


def summarize(exc: BaseException) -> str:
    """One line about ``exc`` for messages: the S3 error code comes first when there is one,
    and the notes asyncup added (why it was not retried) come last."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        message = error.get("Message", "")
        text = f"{code}: {message}" if message else str(code)
    else:
        text = f"{type(exc).__name__}: {exc}"
    notes = getattr(exc, "__notes__", None) or []
    return "; ".join([text, *(str(note) for note in notes)])
