"""Parts sent from worker threads (asyncup._threaded), on the clients asyncup makes itself.

The fault, chaos and pressure tests run through both ways of sending (the ``wire`` fixture);
these check what only the threads do: who sends, and that a cancelled send stops at once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

import asyncup
from asyncup._core import wire
from asyncup._s3 import blocking as _blocking
from tests.conftest import MiB, assert_object, make_client, random_bytes

pytestmark = pytest.mark.timeout(60)

CONFIG = asyncup.TransferConfig(part_size=5 * MiB, multipart_threshold=5 * MiB, concurrency=3)


def record_senders(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(thread name, body size) of every body ``_s3.threaded`` sends from its threads."""
    senders: list[tuple[str, int]] = []
    send = _blocking.send_blocking

    def recorded(payload: Any, sock: socket.socket) -> None:
        senders.append((threading.current_thread().name, payload.size))
        send(payload, sock)

    monkeypatch.setattr(_blocking, "send_blocking", recorded)
    return senders


async def test_parts_of_asyncup_clients_are_sent_from_worker_threads(
    endpoint: str, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    senders = record_senders(monkeypatch)
    data = random_bytes(13 * MiB, seed=3)  # parts of 5, 5 and 3 MiB
    async with await make_client(endpoint, wire="threads") as client:
        await asyncup.upload(data, bucket, "threads", client=client, config=CONFIG)
    await assert_object(s3, bucket, "threads", data, 5 * MiB)
    assert sorted(size for _, size in senders) == [3 * MiB, 5 * MiB, 5 * MiB]
    assert threading.main_thread().name not in {name for name, _ in senders}


async def test_bodies_below_the_threshold_stay_on_the_event_loop(
    endpoint: str, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    senders = record_senders(monkeypatch)
    data = random_bytes(wire.THRESHOLD - 1, seed=4)  # one PutObject
    async with await make_client(endpoint, wire="threads") as client:
        await asyncup.upload(data, bucket, "small", client=client, config=CONFIG)
    await assert_object(s3, bucket, "small", data, None)
    assert senders == []


class BlackHole:
    """A TCP endpoint on 127.0.0.1 that reads nothing for ``silence`` seconds, so that a
    large body blocks its sender, then reads to the end: ``closed`` counts the connections
    that ended (a sender still blocked would go on sending, then wait for an answer)."""

    def __init__(self, silence: float = 1.5) -> None:
        self.silence = silence
        self.closed = 0
        self.ended = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.url = ""

    async def __aenter__(self) -> BlackHole:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._handlers.add(task)
            try:
                await asyncio.sleep(self.silence)
                while await reader.read(1024 * 1024):
                    pass
                self.closed += 1
                self.ended.set()
            except ConnectionError:
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


@pytest.fixture
async def black_hole() -> AsyncIterator[BlackHole]:
    async with BlackHole() as hole:
        yield hole


async def cancel_native(work: Callable[[], Any], after: float) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(after):  # a native task.cancel()
            await work()


async def cancel_anyio(work: Callable[[], Any], after: float) -> None:
    with anyio.move_on_after(after) as scope:
        await work()
    assert scope.cancelled_caught


@pytest.mark.parametrize("cancel", [cancel_native, cancel_anyio], ids=["native", "anyio"])
async def test_a_cancelled_send_stops_its_thread_at_once(
    black_hole: BlackHole,
    monkeypatch: pytest.MonkeyPatch,
    cancel: Callable[[Callable[[], Any], float], Any],
) -> None:
    """A part stuck in ``sendall`` (the server reads nothing) is cancelled: the call returns
    at once, the sending thread has ended (its socket was shut down, not left to the read
    timeout of 60 s), and the server sees the connection closed."""
    running = threading.Event()
    ended = threading.Event()
    send = _blocking.send_blocking

    def watched(payload: Any, sock: socket.socket) -> None:
        running.set()
        try:
            send(payload, sock)
        finally:
            ended.set()

    monkeypatch.setattr(_blocking, "send_blocking", watched)
    body = bytearray(64 * MiB)  # far more than the socket buffers take
    async with await make_client(black_hole.url, wire="threads", read_timeout=60) as client:

        async def upload_part() -> None:
            await client.upload_part(
                Bucket="b", Key="k", UploadId="u", PartNumber=1, Body=body, ContentLength=len(body)
            )

        started = time.monotonic()
        await cancel(upload_part, 1.0)
        took = time.monotonic() - started
    assert running.is_set()
    assert ended.is_set(), "the sending thread still runs after the cancellation"
    assert took < 5
    with anyio.fail_after(5):
        await black_hole.ended.wait()


class PartServer:
    """Answers every request 200 with an ETag, reading each body at ``rate`` bytes/s (None:
    at once); with ``close_after`` it closes each connection that long after answering,
    without saying so (a keep-alive timeout). ``requests`` counts the requests it answered."""

    def __init__(self, rate: float | None = None, close_after: float | None = None) -> None:
        self.rate, self.close_after = rate, close_after
        self.requests = 0
        self._server: asyncio.Server | None = None
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                while length:
                    chunk = await reader.read(min(length, 64 * 1024))
                    if not chunk:
                        return
                    length -= len(chunk)
                    if self.rate:
                        await asyncio.sleep(len(chunk) / self.rate)
                self.requests += 1
                writer.write(b'HTTP/1.1 200 OK\r\nETag: "e"\r\nContent-Length: 0\r\n\r\n')
                await writer.drain()
                if self.close_after is not None:
                    await asyncio.sleep(self.close_after)
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def __aenter__(self) -> PartServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._server is not None
        self._server.close()


async def put_part(client: Any, size: int, number: int = 1) -> None:
    await client.upload_part(
        Bucket="b", Key="k", UploadId="u", PartNumber=number, Body=bytearray(size),
        ContentLength=size,
    )  # fmt: skip


async def test_a_part_slower_to_send_than_the_read_timeout_is_not_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The read timeout bounds each blocking send of a slice, not the whole part: 16 MiB
    read at ~8 MiB/s take ~2 s, with a 1 s read timeout."""
    senders = record_senders(monkeypatch)
    async with (
        PartServer(rate=8 * MiB) as server,
        await make_client(server.url, wire="threads", read_timeout=1) as client,
    ):
        started = time.monotonic()
        await put_part(client, 16 * MiB)
        assert time.monotonic() - started > 1.2  # it did outlast the read timeout
    assert len(senders) == 1


async def test_idle_connections_the_server_closed_are_not_used_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server closes each connection 0.1 s after answering, without a word: the next part
    goes out on a new connection, at the first try (the server answers exactly two)."""
    senders = record_senders(monkeypatch)
    async with (
        PartServer(close_after=0.1) as server,
        await make_client(server.url, wire="threads") as client,
    ):
        await put_part(client, 2 * MiB, 1)
        await asyncio.sleep(0.5)
        await put_part(client, 2 * MiB, 2)
    assert server.requests == 2
    assert len(senders) == 2


async def test_a_cancel_while_connecting_sends_nothing(
    black_hole: BlackHole, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while its thread still connects (a slow connect, 1.5 s): the call returns at
    once, and when the connect completes the thread sends nothing and closes the socket."""
    connect = socket.create_connection

    def slow_connect(*args: Any, **kwargs: Any) -> socket.socket:
        time.sleep(1.5)
        return connect(*args, **kwargs)

    monkeypatch.setattr(_blocking.socket, "create_connection", slow_connect)
    senders = record_senders(monkeypatch)
    async with await make_client(black_hole.url, wire="threads") as client:
        started = time.monotonic()
        with anyio.move_on_after(0.3):
            await put_part(client, 2 * MiB)
        assert time.monotonic() - started < 1.0
        await asyncio.sleep(1.5)
    assert senders == []


async def test_a_cancel_while_waiting_for_a_thread_returns_at_once(
    black_hole: BlackHole,
) -> None:
    """One connection allowed (max_pool_connections=1), held by a part the server never
    reads: a second part, cancelled while it waits for its turn, returns at once."""
    async with (
        await make_client(black_hole.url, wire="threads", max_pool_connections=1) as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(put_part, client, 64 * MiB, 1)
        await anyio.sleep(0.2)
        started = time.monotonic()
        with anyio.move_on_after(0.3):
            await put_part(client, 2 * MiB, 2)
        assert time.monotonic() - started < 1.0
        group.cancel_scope.cancel()


async def test_callers_connector_args_keep_every_request_with_aiohttp(
    endpoint: str, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    senders = record_senders(monkeypatch)
    data = random_bytes(6 * MiB, seed=5)
    async with await make_client(
        endpoint, wire="threads", connector_args={"use_dns_cache": False}
    ) as client:
        await asyncup.upload(data, bucket, "own-connector", client=client, config=CONFIG)
    await assert_object(s3, bucket, "own-connector", data, 5 * MiB)
    assert senders == []
