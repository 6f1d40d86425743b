"""The aiohttp recipe under load: many clients streaming at once, some hanging up mid-body.
What is asserted is asyncup's accounting and that nothing is lost or left; the process's
RSS is measured in a benchmark (benchmarks/scripts/web_memory.py), not here."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import asyncup
from examples import aiohttp_app
from tests.conftest import MiB, random_bytes
from tests.pipeline.test_many import LiveBuffers
from tests.pipeline.test_web import serve_aiohttp

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART, multipart_threshold=PART, concurrency=4, queue_size=2
)
CLIENTS = 60


async def body(data: bytes, hang_up: bool) -> AsyncIterator[bytes]:
    stop = len(data) // 2 if hang_up else len(data)
    for start in range(0, stop, 256 * 1024):
        yield data[start : min(stop, start + 256 * 1024)]
    if hang_up:
        raise ConnectionAbortedError("the client hangs up mid-body")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_many_streaming_clients_some_hanging_up(
    endpoint: str, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(19)
    sizes = [rng.randrange(100 * 1024, 12 * MiB) for _ in range(CLIENTS)]
    hang_ups = {n for n in range(CLIENTS) if rng.random() < 0.15} | {0, 1}
    live = LiveBuffers(monkeypatch)
    answers: dict[int, int] = {}
    app = aiohttp_app.make_app(bucket, endpoint_url=endpoint, config=CONFIG)  # asyncup's client
    async with serve_aiohttp(app) as url, aiohttp.ClientSession() as http:

        async def put(n: int) -> None:
            data = random_bytes(sizes[n], seed=n)
            try:
                async with http.put(
                    f"{url}/objects/k{n}", data=body(data, n in hang_ups)
                ) as answer:
                    answers[n] = answer.status
            except (aiohttp.ClientError, ConnectionAbortedError):
                assert n in hang_ups

        await asyncio.gather(*(put(n) for n in range(CLIENTS)))
    # Every client that sent its whole body got its object, whole; the others left nothing.
    assert {n for n, status in answers.items() if status == 200} == set(range(CLIENTS)) - hang_ups
    listing = await s3.list_objects_v2(Bucket=bucket)
    stored = {entry["Key"]: entry["Size"] for entry in listing.get("Contents", [])}
    assert stored == {f"k{n}": sizes[n] for n in range(CLIENTS) if n not in hang_ups}
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
    # One budget for all sixty: never more part buffers than it, and none left once the
    # load is gone -- without a garbage collection: a hung-up client's buffers must not wait
    # in a reference cycle for the cyclic GC.
    assert 0 < live.peak <= CONFIG.buffer_budget
    assert live.now == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_the_recipe_reads_little_of_a_waiting_body_ahead(endpoint: str, bucket: str) -> None:
    """A request whose upload waits for the budget holds what aiohttp read of its body ahead:
    up to twice the app's read_bufsize (aiohttp's default, 64 KiB, made it ~0.7 MiB a request
    with the socket read beyond; issue 19)."""
    app = aiohttp_app.make_app(bucket, endpoint_url=endpoint, config=CONFIG)

    async def limits(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(request.content.get_read_buffer_limits())

    app.router.add_post("/limits", limits)
    async with (
        serve_aiohttp(app) as url,
        aiohttp.ClientSession() as http,
        http.post(f"{url}/limits", data=b"x") as answer,
    ):
        _, high = await answer.json()
    assert high <= 64 * 1024
