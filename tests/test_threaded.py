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
from asyncup import _threaded
from tests.conftest import MiB, assert_object, make_client, random_bytes

pytestmark = pytest.mark.timeout(60)

CONFIG = asyncup.TransferConfig(part_size=5 * MiB, multipart_threshold=5 * MiB, concurrency=3)


def record_senders(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(thread name, body size) of every body ``_threaded`` sends."""
    senders: list[tuple[str, int]] = []
    send = _threaded.send_blocking

    def recorded(payload: Any, sock: socket.socket) -> None:
        senders.append((threading.current_thread().name, payload.size))
        send(payload, sock)

    monkeypatch.setattr(_threaded, "send_blocking", recorded)
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
    data = random_bytes(_threaded.THRESHOLD - 1, seed=4)  # one PutObject
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
        self.url = ""

    async def __aenter__(self) -> BlackHole:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(self.silence)
            try:
                while await reader.read(1024 * 1024):
                    pass
            except ConnectionError:
                pass
            self.closed += 1
            self.ended.set()
            writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._server is not None
        self._server.close()


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
    send = _threaded.send_blocking

    def watched(payload: Any, sock: socket.socket) -> None:
        running.set()
        try:
            send(payload, sock)
        finally:
            ended.set()

    monkeypatch.setattr(_threaded, "send_blocking", watched)
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
