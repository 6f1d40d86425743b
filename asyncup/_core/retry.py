"""Retry decisions: pure functions of what failed, no I/O.

``_s3.describe`` turns whatever the S3 client raised into a ``Failure``; ``is_retryable``
decides from its fields alone (never from message text), and ``backoff`` picks the pause:
exponential with full jitter, as the AWS SDKs' standard retry mode does.

Two bounds keep retries from making things worse. ``RetryQuota`` is the standard mode's
token bucket: each retry spends tokens and each success earns some back, so a storm of
failures that outlasts the quota stops being retried instead of multiplying the load.
``request_deadline`` bounds each request as a whole, where the client's read timeout only
bounds the wait for each next byte (a server trickling its answer never trips it).
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
    sent: bool = True
    """Whether the request may have reached the server; False when no connection was made
    (refused, a name that did not resolve, a connect timeout, a failed TLS handshake)."""


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


def is_throttling(failure: Failure) -> bool:
    """Whether S3 asked for fewer requests (SlowDown, 503, 429...): the signal that makes an
    Uploader lower its requests in flight (``_s3.limits``)."""
    if failure.kind != "http":
        return False
    return failure.code in THROTTLING_CODES or failure.status in (429, 503)


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or _rng).uniform(0.0, ceiling)


_rng = random.Random()


# The AWS SDKs' standard retry mode (botocore's ``retryhandler``/``standard`` constants).
RETRY_QUOTA = 500
RETRY_COST = 5
TIMEOUT_RETRY_COST = 10
NO_RETRY_REFUND = 1


def retry_cost(failure: Failure) -> int:
    """Tokens a retry after ``failure`` spends: timeouts and broken connections cost double,
    as in the AWS SDKs (a server that does not answer at all is in worse shape than one that
    answers an error)."""
    return TIMEOUT_RETRY_COST if failure.kind in ("timeout", "connection") else RETRY_COST


@dataclass(slots=True)
class RetryQuota:
    """The retry budget of one Uploader, shared by all its uploads: a token bucket.

    A retry takes ``retry_cost(failure)`` tokens, or is refused when fewer are left; a request
    that succeeds gives back what its retries took, or ``NO_RETRY_REFUND`` when it needed none
    (botocore gives back only its last retry's cost; refunding them all means a storm that
    every request outlives costs nothing in the end, while requests that fail for good drain
    the bucket). With the SDKs' numbers, 100 retries may be outstanding at once before retries
    stop, however many uploads share the Uploader. Example::

        quota = RetryQuota()
        cost = quota.take(Failure("http", code="SlowDown", status=503))  # 5, or None: give up
        quota.refund(cost or 0)  # the retried request succeeded
    """

    capacity: int = RETRY_QUOTA
    available: int = RETRY_QUOTA

    def take(self, failure: Failure) -> int | None:
        """The tokens taken for one more retry after ``failure``; None when the quota cannot
        pay for it (then the failure is final)."""
        cost = retry_cost(failure)
        if cost > self.available:
            return None
        self.available -= cost
        return cost

    def refund(self, spent: int) -> None:
        """A request succeeded; its retries had taken ``spent`` tokens (0: it had none)."""
        self.available = min(self.capacity, self.available + (spent or NO_RETRY_REFUND))


# The slowest link a request's body is allowed to crawl over: 512 kbit/s, shared by every
# request in flight. Slower than this, a request is taken as stuck.
MIN_LINK_RATE = 64 * 1024
# S3 may take minutes to complete a large upload (sending whitespace meanwhile); the time
# grows with the parts it assembles.
COMPLETE_SECONDS_PER_PART = 0.05


def request_deadline(
    floor: float | None, body_bytes: int = 0, *, sharing: int = 1, parts: int = 0
) -> float | None:
    """Seconds one request may take in all before it is cut and retried as a timeout.

    ``floor`` (``TransferConfig.request_timeout``) is the time any request may take on its
    own; on top of it a request carrying ``body_bytes`` gets the time to send them at
    ``MIN_LINK_RATE`` shared by ``sharing`` requests in flight, and a Complete of ``parts``
    parts ``COMPLETE_SECONDS_PER_PART`` each. So the deadline never cuts a part that moves,
    however large, on a slow but live link, and still ends a request that only pretends to
    (a trickled answer, a server that stopped reading). None when ``floor`` is None: no limit.

        >>> request_deadline(60.0, 8 * 2**20, sharing=10)  # an 8 MiB part, 10 in flight
        1340.0
        >>> request_deadline(60.0, parts=10_000)  # a Complete of 10,000 parts
        560.0
    """
    if floor is None:
        return None
    return floor + body_bytes * sharing / MIN_LINK_RATE + parts * COMPLETE_SECONDS_PER_PART
