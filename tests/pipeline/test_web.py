"""The web-backend recipes in examples/, served for real on 127.0.0.1: aiohttp and Starlette
(under uvicorn) streaming request bodies into S3 through one Uploader each."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web

import asyncup
import asyncup._pipeline.job
from examples import aiohttp_app, starlette_app
from tests.conftest import MiB, assert_nothing_left, assert_object, random_bytes
from tests.faultproxy import FaultProxy
from tests.pipeline.test_many import LiveBuffers

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART, multipart_threshold=PART, concurrency=4, queue_size=2
)
FRAMEWORKS = ["aiohttp", "starlette"]
Serve = Callable[..., Any]


@asynccontextmanager
async def serve_aiohttp(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve_starlette(app: Any) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def app_server(framework: str, bucket: str, client: Any, config: asyncup.TransferConfig) -> Any:
    if framework == "aiohttp":
        return serve_aiohttp(aiohttp_app.make_app(bucket, client=client, config=config))
    return serve_starlette(starlette_app.make_app(bucket, client=client, config=config))


async def chunks(data: bytes, size: int = 100_003) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_request_bodies_stream_into_s3(framework: str, s3: Any, bucket: str) -> None:
    streamed = random_bytes(2 * PART + 11, seed=1)
    whole = random_bytes(1000, seed=2)
    async with (
        app_server(framework, bucket, s3, CONFIG) as url,
        aiohttp.ClientSession() as http,
    ):
        # Unknown length (chunked transfer encoding), then a plain Content-Length body.
        async with http.put(f"{url}/objects/a/streamed", data=chunks(streamed)) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["parts"] == 3
        async with http.put(
            f"{url}/objects/whole", data=whole, headers={"Content-Type": "text/x-whole"}
        ) as response:
            assert response.status == 200, await response.text()
    await assert_object(s3, bucket, "a/streamed", streamed, PART)
    await assert_object(s3, bucket, "whole", whole, None)
    head = await s3.head_object(Bucket=bucket, Key="whole")
    assert head["ContentType"] == "text/x-whole"


def start_body(port: int, key: str, length: int) -> socket.socket:
    """A raw client that announces ``length`` body bytes; the test decides how many to send."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"PUT /objects/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    return sock


