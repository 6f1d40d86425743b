"""Retry decisions and backoff: pure, no server."""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import replace

import anyio
import pytest
from aiohttp import ClientOSError
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)

from asyncup import TransferConfig
from asyncup._core.aimd import Aimd
from asyncup._core.errors import BadResponseError
from asyncup._core.retry import (
    Failure,
    RetryQuota,
    backoff,
    is_retryable,
    is_throttling,
    request_deadline,
)
from asyncup._s3.calls import S3
from asyncup._s3.errors import describe
from asyncup._s3.limits import AdaptiveLimiter


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


def _refused() -> Exception:
    """aiohttp's error for a connection that could not be made (its fields do not matter)."""
    import aiohttp

    return aiohttp.ClientConnectorError.__new__(aiohttp.ClientConnectorError)


@pytest.mark.parametrize(
    ("exc", "sent"),
    [
        (EndpointConnectionError(endpoint_url="http://x", error=_refused()), False),
        (EndpointConnectionError(endpoint_url="http://x", error=ConnectionRefusedError()), False),
        (EndpointConnectionError(endpoint_url="http://x", error=socket.gaierror(-2, "no")), False),
        (ConnectTimeoutError(endpoint_url="http://x"), False),
        (SSLError(endpoint_url="https://x", error="handshake"), False),
        (EndpointConnectionError(endpoint_url="http://x", error=ClientOSError()), True),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ConnectionClosedError(endpoint_url="http://x"), True),
        (ReadTimeoutError(endpoint_url="http://x"), True),
        (client_error("SlowDown", 503), True),
    ],
)
def test_failures_say_whether_the_request_may_have_reached_the_server(
    exc: Exception, sent: bool
) -> None:
    """A connection that could not be made sent nothing: no "may exist" for it."""
    assert describe(exc).sent is sent


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


# --- Throttling, the retry quota and the request deadline (pure) ---


@pytest.mark.parametrize(
    ("code", "status"),
    [("SlowDown", 503), ("ServiceUnavailable", 503), ("Throttling", 400), ("X", 429)],
)
def test_throttling_is_recognised_by_code_or_status(code: str, status: int) -> None:
    assert is_throttling(describe(client_error(code, status)))


@pytest.mark.parametrize(
    "failure",
    [
        Failure("http", code="InternalError", status=500),
        Failure("http", code="AccessDenied", status=403),
        Failure("timeout"),
        Failure("connection"),
    ],
)
def test_other_failures_are_not_throttling(failure: Failure) -> None:
    assert not is_throttling(failure)


SLOW_DOWN = Failure("http", code="SlowDown", status=503)


def test_the_quota_pays_for_100_retries_then_refuses() -> None:
    quota = RetryQuota()
    costs = [quota.take(SLOW_DOWN) for _ in range(100)]
    assert costs == [5] * 100
    assert quota.take(SLOW_DOWN) is None
    assert quota.available == 0


def test_timeouts_and_connection_errors_cost_double() -> None:
    quota = RetryQuota()
    assert quota.take(Failure("timeout")) == 10
    assert quota.take(Failure("connection")) == 10
    assert quota.available == 480
    quota = RetryQuota(available=9)
    assert quota.take(Failure("timeout")) is None  # refused: nothing is taken
    assert quota.available == 9
    assert quota.take(SLOW_DOWN) == 5


def test_a_success_refunds_what_its_retries_took_or_one() -> None:
    quota = RetryQuota(available=100)
    quota.refund(0)  # succeeded at once
    assert quota.available == 101
    spent = sum(cost or 0 for cost in (quota.take(SLOW_DOWN), quota.take(Failure("timeout"))))
    assert quota.available == 101 - 15
    quota.refund(spent)
    assert quota.available == 101
    quota = RetryQuota(available=499)
    quota.refund(10)
    assert quota.available == 500  # never beyond the capacity


def test_the_request_deadline_grows_with_the_body_the_sharing_and_the_parts() -> None:
    assert request_deadline(None, 8 * 2**20, sharing=10, parts=5) is None
    assert request_deadline(60.0) == 60.0
    # The body's time at 64 KiB/s shared by the requests in flight.
    assert request_deadline(60.0, 64 * 1024) == 61.0
    assert request_deadline(60.0, 64 * 1024, sharing=10) == 70.0
    assert request_deadline(60.0, 8 * 2**20, sharing=10) == 60.0 + 1280.0
    # Complete: S3's time to assemble the parts.
    assert request_deadline(1.0, parts=10_000) == 1.0 + 500.0


