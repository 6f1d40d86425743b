"""asyncup's own HTTP/1.1 connections for small requests (``asyncup._s3.pool``).

On the real servers: small objects go through the pool, on kept-alive connections, and so
do botocore's own requests (Create, Complete, Abort, lists). Against scripted servers (the
faults a real one will not make on demand): a PUT whose connection broke before any answer
is resent once on a new one (as aiohttp does), a POST is not, one whose answer was cut short
is not, a silent server times out, an early answer leaves no connection half-sent, and a
cancelled exchange closes its connection.
"""

from __future__ import annotations

import asyncio
import io
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

import anyio
import pytest
from aiobotocore.config import AioConfig
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

import asyncup
from asyncup._core.wire import request_head
from asyncup._s3 import pool as _pool
from asyncup._s3.pool import Pool
from asyncup._s3.threaded import _host, _small_body
from tests.conftest import MiB, assert_object, random_bytes

pytestmark = pytest.mark.timeout(60)


def count_pool(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The request lines of the PUTs that went through a pool, and how many connections
    pools opened."""
    counts: dict[str, Any] = {"puts": [], "connections": 0}
    send, connect = Pool.send, Pool._connect

    async def counted_send(
        self: Pool, url: str, key: Any, head: bytes, *args: Any, **kwargs: Any
    ) -> Any:
        counts["puts"].append(head.split(b"\r\n", 1)[0].decode())
        return await send(self, url, key, head, *args, **kwargs)

    async def counted_connect(self: Pool, *args: Any) -> Any:
        counts["connections"] += 1
        return await connect(self, *args)

    monkeypatch.setattr(Pool, "send", counted_send)
    monkeypatch.setattr(Pool, "_connect", counted_connect)
    return counts


async def test_small_objects_go_through_the_pool_on_one_kept_connection(
    endpoint: str, server: str, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = count_pool(monkeypatch)
    blobs = {f"pooled/{n}": random_bytes(5000 + n, seed=n) for n in range(20)}
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        items = [(blob, key) for key, blob in blobs.items()]
        summary = await up.upload_many(
            items, bucket, extra_args={"ContentType": "text/plain"}, objects_in_flight=1
        )
    assert summary.ok, summary.errors
    # (and the store's probe, an UploadPart of an upload of its own, after 16 objects)
    sent = [line for line in counts["puts"] if "?" not in line]
    # The first, sent by botocore, taught the bucket's endpoint: it went through the pool too.
    assert sent == [f"PUT /{bucket}/pooled/{n} HTTP/1.1" for n in range(20)]
    # moto's server (werkzeug) closes every connection after its answer: there, nothing is
    # kept to be reused.
    assert counts["connections"] == (1 if server == "seaweedfs" else len(counts["puts"]))
    for key, blob in blobs.items():
        await assert_object(s3, bucket, key, blob, None)
    head = await s3.head_object(Bucket=bucket, Key="pooled/11")
    assert head["ContentType"] == "text/plain"
    assert [r.etag for r in summary.results if r.key == "pooled/11"] == [head["ETag"]]


async def test_an_error_answer_through_the_pool_is_an_s3_error(
    endpoint: str, server: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PutObject the store refuses (IfNoneMatch on a key that exists) fails as through
    botocore: PreconditionFailed, with the status, and the connection stays usable."""
    counts = count_pool(monkeypatch)
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        await up.upload(b"first", bucket, "taken")
        with pytest.raises(asyncup.UploadError) as caught:
            await up.upload(b"second", bucket, "taken", extra_args={"IfNoneMatch": "*"})
        await up.upload(b"third", bucket, "free", extra_args={"IfNoneMatch": "*"})
    assert "PreconditionFailed" in str(caught.value)
    keys = ("taken", "taken", "free")
    assert counts["puts"] == [f"PUT /{bucket}/{key} HTTP/1.1" for key in keys]
    assert counts["connections"] == (1 if server == "seaweedfs" else 3)


async def test_botocores_own_requests_go_through_the_pool_too(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The requests with small bodies, botocore's (Abort, the list of uploads, the first
    Create) as the lean path's (Create, Complete, the parts below 1 MiB), go out on the pool's
    connections, not aiohttp's; parts of 1 MiB or more go from threads (``threaded``): only
    the store's probe, a part of 1 byte, is left."""
    counts = count_pool(monkeypatch)
    config = asyncup.TransferConfig(part_size=5 * MiB, multipart_threshold=5 * MiB)
    data = random_bytes(6 * MiB)

    async def failing() -> AsyncIterator[bytes]:
        yield data
        raise OSError("the source failed")

    async with asyncup.Uploader(endpoint_url=endpoint, config=config) as up:
        await up.upload(data, bucket, "whole")
        with pytest.raises(asyncup.UploadError):
            await up.upload(failing(), bucket, "failed")
        left = [u async for u in up.list_uploads(bucket)]
    assert left == []
    lines = [line.split("=", 1)[0] for line in counts["puts"]]
    for key in ("whole", "failed"):
        assert f"POST /{bucket}/{key}?uploads HTTP/1.1" in lines
    assert f"POST /{bucket}/whole?uploadId" in lines  # Complete
    assert f"DELETE /{bucket}/failed?uploadId" in lines  # Abort
    assert any(line.startswith(f"GET /{bucket}?") and "uploads" in line for line in lines)
    parts = [line for line in counts["puts"] if "partNumber=" in line]
    assert all(re.search(r"[?&]partNumber=10000[& ]", line) for line in parts)  # the probe's


async def test_a_request_through_a_proxy_stays_with_aiohttp(
    endpoint: str, server: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a proxy configured for the endpoint, nothing goes out on the pool's connections:
    aiohttp takes every request to the proxy (here a port where nothing listens, so the
    upload fails on it instead of reaching the store directly)."""
    counts = count_pool(monkeypatch)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    proxied = AioConfig(proxies={"http": f"http://127.0.0.1:{dead}"}, connect_timeout=2)
    config = asyncup.TransferConfig(max_attempts=1)
    async with asyncup.Uploader(endpoint_url=endpoint, config=config, client_config=proxied) as up:
        with pytest.raises(asyncup.UploadError) as caught:
            await up.upload(b"through the proxy", bucket, "proxied")
    assert "proxy" in str(caught.value).lower()
    assert counts["puts"] == []


def test_what_stays_with_aiohttp() -> None:
    """A HEAD (its answer says a length it does not send), an answer read as a stream
    (GetObject), a body of 1 MiB or more, or a file."""
    with open(__file__, "rb") as file:
        for method, stream, body in (
            ("HEAD", False, None),
            ("GET", True, None),
            ("PUT", False, bytes(MiB)),
            ("PUT", False, file),
        ):
            request = AWSPreparedRequest(method, "http://x/b/k", {}, body, stream_output=stream)
            assert _small_body(request) is None, method
    put = AWSPreparedRequest("PUT", "http://x/b/k", {}, bytes(MiB - 1), stream_output=False)
    small = _small_body(put)
    assert small is not None
    assert small.tobytes() == bytes(MiB - 1)


async def test_botocores_request_is_sent_as_aiohttp_sends_it(
    make_pool: Callable[..., Pool],
) -> None:
    """Through the pool, botocore's request keeps its headers, with Host as botocore signs
    it, Accept-Encoding identity, Content-Length 0 for a POST with no body, and no
    Expect: 100-continue (never signed): its body follows the head at once."""
    heads: list[bytes] = []

    async def script(reader: Any, writer: Any, n: int) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            heads.append(head)
            length = [int(x.split(b":")[1]) for x in head.split(b"\r\n") if b"Length" in x]
            await reader.readexactly(length[0] if length else 0)
            writer.write(OK)

    async with (
        Scripted(script) as server,
        asyncup.Uploader(endpoint_url=server.url.rsplit("/b/k", 1)[0]) as up,
    ):
        session = cast(Any, up.client)._endpoint.http_session
        for method, body in (("POST", None), ("PUT", io.BytesIO(b"0123456789"))):
            if body is not None:
                body.seek(4)  # sent from where it stands
            headers = {"Expect": "100-continue", "X-Amz-Date": "d", "Authorization": "a"}
            request = AWSPreparedRequest(
                method, server.url + "?uploads", headers, body, stream_output=False
            )
            answer = await session.send(request)
            assert answer.status_code == 200
    assert heads[0].split(b"\r\n") == [
        b"POST /b/k?uploads HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}".encode(),
        b"Accept-Encoding: identity",
        b"X-Amz-Date: d",
        b"Authorization: a",
        b"Content-Length: 0",
        b"",
        b"",
    ]
    assert b"Content-Length: 6\r\n" in heads[1]
    assert b"Expect" not in heads[1]


def test_host_is_signed_and_sent_without_the_schemes_own_port() -> None:
    for url, host in (
        ("https://s3.example:443/b", "s3.example"),
        ("http://s3.example:80/b", "s3.example"),
        ("http://s3.example/b", "s3.example"),
        ("http://s3.example:9000/b", "s3.example:9000"),
        ("https://[::1]:443/b", "[::1]"),
        ("https://[::1]:8443/b", "[::1]:8443"),
    ):
        assert _host(urlsplit(url)) == host, url


async def test_a_post_whose_connection_broke_is_not_resent(
    make_pool: Callable[..., Pool],
) -> None:
    """A POST (Create, Complete) is not idempotent: one whose connection broke before any
    answer fails at once, as aiohttp does not resend it (asyncup's retry decides)."""

    async def script(reader: Any, writer: Any, n: int) -> None:
        await read_request(reader)  # and closed, no answer

    async with Scripted(script) as server:
        key = ("http", "127.0.0.1", server.port)
        head = request_head("POST", "/b/k?uploads", "127.0.0.1", [("Content-Length", "0")])
        with pytest.raises(ConnectionClosedError):
            await make_pool().send(server.url, key, head, memoryview(b""), None, idempotent=False)
        assert server.connections == 1


class Scripted:
    """An HTTP server on 127.0.0.1 that plays ``script(reader, writer, n)`` for its n-th
    connection; ``connections`` counts them and ``ended`` those that ended."""

    def __init__(
        self, script: Callable[[Any, Any, int], Awaitable[None]], rcvbuf: int | None = None
    ) -> None:
        self.script = script
        self.rcvbuf = rcvbuf
        self.connections = 0
        self.ended = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self.script(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.ended += 1
            writer.close()

    async def __aenter__(self) -> Scripted:
        sock = socket.socket()
        if self.rcvbuf:  # before listen(): the connections accepted inherit it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._handle, sock=sock)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/b/k"
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def read_request(reader: asyncio.StreamReader) -> int:
    """Read one request, head and body; return the body's length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return length


OK = b'HTTP/1.1 200 OK\r\nETag: "e"\r\nx-amz-request-id: r\r\nContent-Length: 0\r\n\r\n'


def head_for(body: bytes) -> bytes:
    return request_head("PUT", "/b/k", "127.0.0.1", [("Content-Length", str(len(body)))])


@pytest.fixture
async def make_pool() -> AsyncIterator[Callable[..., Pool]]:
    pools: list[Pool] = []

    def make(read_timeout: float = 5.0) -> Pool:
        made = Pool(connect_timeout=5.0, read_timeout=read_timeout, keep=4, idle_for=10.0)
        pools.append(made)
        return made

    yield make
    for made in pools:
        made.close()


async def put(pool: Pool, server: Scripted, body: bytes) -> _pool.Answer:
    key = ("http", "127.0.0.1", server.port)
    return await pool.send(server.url, key, head_for(body), memoryview(body), None)


async def test_answers_are_parsed_and_connections_kept(make_pool: Callable[..., Pool]) -> None:
    got: list[int] = []

    async def script(reader: Any, writer: Any, n: int) -> None:
        while True:
            got.append(await read_request(reader))
            writer.write(OK)

    async with Scripted(script) as server:
        pool = make_pool()
        for size in (0, 10, 300_000, 900_000):  # the larger ones: more than one slice
            status, headers, content = await put(pool, server, bytes(size))
            assert (status, headers["etag"], content) == (200, '"e"', b"")
    assert got == [0, 10, 300_000, 900_000]
    assert server.connections == 1


async def test_a_reused_connection_the_server_closed_is_resent_once_on_a_new_one(
    make_pool: Callable[..., Pool],
) -> None:
    """The server answers one request per connection, then closes it without saying so
    (no ``Connection: close``) as a keep-alive timeout does: the second PUT finds the
    connection dead, is sent again on a new one, and succeeds."""

    async def script(reader: Any, writer: Any, n: int) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.3)  # long enough for the client to take the connection again

    async with Scripted(script) as server:
        pool = make_pool()
        assert (await put(pool, server, b"one"))[0] == 200
        assert (await put(pool, server, b"two"))[0] == 200
        assert server.connections == 2


async def test_a_reused_connection_that_dies_mid_request_is_resent(
    make_pool: Callable[..., Pool],
) -> None:
    """The second request on a connection is read, then the connection is closed with no
    answer (a keep-alive race the client cannot see): resent once on a new connection."""

    async def script(reader: Any, writer: Any, n: int) -> None:
        await read_request(reader)
        writer.write(OK)
        if n == 1:
            await read_request(reader)  # the second request: no answer, closed

    async with Scripted(script) as server:
        pool = make_pool()
        await put(pool, server, b"one")
        status, _, _ = await put(pool, server, b"two")
        assert status == 200
        assert server.connections == 2


async def test_a_fresh_connection_closed_without_an_answer_is_resent_once(
    make_pool: Callable[..., Pool],
) -> None:
    """As aiohttp resends an idempotent request whose connection broke, new or reused:
    once, on a new connection; broken again, the error is raised (asyncup's retry decides)."""

    async def script(reader: Any, writer: Any, n: int) -> None:
        await read_request(reader)  # and closed, no answer
        if n == 3:
            writer.write(OK)

    async with Scripted(script) as server:
        pool = make_pool()
        with pytest.raises(ConnectionClosedError):
            await put(pool, server, b"lost")
        assert server.connections == 2
        assert (await put(pool, server, b"third time"))[0] == 200


async def test_an_answer_cut_short_is_not_resent(make_pool: Callable[..., Pool]) -> None:
    """Part of an answer came, then the connection closed: the request may have been
    carried out, so it is not resent by the pool (asyncup's retry decides)."""

    async def script(reader: Any, writer: Any, n: int) -> None:
        await read_request(reader)
        if n == 1:
            writer.write(OK)
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    async with Scripted(script) as server:
        pool = make_pool()
        await put(pool, server, b"one")
        with pytest.raises(ConnectionClosedError):
            await put(pool, server, b"two")
        assert server.connections == 1


async def test_a_silent_server_times_out(make_pool: Callable[..., Pool]) -> None:
    async def script(reader: Any, writer: Any, n: int) -> None:
        await read_request(reader)
        await reader.read()  # no answer, until the client closes

    async with Scripted(script) as server:
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            await put(make_pool(read_timeout=0.5), server, b"unanswered")
        assert 0.4 < time.monotonic() - started < 3
        await asyncio.sleep(0.2)
        assert server.ended == 1  # the connection was closed, not left to linger


@pytest.mark.parametrize("idle", [0.3, 0.8])
async def test_a_kept_connection_times_out_in_its_own_time(
    make_pool: Callable[..., Pool], idle: float
) -> None:
    """The read timeout counts from each exchange's start, whether the connection's timer
    is still running from the last exchange (idle 0.3 s) or lapsed meanwhile (0.8 s)."""

    async def script(reader: Any, writer: Any, n: int) -> None:
        await read_request(reader)
        writer.write(OK)
        await read_request(reader)
        await reader.read()  # the second is never answered

    async with Scripted(script) as server:
        pool = make_pool(read_timeout=0.5)
        await put(pool, server, b"answered")
        await asyncio.sleep(idle)
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            await put(pool, server, b"unanswered")
        assert 0.45 < time.monotonic() - started < 3
        assert server.connections == 1


async def test_nothing_listening_is_an_endpoint_connection_error(
    make_pool: Callable[..., Pool],
) -> None:
    async with Scripted(read_request) as server:
        pass  # closed: its port is free again
    with pytest.raises(EndpointConnectionError):
        await put(make_pool(), server, b"nowhere")


async def test_an_early_answer_leaves_no_half_sent_connection(
    make_pool: Callable[..., Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answers 400 as soon as it has the head, reading none of a 900 KiB body
    (more than the socket buffers, made small, take) and keeping the connection: the rest
    of the body must never go out as the start of a next request, so the connection is
    not kept."""
    heads: list[bytes] = []
    made = _pool._Connection.connection_made

    def small_buffers(self: Any, transport: Any) -> None:
        made(self, transport)
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)

    monkeypatch.setattr(_pool._Connection, "connection_made", small_buffers)

    async def script(reader: Any, writer: Any, n: int) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        if n == 1:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad")
            await writer.drain()
            await asyncio.sleep(0.5)  # reads nothing more for a while
            while await reader.read(1 << 20):  # then drains, as a lenient server would
                pass
        else:
            await reader.readexactly(3)
            writer.write(OK)

    async with Scripted(script, rcvbuf=8192) as server:
        pool = make_pool()
        status, _, content = await put(pool, server, bytes(900_000))
        assert (status, content) == (400, b"bad")
        assert (await put(pool, server, b"abc"))[0] == 200
        assert server.connections == 2
        assert all(head.startswith(b"PUT /b/k HTTP/1.1\r\n") for head in heads)


@pytest.mark.parametrize("how", ["asyncio", "anyio"])
async def test_a_cancelled_exchange_closes_its_connection(
    make_pool: Callable[..., Pool], how: str
) -> None:
    async def script(reader: Any, writer: Any, n: int) -> None:
        await read_request(reader)
        if n == 1:
            await reader.read()  # no answer, until the client closes
            return
        writer.write(OK)

    async with Scripted(script) as server:
        pool = make_pool()
        if how == "asyncio":
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await put(pool, server, b"cancelled")
        else:
            with anyio.move_on_after(0.3) as scope:
                await put(pool, server, b"cancelled")
            assert scope.cancelled_caught
        await asyncio.sleep(0.2)
        assert server.ended == 1  # closed at once, not kept for a later exchange
        assert (await put(pool, server, b"next"))[0] == 200
        assert server.connections == 2
