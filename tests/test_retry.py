"""Retry decisions and backoff: pure, no server."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from asyncup._retry import Failure, backoff, is_retryable
from asyncup._s3 import BadResponseError, describe


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "UploadPart",
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("ServiceUnavailable", 503),
        ("Throttling", 400),
        ("RequestLimitExceeded", 400),
        ("InternalError", 500),
        ("BadGateway", 502),
        ("GatewayTimeout", 504),
        ("RequestTimeout", 400),
        ("TooManyRequests", 429),
        ("BadDigest", 400),
        ("XAmzContentSHA256Mismatch", 400),
    ],
)
def test_transient_s3_errors_are_retried(code: str, status: int) -> None:
    assert is_retryable(describe(client_error(code, status)))


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDenied", 403),
        ("NoSuchBucket", 404),
        ("NoSuchUpload", 404),
        ("InvalidArgument", 400),
        ("EntityTooSmall", 400),
        ("EntityTooLarge", 400),
        ("InvalidPart", 400),
        ("InvalidPartOrder", 400),
        ("InvalidDigest", 400),
        ("InvalidRequest", 400),
    ],
)
def test_client_mistakes_are_not_retried(code: str, status: int) -> None:
    assert not is_retryable(describe(client_error(code, status)))


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionClosedError(endpoint_url="http://x"),
        EndpointConnectionError(endpoint_url="http://x"),
        ReadTimeoutError(endpoint_url="http://x"),
        ConnectionResetError(),
        BadResponseError("no ETag"),
    ],
)
def test_connection_failures_timeouts_and_bad_answers_are_retried(exc: Exception) -> None:
    assert is_retryable(describe(exc))


def test_unknown_exceptions_are_not_retried() -> None:
    assert not is_retryable(describe(ValueError("bug")))
    assert not is_retryable(Failure("other"))


def test_backoff_is_full_jitter_capped() -> None:
    rng = random.Random(7)
    for attempt in range(1, 30):
        ceiling = min(20.0, 0.1 * 2 ** (attempt - 1))
        delays = [backoff(attempt, 0.1, 20.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter: spread over the whole range, not clustered at the ceiling.
        assert min(delays) < ceiling * 0.2 < ceiling * 0.8 < max(delays)


def test_tls_failures_are_not_retried() -> None:
    from botocore.exceptions import SSLError

    assert not is_retryable(describe(SSLError(endpoint_url="https://x", error="bad cert")))
