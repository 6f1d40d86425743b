"""stdin of unknown length as chunks for the event loop (``asyncup cp - s3://...``)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable
from typing import Self

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.lowlevel import EventLoopToken
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


class StdinChunks:
    """stdin as an ``AsyncIterable[bytes]``, read by a daemon thread.

    A read from a pipe or a terminal can block forever, so it runs in a thread of its own that
    a cancelled upload simply leaves behind (a daemon: it cannot hold up the exit), and the
    chunks reach the event loop through a one-slot stream, which gives backpressure.
    """

    def __init__(self, fd: int = 0, chunk_size: int = 1024 * 1024) -> None:
        self._fd = fd
        self._chunk_size = chunk_size
        self._receive: MemoryObjectReceiveStream[bytes | OSError] | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        if self._receive is None:
            send, self._receive = anyio.create_memory_object_stream[bytes | OSError](1)
            token = anyio.lowlevel.current_token()
            threading.Thread(
                target=self._pump, args=(send, token), name="asyncup-stdin", daemon=True
            ).start()
        try:
            chunk = await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        except BaseException:
            self._receive.close()
            raise
        if isinstance(chunk, OSError):
            raise chunk
        return chunk

    def _pump(self, send: MemoryObjectSendStream[bytes | OSError], token: EventLoopToken) -> None:
        try:
            while chunk := self._read_chunk():
                anyio.from_thread.run(send.send, chunk, token=token)
        except OSError as exc:
            _quietly(functools.partial(anyio.from_thread.run, send.send, exc, token=token))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.RunFinishedError):
            return  # the upload stopped reading: nothing more to do
        finally:
            _quietly(functools.partial(anyio.from_thread.run_sync, send.close, token=token))

    def _read_chunk(self) -> bytes:
        """Up to ``chunk_size`` bytes (fewer only at the end), so the loop is not woken for
        every 64 KiB a pipe hands over."""
        buffer = bytearray(self._chunk_size)
        view = memoryview(buffer)
        filled = 0
        while filled < len(buffer):
            n = os.readv(self._fd, [view[filled:]])
            if n == 0:
                break
            filled += n
        view.release()
        del buffer[filled:]
        return bytes(buffer)


def _quietly(action: Callable[[], object]) -> None:
    """Tell the event loop something, unless nobody is listening any more."""
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
        action()  # RuntimeError (RunFinishedError among them): the event loop is gone
