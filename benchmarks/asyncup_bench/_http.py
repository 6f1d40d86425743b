"""A minimal HTTP/1.1 server protocol for the sink: parse, count, discard, answer.

It understands what S3 clients send: Content-Length or chunked bodies (aws-chunked payloads
arrive either way), ``Expect: 100-continue``, keep-alive. One request at a time per
connection: reading pauses while a request is being answered, as no S3 client pipelines.
A body is only kept when the handler asks for it (to hash it); otherwise its bytes are
counted and dropped as they arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape as _escape

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found"}
_MAX_HEAD = 64 * 1024

_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER = range(6)


class Running(Protocol):
    """A digest updated piece by piece (the sink's checksum of a body)."""

    def update(self, data: bytes) -> None: ...


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body_size: int = 0
    """Bytes of body received, framing of an aws-chunked payload included."""
    chunks: list[bytes] | None = None
    """The body, when the handler asked to keep it."""
    running: Running | None = None
    """A digest of the body kept up as it arrives, when the handler asked for one."""

    @property
    def aws_chunked(self) -> bool:
        return "x-amz-decoded-content-length" in self.headers

    @property
    def payload_size(self) -> int:
        """The object bytes: the decoded length of an aws-chunked body, else the body size."""
        decoded = self.headers.get("x-amz-decoded-content-length")
        return int(decoded) if decoded is not None else self.body_size


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/xml"
    length: int | None = None
    """Content-Length to announce without a body (HEAD)."""

    def encode(self, method: str, keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Status')}"]
        lines.append("x-amz-request-id: sink")
        lines.append("Server: asyncup-sink")
        for name, value in self.headers.items():
            lines.append(f"{name}: {value}")
        if self.status != 204:
            length = self.length if self.length is not None else len(self.body)
            lines.append(f"Content-Length: {length}")
            if self.body:
                lines.append(f"Content-Type: {self.content_type}")
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if method == "HEAD" else head + self.body


def escape(text: str) -> str:
    return _escape(text, {'"': "&quot;"})


def xml(root: str, inner: str, *, namespace: bool = True) -> bytes:
    ns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' if namespace else ""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{ns}>{inner}</{root}>'.encode()


def error(status: int, code: str, message: str) -> Response:
    inner = f"<Code>{code}</Code><Message>{escape(message)}</Message><RequestId>sink</RequestId>"
    return Response(
        status,
        xml("Error", inner).replace(b' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', b""),
    )


Handler = Callable[[Request], Awaitable[Response]]


class Connection(asyncio.Protocol):
    """One client connection: a small state machine over the bytes as they arrive."""

    def __init__(self, handler: Handler, on_head: Callable[[Request], None]) -> None:
        self._handler = handler
        self._on_head = on_head
        self._transport: asyncio.Transport | None = None
        self._state = _HEAD
        self._buffer = bytearray()
        self._request: Request | None = None
        self._left = 0
        self._pending = b""
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        if self._task is not None:
            self._pending += data
            return
        try:
            self._feed(data)
        except (ValueError, IndexError):
            self._fail()

    def _fail(self) -> None:
        if self._transport is not None:
            self._transport.write(error(400, "BadRequest", "cannot parse").encode("GET", False))
            self._transport.close()

    def _feed(self, data: bytes) -> None:
        while data and self._task is None:
            state = self._state
            if state == _HEAD:
                data = self._read_head(data)
            elif state in (_BODY, _CHUNK_DATA):
                data = self._read_body(data)
            elif state == _CHUNK_CRLF:
                take = min(self._left, len(data))
                self._left -= take
                data = data[take:]
                if not self._left:
                    self._state = _CHUNK_SIZE
            else:
                data = self._read_line(data)
        if data:
            self._pending = data

    def _read_head(self, data: bytes) -> bytes:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise ValueError("request head too large")
            return b""
        head = self._buffer[:end].decode("latin-1")
        rest = bytes(self._buffer[end + 4 :])
        self._buffer.clear()
        request_line, *header_lines = head.split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        split = urlsplit(target)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        request = Request(method, split.path, query, headers)
        self._on_head(request)  # it may keep the body, or a digest of it
        self._request = request
        if headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = _CHUNK_SIZE
        elif int(headers.get("content-length", "0") or 0) > 0:
            self._state = _BODY
            self._left = int(headers["content-length"])
        else:
            self._dispatch()
        return rest

    def _read_body(self, data: bytes) -> bytes:
        request = self._request
        assert request is not None
        size = len(data)
        if size < self._left:
            self._left -= size
            request.body_size += size
            if request.chunks is not None:
                request.chunks.append(data)
            if request.running is not None:
                request.running.update(data)
            return b""
        left = self._left
        piece, rest = (data, b"") if size == left else (data[:left], data[left:])
        request.body_size += left
        if request.chunks is not None:
            request.chunks.append(piece)
        if request.running is not None:
            request.running.update(piece)
        self._left = 0
        if self._state == _BODY:
            self._dispatch()
        else:
            self._state = _CHUNK_CRLF
            self._left = 2
        return rest

    def _read_line(self, data: bytes) -> bytes:
        """A chunk-size line, or the (usually empty) trailer section after the last chunk."""
        self._buffer += data
        if self._state == _CHUNK_SIZE:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return b""
            size = int(bytes(self._buffer[:end]).split(b";", 1)[0], 16)
            rest = bytes(self._buffer[end + 2 :])
            self._buffer.clear()
            if size:
                self._state, self._left = _CHUNK_DATA, size
            else:
                self._state = _TRAILER
            return rest
        if self._buffer.startswith(b"\r\n"):
            end = 0
        else:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return b""
            end += 2
        rest = bytes(self._buffer[end + 2 :])
        self._buffer.clear()
        self._dispatch()
        return rest

    def _dispatch(self) -> None:
        request = self._request
        assert request is not None
        assert self._transport is not None
        self._state = _HEAD
        self._request = None
        self._transport.pause_reading()
        self._task = asyncio.ensure_future(self._answer(request))

    async def _answer(self, request: Request) -> None:
        response = await self._handler(request)
        transport = self._transport
        if transport is None:
            return
        keep_alive = request.headers.get("connection", "").lower() != "close"
        transport.write(response.encode(request.method, keep_alive))
        self._task = None
        if not keep_alive:
            transport.close()
            return
        transport.resume_reading()
        pending, self._pending = self._pending, b""
        if pending:
            self.data_received(pending)
