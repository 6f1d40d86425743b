"""Retry decisions: pure functions of what failed, no I/O.

``_s3.describe`` turns whatever the S3 client raised into a ``Failure``; ``is_retryable``
decides from its fields alone (never from message text), and ``backoff`` picks the pause:
exponential with full jitter, as the AWS SDKs' standard retry mode does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

FailureKind = Literal["http", "connection", "timeout", "integrity", "other"]

THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "IDPCommunicationError",
    }
)
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
# The body S3 received is not the body that was sent (it was damaged on the way): the bytes
# in hand are still good, so sending them again is the cure. (The AWS SDKs do not retry
# these; asyncup does, within max_attempts, since it holds the part and its digest.)
CORRUPTION_CODES = frozenset(
    {"BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"}
)


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one request, in terms a retry decision can use."""

    kind: FailureKind
    code: str | None = None
    status: int | None = None


def is_retryable(failure: Failure) -> bool:
    """Whether another attempt of the same request may succeed."""
    if failure.kind in ("connection", "timeout", "integrity"):
        return True
    if failure.kind != "http":
        return False
    if failure.code in THROTTLING_CODES or failure.code in TRANSIENT_CODES:
        return True
    if failure.code in CORRUPTION_CODES:
        return True
    if failure.status == 429:
        return True
    # 4xx are the caller's mistakes (AccessDenied, NoSuchUpload, EntityTooSmall, ...).
    return failure.status in TRANSIENT_STATUSES


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or _rng).uniform(0.0, ceiling)


_rng = random.Random()
