"""botocore's exceptions, mapped to asyncup's kinds of failure (one place).

``describe`` says what kind of failure an exception is (an S3 error code and status, a
timeout, a broken connection, an answer that cannot be right), which the retry policy
decides on; ``summarize`` is the one line messages show.
"""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
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
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | TimeoutError):
        return Failure("timeout")
    if isinstance(exc, SSLError):
        return Failure("other")  # a certificate that fails now fails on every attempt
    if isinstance(exc, HTTPClientError | BotocoreConnectionError | ConnectionError):
        return Failure("connection")
    if isinstance(exc, BadResponseError):
        return Failure("integrity")
    return Failure("other")


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
