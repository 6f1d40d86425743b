"""A loopback HTTP proxy in front of the S3 server that the tests script faults into.

Each request is named by its S3 operation (CreateMultipartUpload, UploadPart, ...; the
UploadPart of part 10,000 is "ProbePart": asyncup's probe of whether the store verifies
checksums, so that the tests' counts and faults of UploadPart are the upload's own). A rule
matches an operation (and optionally a part number) and injects a fault a number of times:

    "503"     answer 503 SlowDown without forwarding
    "500"     answer 500 InternalError without forwarding
    "403"     answer 403 AccessDenied without forwarding
    "404"     answer 404 NoSuchUpload without forwarding
    "reset"   read part of the request body, then drop the connection
    "stall"   read the body, then answer nothing for ``stall`` seconds and close
    "corrupt" forward the request with one byte of its body flipped
    "noetag"  forward, then drop the ETag header from the answer
    "lost"    forward, then drop the connection instead of answering (the server did it)
    "alien"   forward, then alter the ETag and checksum headers (someone else's object)
    "badsum"  forward, then change the object checksum in Complete's answer
    "badetag" forward, then change the ETag in Complete's answer
    "200err"  answer 200 whose body is an <Error> (S3 does this for Complete), not forwarded
    "trickle" forward, then send the answer's headers, a space every 0.1 s for ``stall``
              seconds (as S3 keeps a slow Complete alive) and its body: no read times out
    "400"     answer 400 InvalidArgument without forwarding
    "502"     answer 502 with a load balancer's HTML page (no S3 error code) without forwarding
    "504"     likewise, 504
    "hook"    await ``hook(request)`` (the test's own action: cancel the upload, abort it
              behind its back...), then forward as usual

A rule may name a ``key``: it then matches only requests for that object key, so that
uploads running at once each have faults of their own (``key_counts`` counts requests per
key and operation).

``delay`` holds every forwarded request of an operation that long (a slow server); faults
are answered at once. The proxy
counts requests per operation and the UploadPart requests in flight (and their maximum).
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "expect", "keep-alive"}

ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>faultproxy</RequestId></Error>"
)


@dataclass
class Rule:
    operation: str
    fault: str
    times: int = 1
    part: int | None = None
    stall: float = 30.0
    key: str | None = None
    hook: Callable[[web.Request], Awaitable[None]] | None = None

    def matches(self, operation: str, part: int | None, key: str | None = None) -> bool:
        if self.times <= 0 or operation != self.operation:
            return False
        if self.key is not None and self.key != key:
            return False
        return self.part is None or self.part == part


def operation_of(method: str, query: dict[str, str]) -> str:
    if method == "PUT":
        if query.get("partNumber") == "10000":
            return "ProbePart"  # asyncup's checksum probe (no test sends 10,000 parts)
        return "UploadPart" if "partNumber" in query else "PutObject"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload"
    if method == "GET" and "uploadId" in query:
        return "ListParts"
    if method == "HEAD":
        return "HeadObject"
    return f"{method} other"


def key_of(path: str) -> str | None:
    """The object key of a path-style request (``/bucket/key``), None for a bucket's."""
    pieces = path.split("/", 2)
    return pieces[2] if len(pieces) == 3 and pieces[2] else None