# --- AIMD (pure) ---


def test_a_burst_of_throttled_answers_halves_the_limit_once() -> None:
    aimd = Aimd(ceiling=10)
    sent = aimd.epoch
    assert aimd.throttled(sent) is True
    assert aimd.limit == 5
    # The other requests in flight were sent before the decrease: they do not count.
    assert [aimd.throttled(sent) for _ in range(9)] == [False] * 9
    assert aimd.limit == 5


def test_throttling_that_goes_on_halves_down_to_one() -> None:
    aimd = Aimd(ceiling=10)
    limits = []
    for _ in range(5):
        aimd.throttled(aimd.epoch)  # a request sent under the current limit
        limits.append(aimd.limit)
    assert limits == [5, 2, 1, 1, 1]


def test_successes_raise_the_limit_by_one_per_round_up_to_the_ceiling() -> None:
    aimd = Aimd(ceiling=4)
    for _ in range(3):
        aimd.throttled(aimd.epoch)
    assert aimd.limit == 1
    raised_after = []
    for n in range(1, 20):
        if aimd.succeeded(aimd.epoch):
            raised_after.append(n)
    assert raised_after == [1, 3, 6]  # +1 after 1, then 2, then 3 successes: 1 -> 4
    assert aimd.limit == 4


def test_successes_of_requests_sent_before_a_decrease_do_not_raise_it() -> None:
    aimd = Aimd(ceiling=4)
    before = aimd.epoch
    aimd.throttled(before)
    assert aimd.limit == 2
    assert [aimd.succeeded(before) for _ in range(10)] == [False] * 10
    assert aimd.limit == 2
    assert [aimd.succeeded(aimd.epoch) for _ in range(2)] == [False, True]
    assert aimd.limit == 3


def test_a_throttle_resets_the_count_of_successes() -> None:
    aimd = Aimd(ceiling=8)
    aimd.throttled(aimd.epoch)  # 4
    for _ in range(3):
        aimd.succeeded(aimd.epoch)
    aimd.throttled(aimd.epoch)  # 2: the 3 successes towards 5 are forgotten
    assert aimd.limit == 2
    assert aimd.succeeded(aimd.epoch) is False
    assert aimd.succeeded(aimd.epoch) is True
    assert aimd.limit == 3


def test_a_ceiling_of_one_never_moves() -> None:
    aimd = Aimd(ceiling=1)
    assert aimd.throttled(aimd.epoch) is False
    assert aimd.succeeded(aimd.epoch) is False
    assert aimd.limit == 1
    with pytest.raises(ValueError, match="ceiling"):
        Aimd(ceiling=0)


async def test_a_lowered_limiter_lets_the_holders_finish_and_admits_fewer() -> None:
    requests = AdaptiveLimiter(4)
    slots = requests.slots
    in_flight = 0
    peak_of_newcomers = 0  # requests in flight when one sent after the decrease starts

    async def request(newcomer: bool) -> None:
        nonlocal in_flight, peak_of_newcomers
        async with slots:
            in_flight += 1
            if newcomer:
                peak_of_newcomers = max(peak_of_newcomers, in_flight)
            await anyio.sleep(0.02)
            in_flight -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(request, False)
        await anyio.sleep(0.005)
        assert slots.borrowed_tokens == 4
        requests.throttled(requests.epoch)
        assert (slots.total_tokens, slots.borrowed_tokens) == (2, 4)  # holders keep theirs
        for _ in range(8):
            tg.start_soon(request, True)
    assert peak_of_newcomers == 2


# --- S3.call with a fake client (no server) ---


class FakeClient:
    """Answers each upload_part / abort_multipart_upload with the next scripted outcome."""

    def __init__(self, *outcomes: object, forever: object = None) -> None:
        self.outcomes = list(outcomes)
        self.forever = forever
        self.calls = 0

    async def _answer(self, **params: object) -> dict[str, object]:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else self.forever
        if outcome == "hang":
            await anyio.sleep(3600)
        if isinstance(outcome, BaseException):
            raise outcome
        return {"ETag": '"x"'}

    upload_part = _answer
    abort_multipart_upload = _answer


NO_WAIT = TransferConfig(max_attempts=1000, retry_base_delay=0, retry_max_delay=0)