async def wait_for(condition: Callable[[], Any], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_client_that_disconnects_mid_body_leaves_nothing_and_the_server_goes_on(
    framework: str, proxy: FaultProxy, proxied: Any, s3: Any, bucket: str
) -> None:
    async with app_server(framework, bucket, proxied, CONFIG) as url:
        port = int(url.rsplit(":", 1)[1])
        sock = start_body(port, "gone", 50 * MiB)
        await asyncio.to_thread(sock.sendall, random_bytes(2 * PART + 5))
        await proxy.seen["UploadPart"].wait()  # the multipart upload is under way ...
        sock.close()  # ... and the client goes away

        async def aborted() -> bool:
            if proxy.counts["AbortMultipartUpload"] == 0:
                return False
            listing = await s3.list_multipart_uploads(Bucket=bucket)
            return not listing.get("Uploads")

        await wait_for(aborted)
        await assert_nothing_left(s3, bucket, "gone")
        async with (
            aiohttp.ClientSession() as http,
            http.put(f"{url}/objects/after", data=b"still serving") as response,
        ):
            assert response.status == 200
    await assert_object(s3, bucket, "after", b"still serving", None)


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_twenty_concurrent_uploads_share_one_budget(
    framework: str,
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live = LiveBuffers(monkeypatch)
    proxy.delay("UploadPart", 0.05)
    bodies = [random_bytes(PART + 1000 * i, seed=i) for i in range(20)]
    async with (
        app_server(framework, bucket, proxied, CONFIG) as url,
        aiohttp.ClientSession() as http,
    ):

        async def put(i: int) -> None:
            async with http.put(f"{url}/objects/k{i}", data=chunks(bodies[i])) as response:
                assert response.status == 200, await response.text()

        await asyncio.gather(*(put(i) for i in range(20)))
    assert proxy.max_writes_in_flight == CONFIG.concurrency
    assert live.peak <= CONFIG.buffer_budget
    for i in (0, 7, 19):
        await assert_object(s3, bucket, f"k{i}", bodies[i], PART)


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_slow_s3_pushes_back_on_the_clients_socket(
    framework: str, proxy: FaultProxy, proxied_short: Any, s3: Any, bucket: str
) -> None:
    proxy.delay("UploadPart", 30)  # S3 takes the first part and never answers in time
    # While the budget is full asyncup does not read the socket, so it learns of the client's
    # departure only when the stuck part fails (read timeouts): two attempts keep that short.
    config = asyncup.TransferConfig(
        part_size=PART, concurrency=1, queue_size=0, max_attempts=2, retry_base_delay=0.01
    )
    body = 96 * MiB
    async with app_server(framework, bucket, proxied_short, config) as url:
        sock = start_body(int(url.rsplit(":", 1)[1]), "pushed-back", body)
        sock.setblocking(False)
        chunk = b"\0" * (256 * 1024)
        sent = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and sent < body:
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                await asyncio.sleep(0.02)
        # One part in asyncup's buffer, plus the kernel's and the framework's buffers: the
        # client is held back long before it could send its 96 MiB.
        assert PART < sent < 40 * MiB
        sock.close()

        async def aborted() -> bool:
            listing = await s3.list_multipart_uploads(Bucket=bucket)
            return proxy.counts["AbortMultipartUpload"] > 0 and not listing.get("Uploads")

        await wait_for(aborted)
    await assert_nothing_left(s3, bucket, "pushed-back")


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_direct_upload_endpoints(framework: str, s3: Any, bucket: str) -> None:
    """The four direct-upload endpoints and the page, as the browser client uses them (the
    browser itself: tests/scaleout/test_direct_browser.py)."""
    data = random_bytes(PART + 4321, seed=9)

    def crc32(body: bytes) -> str:
        return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()

    async with (
        app_server(framework, bucket, s3, CONFIG) as url,
        aiohttp.ClientSession() as http,
    ):

        async def call(action: str, body: Any) -> tuple[int, Any]:
            async with http.post(f"{url}/direct/{action}", json=body) as answer:
                return answer.status, await answer.json()

        for name, kind in (("", "text/html"), ("asyncup-direct.js", "javascript")):
            async with http.get(f"{url}/direct/{name}") as page:
                assert page.status == 200
                assert kind in page.headers["Content-Type"]
        status, upload = await call("begin", {"key": "d/a.bin", "size": len(data)})
        assert status == 200, upload
        assert (upload["part_count"], upload["checksum_algorithm"]) == (2, "CRC32")
        pieces = {1: data[:PART], 2: data[PART:]}
        status, urls = await call(
            "urls", {"upload_id": upload["upload_id"], "checksums": {"1": crc32(pieces[1])}}
        )
        assert status == 200, urls
        assert [p["number"] for p in urls["parts"]] == [1]  # only the parts it has sums for
        status, more = await call(
            "urls", {"upload_id": upload["upload_id"], "checksums": {"2": crc32(pieces[2])}}
        )
        reports = []
        for grant in urls["parts"] + more["parts"]:
            headers = {k: v for k, v in grant["headers"].items() if k != "content-length"}
            async with http.put(grant["url"], data=pieces[grant["number"]], headers=headers) as r:
                assert r.status == 200, await r.text()
                reports.append({"number": grant["number"], "etag": r.headers["ETag"],
                                "checksum": crc32(pieces[grant["number"]])})  # fmt: skip
        status, refused = await call(
            "complete", {"upload_id": upload["upload_id"], "parts": reports[:1]}
        )
        assert (status, refused["missing"]) == (409, [2])
        status, done = await call("complete", {"upload_id": upload["upload_id"], "parts": reports})
        assert status == 200, done
        assert (done["parts"], done["size"]) == (2, len(data))
        await assert_object(s3, bucket, "d/a.bin", data, PART)

        # Refused before any request; an unknown upload; abort.
        status, said = await call("begin", {"key": "d/b", "size": 10**15, "part_size": 1})
        assert status == 400
        assert "10000" in said["error"] or "parts" in said["error"]
        assert (await call("urls", {"upload_id": "nope"}))[0] == 404
        status, upload = await call("begin", {"key": "d/c", "size": 10})
        assert (await call("abort", {"upload_id": upload["upload_id"]})) == (200, {"aborted": True})
    listing = await s3.list_multipart_uploads(Bucket=bucket)
    assert listing.get("Uploads", []) == []