class FaultProxy:
    def __init__(self, upstream: str, tls: tuple[str, str] | None = None) -> None:
        """In front of ``upstream``; over HTTPS with ``tls`` (its certificate and key files)."""
        self.upstream = upstream.rstrip("/")
        self.tls = tls
        self.rules: list[Rule] = []
        self.delays: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        self.key_counts: Counter[tuple[str | None, str]] = Counter()
        """Requests per (object key, operation)."""
        self.late: Counter[tuple[str | None, str]] = Counter()
        """Requests forwarded without a fault whose client had gone (timed out) by the time
        the server answered, per (object key, operation): a sign of a machine too busy."""
        self.faults_injected: Counter[str] = Counter()
        self.parts_in_flight = 0
        self.max_parts_in_flight = 0
        self.part_timeline: list[tuple[float, int]] = []
        """(time.monotonic(), UploadPart requests in flight) at each arrival and answer."""
        self.fault_times: list[float] = []
        """time.monotonic() of each fault injected."""
        self.writes_in_flight = 0
        self.max_writes_in_flight = 0
        self.seen: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.requests: list[tuple[str, dict[str, str]]] = []
        """(operation, lower-cased request headers) of every request, in arrival order."""
        self.reject_checksums = False
        """Answer 400 to any request with checksum headers, as some S3-compatible stores do."""
        self.checks_crc32 = False
        """Refuse (400 BadDigest) a write whose body does not match its CRC32 header, before
        the server behind it sees it: a store that verifies CRC32 and no other algorithm."""
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def fail(
        self,
        operation: str,
        fault: str,
        *,
        times: int = 1,
        part: int | None = None,
        stall: float = 30.0,
        key: str | None = None,
        hook: Callable[[web.Request], Awaitable[None]] | None = None,
    ) -> None:
        self.rules.append(Rule(operation, fault, times, part, stall, key, hook))

    def delay(self, operation: str, seconds: float) -> None:
        self.delays[operation] = seconds

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=6 * 1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _take_fault(self, operation: str, part: int | None, key: str | None = None) -> Rule | None:
        for rule in self.rules:
            if rule.matches(operation, part, key):
                rule.times -= 1
                self.faults_injected[rule.fault] += 1
                self.fault_times.append(time.monotonic())
                return rule
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        operation = operation_of(request.method, query)
        part = int(query["partNumber"]) if "partNumber" in query else None
        self.counts[operation] += 1
        self.key_counts[key_of(request.path), operation] += 1
        self.seen[operation].set()
        self.requests.append((operation, {k.lower(): v for k, v in request.headers.items()}))
        is_part = operation == "UploadPart"
        is_write = is_part or operation == "PutObject"
        if is_part:
            self.parts_in_flight += 1
            self.max_parts_in_flight = max(self.max_parts_in_flight, self.parts_in_flight)
            self.part_timeline.append((time.monotonic(), self.parts_in_flight))
        if is_write:
            self.writes_in_flight += 1
            self.max_writes_in_flight = max(self.max_writes_in_flight, self.writes_in_flight)
        try:
            return await self._respond(request, operation, part)
        finally:
            if is_part:
                self.parts_in_flight -= 1
                self.part_timeline.append((time.monotonic(), self.parts_in_flight))
            if is_write:
                self.writes_in_flight -= 1

    async def _respond(
        self, request: web.Request, operation: str, part: int | None
    ) -> web.StreamResponse:
        if self.reject_checksums and any(
            h.lower().startswith(("x-amz-checksum-", "x-amz-sdk-checksum", "x-amz-trailer"))
            for h in request.headers
        ):
            await request.read()
            return _error(400, "InvalidArgument", "checksum headers are not supported")
        rule = self._take_fault(operation, part, key_of(request.path))
        fault = rule.fault if rule else None
        if fault == "hook":
            assert rule is not None
            assert rule.hook is not None
            await rule.hook(request)
        if fault == "reset":
            await request.content.read(1024)
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        body = await request.read()
        if fault in ("502", "504"):
            return web.Response(
                status=int(fault),
                text=f"<html><body>{fault} gateway</body></html>",
                content_type="text/html",
            )
        if fault in ("503", "500", "400", "403", "404", "301", "200err"):
            status = 200 if fault == "200err" else int(fault)
            codes = {
                "301": "PermanentRedirect",
                "503": "SlowDown",
                "400": "InvalidArgument",
                "403": "AccessDenied",
                "404": "NoSuchUpload",
            }
            code = codes.get(fault, "InternalError")
            return _error(status, code, f"injected {code}")
        if fault == "stall":
            assert rule is not None
            await asyncio.sleep(rule.stall)
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if operation in self.delays:
            await asyncio.sleep(self.delays[operation])
        if fault == "corrupt" and body:
            flipped = bytearray(body)
            flipped[len(flipped) // 2] ^= 0xFF
            body = bytes(flipped)
        if self.checks_crc32 and operation in ("UploadPart", "ProbePart", "PutObject"):
            crc32 = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
            if request.headers.get("x-amz-checksum-crc32") not in (None, crc32):
                return _error(400, "BadDigest", "The CRC32 you specified did not match")
        response = await self._forward(request, body)
        if rule is None and request.transport is None:
            self.late[key_of(request.path), operation] += 1
        if fault == "lost":
            assert request.transport is not None
            request.transport.abort()
            return response
        if fault == "trickle":
            assert rule is not None
            return await _trickle(request, response, rule.stall)
        if fault == "noetag":
            response.headers.popall("ETag", None)
        if fault == "alien":
            for name in list(response.headers):
                if name.lower() == "etag" or name.lower().startswith("x-amz-checksum-"):
                    response.headers[name] = "AAAAAA==-1" if "checksum" in name.lower() else '"0"'

        if fault in ("badsum", "badetag") and isinstance(response.body, bytes):
            tag = "ETag" if fault == "badetag" else "Checksum(?:CRC32C?|CRC64NVME|SHA1|SHA256)"
            response.body = re.sub(
                rf"<({tag})>(&#34;|&quot;|\")?[0-9A-Za-z+/]".encode(),
                lambda m: m.group(0)[:-1] + (b"A" if m.group(0)[-1:] != b"A" else b"B"),
                response.body,
            )
        return response

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None
        # The Host header is signed: forward it as the client sent it.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Host"] = request.headers["Host"]
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            response_headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in HOP_HEADERS | {"content-encoding"}
            }
            return web.Response(status=upstream.status, headers=response_headers, body=payload)


TRICKLE_INTERVAL = 0.1


async def _trickle(
    request: web.Request, answer: web.Response, seconds: float
) -> web.StreamResponse:
    """``answer`` with a space every TRICKLE_INTERVAL for ``seconds`` before its body: each
    read gets a byte well within any read timeout, and the whole takes ``seconds``."""
    body = answer.body if isinstance(answer.body, bytes) else b""
    spaces = int(seconds / TRICKLE_INTERVAL)
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
    trickled = web.StreamResponse(status=answer.status, headers=headers)
    trickled.content_length = spaces + len(body)
    try:
        await trickled.prepare(request)
        for _ in range(spaces):
            await trickled.write(b" ")
            await asyncio.sleep(TRICKLE_INTERVAL)
        await trickled.write(body)
        await trickled.write_eof()
    except ConnectionError:
        pass  # the client gave up on it
    return trickled


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=ERROR_BODY.format(code=code, message=message).encode(),
        content_type="application/xml",
    )
