"""Every S3 request: ``S3.call`` runs an operation with asyncup's retry policy.

Retries follow ``_core.retry`` (backoff with full jitter, an Uploader-wide retry quota)
whatever the client's botocore retry settings are; each attempt holds a request slot, is
bounded by a deadline of its own, and tells the adaptive limit (``limits``) how S3 answered.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from .._concurrency.deadlines import Deadlines
from .._core.config import TransferConfig
from .._core.retry import (
    Failure,
    RetryQuota,
    backoff,
    is_retryable,
    is_throttling,
    request_deadline,
)
from .._core.verify import StoreChecks
from . import lean
from .errors import describe
from .fast import Fast
from .limits import AdaptiveLimiter

log = logging.getLogger("asyncup")

Response = dict[str, Any]
"""An answer, as botocore parses it."""


class S3:
    """S3 operations on one client, each retried by ``TransferConfig``'s policy.

    An Uploader has one: its ``retry_quota`` (``_core.retry.RetryQuota``) and the adaptive limit
    of ``requests`` (``_s3.limits.AdaptiveLimiter``, when given) are shared by every upload
    running through it.
    """

    def __init__(
        self,
        client: Any,
        config: TransferConfig,
        *,
        requests: AdaptiveLimiter | None = None,
        fast: Fast | None = None,
    ) -> None:
        self._client = client
        self._fast = fast
        """A fast start's path (``start``): the client, None until then, is opened on need."""
        self.config = config
        self.retry_quota = RetryQuota()
        self._stores: dict[str | None, StoreChecks] = {}
        self.probing = anyio.Lock()
        """Held while the store is probed, so that one upload probes and the others wait."""
        self.requests = requests
        self._deadlines = Deadlines()
        if fast is not None:
            self.sends_from_files = True  # the client will be one asyncup makes
        else:
            from .client import sends_from_files  # with ``client``'s botocore, loaded already

            self.sends_from_files = sends_from_files(client)
        """Whether bodies may be sent as they are given (``client.sends_from_files``)."""

    def store(self, algorithm: str | None) -> StoreChecks:
        """Whether this client's store verifies ``algorithm``'s checksums (learnt once, by a
        probe). Each algorithm is learnt apart: a store may verify one and ignore another."""
        checks = self._stores.get(algorithm)
        if checks is None:
            checks = self._stores[algorithm] = StoreChecks()
        return checks

    @property
    def client(self) -> Any:
        """The aiobotocore client (a RuntimeError before a fast start has opened it)."""
        client = self._client if self._fast is None else self._fast.client
        if client is None:
            raise RuntimeError("no client yet: a fast start opens it when first needed")
        return client

    @property
    def lean(self) -> bool:
        """Whether writes go through the lean path: asyncup's own client (or a fast start's,
        which opens one), not with ``ASYNCUP_LEAN=0``."""
        if self._fast is not None and self._fast.client is None:
            return True
        return lean.of(self.client) is not None

    @property
    def endpoint_url(self) -> str | None:
        """The client's endpoint URL (botocore's, as it resolved it)."""
        if self._fast is not None and self._fast.client is None:
            return self._fast.endpoint_url
        url: str | None = getattr(self.client.meta, "endpoint_url", None)
        return url

    async def call(
        self,
        operation: str,
        params: Mapping[str, Any],
        *,
        limiter: anyio.CapacityLimiter | None = None,
        check: Callable[[Response], Awaitable[None] | None] | None = None,
        on_retry: Callable[[int, Failure], None] | None = None,
        pace: Callable[[], Awaitable[None]] | None = None,
        attempts: int | None = None,
    ) -> Response:
        """Run ``operation`` until it succeeds, fails for good, or runs out of attempts or of
        retry quota.

        ``pace`` is awaited before each attempt (the bandwidth cap) and ``limiter`` held for
        each attempt (not during backoff); ``check`` may reject a response by raising
        ``BadResponseError``, which counts as a retryable failure. Each attempt is bounded by
        ``_core.retry.request_deadline`` (from the time it holds its slot) and fails as a timeout
        past it. An AbortMultipartUpload retries without spending quota: it ends the billing
        and lightens the load, and ``max_attempts`` still bounds it. ``attempts`` overrides
        ``max_attempts`` for this call.
        """
        fast = self._fast
        if fast is not None and fast.client is None:
            method = fast.method(operation)
        else:
            method = lean.method(self.client, operation)
        deadline = self._deadline(params)
        spent = 0
        for attempt in itertools.count(1):
            try:
                if pace is not None:
                    await pace()
                if limiter is None:
                    response = await self._send(method, params, deadline)
                else:
                    await _take(limiter)
                    try:
                        response = await self._send(method, params, deadline)
                    finally:
                        limiter.release()
                if check is not None and (checking := check(response)) is not None:
                    await checking  # outside the request slot: it may hash the body
            except Exception as exc:
                failure = describe(exc)
                if attempt >= (attempts or self.config.max_attempts) or not is_retryable(failure):
                    raise
                why = failure.code or type(exc).__name__
                if operation != "abort_multipart_upload":
                    cost = self.retry_quota.take(failure)
                    if cost is None:
                        note = QUOTA_SPENT.format(attempt=attempt)
                        exc.add_note(note)
                        _log_failure(logging.WARNING, operation, params, attempt, why, note)
                        raise
                    spent += cost
                delay = backoff(attempt, self.config.retry_base_delay, self.config.retry_max_delay)
                _log_failure(
                    logging.INFO, operation, params, attempt, why, f"retrying in {delay:.2f}s"
                )
                if on_retry is not None:
                    on_retry(attempt, failure)
                await anyio.sleep(delay)
            else:
                self.retry_quota.refund(spent)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: Callable[..., Awaitable[Response]],
        params: Mapping[str, Any],
        deadline: float | None,
    ) -> Response:
        """One attempt, within ``deadline``; its answer tells the adaptive limit."""
        requests = self.requests
        epoch = 0 if requests is None else requests.epoch
        bound = self._deadlines.within(deadline)
        try:
            with bound:
                response = await method(**params)
        except Exception as exc:
            if bound.expired:
                raise TimeoutError(
                    f"no whole answer within {deadline:.1f} s (request_timeout)"
                ) from None
            if requests is not None and is_throttling(describe(exc)):
                requests.throttled(epoch)
            raise
        if requests is not None:
            requests.succeeded(epoch)
        return response

    def _deadline(self, params: Mapping[str, Any]) -> float | None:
        body = params.get("ContentLength")
        if not isinstance(body, int):  # asyncup's writes say it; a bare body is measured
            sent = params.get("Body")
            body = len(sent) if isinstance(sent, bytes | bytearray | memoryview) else 0
        parts = len(params.get("MultipartUpload", {}).get("Parts", ()))
        sharing = self.config.concurrency
        return request_deadline(self.config.request_timeout, body, sharing=sharing, parts=parts)


async def _take(limiter: anyio.CapacityLimiter) -> None:
    """A request slot: at once when one is free and nobody waits (``acquire`` would yield to
    the event loop even then, a turn of the loop per request), else in turn."""
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        await limiter.acquire()


QUOTA_SPENT = (
    "not retried after attempt {attempt}: the retry quota is spent (too many retries"
    " recently across this Uploader's uploads; successes earn it back)"
)


def _log_failure(
    level: int,
    operation: str,
    params: Mapping[str, Any],
    attempt: int,
    why: str,
    then: str,
) -> None:
    """One line for a failed attempt and what comes of it (a retry, or the quota's note)."""
    log.log(
        level,
        "%s s3://%s/%s part=%s attempt %d failed (%s); %s",
        operation,
        params.get("Bucket"),
        params.get("Key"),
        params.get("PartNumber", "-"),
        attempt,
        why,
        then,
    )