async def test_s3_call_stops_retrying_when_the_quota_is_spent() -> None:
    s3 = S3(FakeClient(forever=client_error("SlowDown", 503)), NO_WAIT)
    with pytest.raises(ClientError) as caught:
        await s3.call("upload_part", {"PartNumber": 1})
    assert s3.client.calls == 1 + 100
    assert any("retry quota is spent" in note for note in caught.value.__notes__)
    # The quota is the S3's (the Uploader's): another request gets no retry either.
    s3.client.outcomes = [client_error("SlowDown", 503)]
    s3.client.forever = None
    with pytest.raises(ClientError):
        await s3.call("upload_part", {"PartNumber": 2})
    assert s3.client.calls == 1 + 100 + 1


async def test_s3_call_refunds_a_success() -> None:
    s3 = S3(FakeClient(client_error("SlowDown", 503), client_error("InternalError", 500)), NO_WAIT)
    await s3.call("upload_part", {})
    assert s3.client.calls == 3
    assert s3.retry_quota.available == 500
    s3.retry_quota.available = 10
    await s3.call("upload_part", {})
    assert s3.retry_quota.available == 11


async def test_s3_call_aborts_without_spending_quota() -> None:
    s3 = S3(FakeClient(*[client_error("SlowDown", 503)] * 3), NO_WAIT)
    s3.retry_quota.available = 0
    await s3.call("abort_multipart_upload", {})
    assert s3.client.calls == 4


async def test_s3_call_cuts_an_attempt_at_its_deadline_and_retries_it_as_a_timeout() -> None:
    config = TransferConfig(request_timeout=0.2, retry_base_delay=0, retry_max_delay=0)
    s3 = S3(FakeClient("hang"), config)
    seen: list[Failure] = []
    with anyio.fail_after(5):
        await s3.call("upload_part", {}, on_retry=lambda _, failure: seen.append(failure))
    assert seen == [Failure("timeout")]
    assert s3.retry_quota.available == 500  # the 10 it took came back with the success
    s3 = S3(FakeClient("hang"), replace(config, max_attempts=1))
    with pytest.raises(TimeoutError, match=r"no whole answer within 0\.2 s \(request_timeout\)"):
        await s3.call("upload_part", {})


async def test_s3_call_reports_throttling_and_successes_to_the_adaptive_limit() -> None:
    requests = AdaptiveLimiter(4)
    s3 = S3(FakeClient(*[client_error("SlowDown", 503)] * 3), NO_WAIT, requests=requests)
    await s3.call("upload_part", {}, limiter=requests.slots)
    # Each retry was sent after the decrease before it: 4 -> 2 -> 1 -> 1, then one success.
    assert requests.slots.total_tokens == 2
    for _ in range(2):
        await s3.call("upload_part", {}, limiter=requests.slots)
    assert requests.slots.total_tokens == 3


async def test_s3_call_takes_a_free_request_slot_without_a_turn_of_the_event_loop() -> None:
    """A free slot is taken at once (anyio's ``acquire`` yields even then: a turn of the loop
    per request); a busy one is waited for in turn, and given back after the request."""
    limiter = anyio.CapacityLimiter(1)
    s3 = S3(FakeClient(), NO_WAIT)
    turned = anyio.Event()
    asyncio.get_running_loop().call_soon(turned.set)
    await s3.call("upload_part", {}, limiter=limiter)
    assert not turned.is_set()
    assert limiter.borrowed_tokens == 0
    order: list[str] = []

    async def request(name: str) -> None:
        await s3.call("upload_part", {}, limiter=limiter)
        order.append(name)

    async with anyio.create_task_group() as tg:
        await limiter.acquire()
        tg.start_soon(request, "waiting")
        await anyio.wait_all_tasks_blocked()
        limiter.release()
        tg.start_soon(request, "later")  # a slot is free again, but someone waits for it
    assert order == ["waiting", "later"]
    assert limiter.borrowed_tokens == 0


@pytest.mark.parametrize("value", [0, -1, True, "60"])
def test_request_timeout_must_be_none_or_a_positive_number(value: object) -> None:
    with pytest.raises(ValueError, match="request_timeout"):
        TransferConfig(request_timeout=value)  # type: ignore[arg-type]
    assert TransferConfig(request_timeout=None).request_timeout is None
    assert TransferConfig().request_timeout == 60.0
