"""Parts read straight from a range of a file: a path source's parts (on a client that does
not sign payloads), and those of uploads fed by many hosts (``asyncup.parallel``).

A part of a multi-terabyte object can be 5 GiB: it is never held in memory. Its checksum is
computed by reading the range in slices in a worker thread (``digest_range``), then the
range is read again, slice by slice in threads, while it is sent (``payloads.RangePayload``).

botocore validates a part's body before any hook runs and accepts only bytes or file-like
objects, so the body handed to it is a ``RangeBody`` (a file-like view of the range). Once the
request is signed, ``before-send`` swaps it for a ``RangePayload``, which aiohttp writes as it
is and ``threaded`` sends from a worker thread. A client that signs payloads reads the
``RangeBody`` to sign it (correct, but its SHA256 runs on the event loop): a path source's
parts are sent from the file only on asyncup's own clients (``client.sends_from_files``).
"""

from __future__ import annotations

import io
import os
from typing import Any

import anyio.to_thread

from .._core.checksums import PartDigest, RunningDigest
from .._core.errors import ShortSourceError
from .payloads import RangePayload, slice_buffer

HASH_STEP = 64 * 1024 * 1024  # bytes hashed per trip to a thread: a stop is seen between trips
_HOOK_ID = "asyncup-range-body"


class RangeBody(io.RawIOBase):
    """``length`` bytes of the file at ``path`` from ``offset``, as a seekable file object;
    read through ``fd`` when given (left open), else through a descriptor of its own."""

    def __init__(self, path: str, offset: int, length: int, fd: int | None = None) -> None:
        super().__init__()
        self.path = path
        self.offset = offset
        self.length = length
        self.fd = fd
        self._position = 0
        self._own: int | None = None  # opened on the first read when no ``fd`` is given

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.length}[whence]
        self._position = min(max(0, base + offset), self.length)
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.length - self._position)
        if wanted <= 0:
            return 0
        fd = self.fd
        if fd is None:
            if self._own is None:
                self._own = os.open(self.path, os.O_RDONLY)
            fd = self._own
        n = os.preadv(fd, [memoryview(buffer)[:wanted]], self.offset + self._position)
        self._position += n
        return n

    def close(self) -> None:
        if self._own is not None:
            fd, self._own = self._own, None
            os.close(fd)
        super().close()


def stream_ranges(client: Any) -> None:
    """Let ``client`` send ``RangeBody`` parts as ``RangePayload`` (idempotent).

    Before each call the range is rewound (a retry sends it from its start) and botocore's
    ``Expect: 100-continue`` for file bodies dropped (a part held in memory is sent without
    it: it would cost a round trip per part through aiohttp). The swap itself is made once
    the request is signed, just before it is sent: a signer sees the file object botocore
    accepted, and the HTTP client gets a body it sends without reading it on the loop."""
    events = client.meta.events
    events.register("before-call.s3.UploadPart", _rewind, unique_id=f"{_HOOK_ID}-rewind")
    events.register("before-send.s3.UploadPart", _range_as_payload, unique_id=_HOOK_ID)


def _rewind(params: dict[str, Any], **_: Any) -> None:
    body = params.get("body")
    if isinstance(body, RangeBody):
        body.seek(0)
        params.get("headers", {}).pop("Expect", None)


def _range_as_payload(request: Any, **_: Any) -> None:
    body = request.body
    if isinstance(body, RangeBody):
        request.body = RangePayload(body.path, body.offset, body.length, body.fd)


async def digest_range(
    path: str,
    offset: int,
    length: int,
    algorithm: str | None,
    fd: int | None = None,
    *,
    md5: bool = False,
) -> PartDigest:
    """The checksum (or MD5, without an algorithm) of a file range, read off the event loop
    (through ``fd`` when given, left open); its MD5 as well if ``md5``."""
    running = RunningDigest(algorithm, md5=md5)
    own = fd is None
    if fd is None:
        fd = await anyio.to_thread.run_sync(os.open, path, os.O_RDONLY)
    try:
        for start in range(0, length, HASH_STEP):
            step = min(HASH_STEP, length - start)
            await anyio.to_thread.run_sync(_hash, fd, running, offset + start, step, path)
    finally:
        if own:
            await anyio.to_thread.run_sync(os.close, fd)
    return running.digest()


def _hash(fd: int, running: RunningDigest, offset: int, length: int, path: str) -> None:
    buffer = slice_buffer()
    done = 0
    while done < length:
        n = os.preadv(fd, [buffer[: min(len(buffer), length - done)]], offset + done)
        if n == 0:
            raise ShortSourceError(
                f"{path} ended at byte {offset + done}, inside a part (did it change?)"
            )
        running.update(buffer[:n])
        done += n
