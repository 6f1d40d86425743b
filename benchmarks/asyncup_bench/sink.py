"""A fast S3 sink: just enough of S3 to take uploads, and nothing stored but their sizes.

    PYTHONPATH=benchmarks python -m asyncup_bench.sink [--tls] [--md5] [--part-delay SECONDS]

prints one JSON line ``{"endpoint": ..., "ca_bundle": ..., "pid": ...}`` once it listens on
127.0.0.1, and runs until SIGTERM/SIGINT. It isolates the client's cost: a raw asyncio
protocol (uvloop when installed) counts body bytes as they arrive and throws them away, so it
needs a small fraction of a core where the clients need one or two.

Theory of operation: ``Connection`` parses HTTP/1.1 (Content-Length or chunked bodies,
``Expect: 100-continue``, keep-alive) and hands each complete ``Request`` to ``Store``, which
answers CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
ListParts (NoSuchUpload once aborted), PutObject, HeadBucket/CreateBucket, HeadObject,
DeleteObject, GetBucketLocation and an empty ListObjects. Authentication is ignored.

ETags: a PutObject's ETag is the MD5 of its body, as S3's (a client that is not sure the
store verifies its checksum compares them: asyncup does, for a small object). With ``--md5``
the sink hashes every body (in a thread pool, so the event loop never stalls) and its ETags
are real S3 ETags. Without it (the default, for speed) a part's ETag is the client's own
Content-MD5 when it sent one ("claimed"), else a placeholder. HeadObject says
which in ``x-sink-etag`` (computed, claimed, none) and lists the part sizes in
``x-sink-parts`` (``8388608*127,4194304``) so that a runner can recompute the ETag.
``GET /_sink/stats`` answers JSON counters and the sink's own CPU seconds.

Checksums: as S3 does, a body sent with an ``x-amz-checksum-*`` header, or an aws-chunked
body with one in its trailer (``x-amz-trailer``, as boto3 sends over HTTPS and the CRT), is
checked as it arrives (CRC32 with ISA-L, CRC32C and CRC64NVME with awscrt, SHA1 and SHA256
with hashlib), and a mismatch is refused as 400 BadDigest. A client that probes whether the
store verifies (asyncup does) finds that it does, as on S3. CompleteMultipartUpload takes
the parts its body lists, as S3 does (an unlisted part is dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import itertools
import json
import os
import re
import resource
import signal
import sys
import tempfile
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import unquote

from . import _http
from ._http import Request, Response, error


@dataclass(slots=True)
class Part:
    size: int
    md5: bytes | None
    how: str  # "computed", "claimed" or "none"


@dataclass(slots=True)
class Upload:
    bucket: str
    key: str
    parts: dict[int, Part] = field(default_factory=dict)


@dataclass(slots=True)
class StoredObject:
    size: int
    etag: str
    how: str
    part_sizes: list[int]


@dataclass(slots=True)
class Options:
    md5: bool = False
    part_delay: float = 0.0


try:  # ISA-L's CRC32, as asyncup's (zlib's is the same function, slower)
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover
    _crc32 = zlib.crc32
try:
    from awscrt import checksums as _crt  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover
    _crt = None

CRCS: dict[str, tuple[Callable[[bytes, int], int], int]] = {"CRC32": (_crc32, 4)}
if _crt is not None:
    CRCS["CRC32C"] = (_crt.crc32c, 4)
    CRCS["CRC64NVME"] = (_crt.crc64nvme, 8)
RUNNING = {*CRCS, "SHA1", "SHA256"}


class Checksum:
    """The checksum a write's header names, kept up over its body as it arrives."""

    def __init__(self, algorithm: str, expected: str) -> None:
        self.algorithm, self.expected = algorithm, expected
        self._crc = 0
        self._hash = None if algorithm in CRCS else hashlib.new(algorithm.lower())

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        else:
            self._crc = CRCS[self.algorithm][0](data, self._crc)

    def matches(self) -> bool:
        if self._hash is not None:
            raw = self._hash.digest()
        else:
            raw = self._crc.to_bytes(CRCS[self.algorithm][1], "big")
        return base64.b64encode(raw).decode() == self.expected


class Trailing:
    """The checksum an aws-chunked body names in ``x-amz-trailer``, kept up over its payload
    as the framed body arrives (chunk-size lines in hex, with or without a chunk signature,
    each chunk's data and its CRLF, the last empty chunk, the trailer's lines, a blank line),
    and compared with the value its trailer gives. Anything else in the framing (a size that
    is not hex, a missing CRLF, bytes after the end) makes it match nothing."""

    _LONGEST_LINE = 4096
    _HEX = frozenset(b"0123456789abcdefABCDEF")

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.trailer: dict[str, str] = {}
        self._payload = Checksum(algorithm, "")
        self._line = bytearray()  # a size or trailer line, until its end arrives
        self._left = 0  # bytes of the current chunk's data still to come
        self._crlf = b""  # what is left of the CRLF after a chunk's data
        self._in_trailer = self._ended = self._malformed = False

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._malformed:
            if self._ended:
                self._malformed = True  # bytes after the blank line that ends the body
            elif self._left:
                taken = view[: self._left]
                self._payload.update(taken)  # type: ignore[arg-type]
                self._left -= len(taken)
                self._crlf = b"" if self._left else b"\r\n"
                view = view[len(taken) :]
            elif self._crlf:
                seen = bytes(view[: len(self._crlf)])
                self._malformed = not self._crlf.startswith(seen)
                self._crlf = self._crlf[len(seen) :]
                view = view[len(seen) :]
            else:
                head = bytes(view[: self._LONGEST_LINE])
                if self._line.endswith(b"\r") and head.startswith(b"\n"):
                    piece = head[:1]  # the CR ended the previous piece
                else:
                    end = head.find(b"\r\n")
                    piece = head if end < 0 else head[: end + 2]
                self._line += piece
                view = view[len(piece) :]
                if len(self._line) > self._LONGEST_LINE:
                    self._malformed = True
                elif self._line.endswith(b"\r\n"):
                    self._read_line(bytes(self._line[:-2]))
                    self._line.clear()

    def _read_line(self, line: bytes) -> None:
        if self._in_trailer:
            if not line:
                self._ended = True
                return
            name, colon, value = line.partition(b":")
            try:
                key = name.strip().lower().decode("ascii")
                self._malformed |= not colon or key in self.trailer
                self.trailer[key] = value.strip().decode("ascii")
            except UnicodeDecodeError:
                self._malformed = True
            return
        size = line.split(b";", 1)[0]
        if not size or not set(size) <= self._HEX:
            self._malformed = True
            return
        self._left = int(size, 16)
        self._in_trailer = self._left == 0

    def matches(self) -> bool:
        expected = self.trailer.get(f"x-amz-checksum-{self.algorithm.lower()}")
        if self._malformed or not self._ended or expected is None:
            return False
        self._payload.expected = expected
        return self._payload.matches()


def multipart_etag(parts: Sequence[Part]) -> tuple[str, str]:
    """S3's ETag for these parts, and how much it can be trusted."""
    if any(part.md5 is None for part in parts):
        return f'"sink-unverified-{len(parts)}"', "none"
    digest = hashlib.md5(b"".join(part.md5 for part in parts if part.md5 is not None))
    how = "computed" if all(part.how == "computed" for part in parts) else "claimed"
    return f'"{digest.hexdigest()}-{len(parts)}"', how


def run_lengths(sizes: Sequence[int]) -> str:
    """[8, 8, 8, 3] -> '8*3,3'."""
    runs = []
    for size, group in itertools.groupby(sizes):
        count = len(list(group))
        runs.append(f"{size}*{count}" if count > 1 else str(size))
    return ",".join(runs)


def decode_aws_chunked(body: bytes) -> bytes:
    """The payload of an aws-chunked body (chunk signatures and trailers dropped)."""
    out = bytearray()
    pos = 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


def body_md5(chunks: list[bytes], aws_chunked: bool) -> bytes:
    if aws_chunked:
        return hashlib.md5(decode_aws_chunked(b"".join(chunks))).digest()
    digest = hashlib.md5()
    for chunk in chunks:
        digest.update(chunk)
    return digest.digest()


class Store:
    """The sink's S3: uploads in progress, objects' sizes and ETags, counters."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.uploads: dict[str, Upload] = {}
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.buckets: set[str] = set()
        self.upload_ids = itertools.count(1)
        self.counters = {"requests": 0, "body_bytes": 0, "parts": 0, "objects": 0}
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sink-md5")

    def on_head(self, request: Request) -> None:
        """Keep the body of a write to hash it (--md5), or of a Complete (its parts list);
        keep up the checksum a write's headers name, to check it."""
        write = request.method == "PUT" and "/" in request.path.strip("/")
        put_object = write and "partNumber" not in request.query
        if (
            (self.options.md5 and write)
            or put_object
            or (request.method == "POST" and "uploadId" in request.query)
        ):
            request.chunks = []
        if write and request.aws_chunked:
            trailer = request.headers.get("x-amz-trailer", "").strip().lower()
            algorithm = trailer.removeprefix("x-amz-checksum-").upper()
            if trailer.startswith("x-amz-checksum-") and algorithm in RUNNING:
                request.running = Trailing(algorithm)
        elif write:
            for name, value in request.headers.items():
                algorithm = name.removeprefix("x-amz-checksum-").upper()
                if name.startswith("x-amz-checksum-") and algorithm in RUNNING:
                    request.running = Checksum(algorithm, value)
                    break

    @staticmethod
    def _refused(request: Request) -> Response | None:
        """BadDigest for a body whose checksum is not the one its header (or trailer) says."""
        running = request.running
        if isinstance(running, Checksum | Trailing) and not running.matches():
            name = running.algorithm
            return error(
                400, "BadDigest", f"The {name} you specified did not match the calculated checksum."
            )
        return None

    async def handle(self, request: Request) -> Response:
        self.counters["requests"] += 1
        self.counters["body_bytes"] += request.body_size
        bucket, _, key = unquote(request.path.lstrip("/")).partition("/")
        query = request.query
        if bucket == "_sink":
            return self._stats()
        if not key:
            return self._bucket(request, bucket)
        method = request.method
        if method == "PUT" and "uploadId" in query and "partNumber" in query:
            return await self._upload_part(request, query["uploadId"], int(query["partNumber"]))
        if method == "PUT":
            return await self._put_object(request, bucket, key)
        if method == "POST" and "uploads" in query:
            return self._create(bucket, key)
        if method == "POST" and "uploadId" in query:
            return self._complete(request, query["uploadId"], bucket, key)
        if method == "DELETE" and "uploadId" in query:
            self.uploads.pop(query["uploadId"], None)
            return Response(204)
        if method == "GET" and "uploadId" in query:
            return self._list_parts(query["uploadId"], bucket, key)
        if method in ("HEAD", "GET"):
            return self._head_object(request, bucket, key)
        if method == "DELETE":
            self.objects.pop((bucket, key), None)
            return Response(204)
        return error(501, "NotImplemented", f"the sink does not do {method} with {query}")

    def _stats(self) -> Response:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats = {**self.counters, "cpu_seconds": usage.ru_utime + usage.ru_stime}
        return Response(200, json.dumps(stats).encode(), content_type="application/json")

    def _bucket(self, request: Request, bucket: str) -> Response:
        if request.method == "PUT":
            self.buckets.add(bucket)
            return Response(200, headers={"Location": f"/{bucket}"})
        if request.method in ("HEAD", "DELETE"):
            return Response(200 if request.method == "HEAD" else 204)
        if "location" in request.query:
            return Response(200, _http.xml("LocationConstraint", ""))
        return self._list_objects(bucket, request.query)

    def _list_objects(self, bucket: str, query: dict[str, str]) -> Response:
        """ListObjectsV2 (and V1's first page): keys, sizes and ETags, 1,000 at a time."""
        prefix = query.get("prefix", "")
        after = query.get("continuation-token") or query.get("start-after") or ""
        limit = min(int(query.get("max-keys", "1000")), 1000)
        keys = sorted(
            key for b, key in self.objects if b == bucket and key.startswith(prefix) and key > after
        )
        page, truncated = keys[:limit], len(keys) > limit
        entries = "".join(
            f"<Contents><Key>{_http.escape(key)}</Key><Size>{stored.size}</Size>"
            f"<ETag>{_http.escape(stored.etag)}</ETag>"
            "<LastModified>2026-01-01T00:00:00.000Z</LastModified>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            for key, stored in ((key, self.objects[(bucket, key)]) for key in page)
        )
        body = (
            f"<Name>{bucket}</Name><Prefix>{_http.escape(prefix)}</Prefix><KeyCount>{len(page)}"
            f"</KeyCount><MaxKeys>{limit}</MaxKeys><IsTruncated>{str(truncated).lower()}"
            "</IsTruncated>"
        )
        if truncated:
            body += f"<NextContinuationToken>{_http.escape(page[-1])}</NextContinuationToken>"
        return Response(200, _http.xml("ListBucketResult", body + entries))

    async def _digest(self, request: Request) -> Part:
        if request.chunks is not None:
            md5 = await asyncio.get_running_loop().run_in_executor(
                self.pool, body_md5, request.chunks, request.aws_chunked
            )
            return Part(request.payload_size, md5, "computed")
        claimed = request.headers.get("content-md5")
        if claimed:
            try:
                return Part(request.payload_size, base64.b64decode(claimed), "claimed")
            except binascii.Error:
                pass
        return Part(request.payload_size, None, "none")

    async def _upload_part(self, request: Request, upload_id: str, number: int) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        part = await self._digest(request)
        if self.options.part_delay:
            await asyncio.sleep(self.options.part_delay)
        upload = self.uploads.get(upload_id)
        if upload is None:
            return error(404, "NoSuchUpload", "The specified upload does not exist.")
        upload.parts[number] = part
        self.counters["parts"] += 1
        etag = f'"{part.md5.hex()}"' if part.md5 is not None else '"sink-unverified"'
        return Response(200, headers={"ETag": etag})

    async def _put_object(self, request: Request, bucket: str, key: str) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        part = await self._digest(request)
        etag = f'"{part.md5.hex()}"' if part.md5 is not None else '"sink-unverified"'
        self.objects[(bucket, key)] = StoredObject(part.size, etag, part.how, [part.size])
        self.counters["objects"] += 1
        return Response(200, headers={"ETag": etag})

    def _create(self, bucket: str, key: str) -> Response:
        upload_id = f"sink-{os.getpid()}-{next(self.upload_ids)}"
        self.uploads[upload_id] = Upload(bucket, key)
        body = (
            f"<Bucket>{bucket}</Bucket><Key>{_http.escape(key)}</Key>"
            f"<UploadId>{upload_id}</UploadId>"
        )
        return Response(200, _http.xml("InitiateMultipartUploadResult", body))

    def _complete(self, request: Request, upload_id: str, bucket: str, key: str) -> Response:
        upload = self.uploads.get(upload_id)
        if upload is None:
            return error(404, "NoSuchUpload", "The specified upload does not exist.")
        document = b"".join(request.chunks or [])
        listed = [int(n) for n in re.findall(rb"<PartNumber>\s*(\d+)\s*</PartNumber>", document)]
        if not listed or any(n not in upload.parts for n in listed):
            return error(
                400, "InvalidPart", "One or more of the specified parts could not be found."
            )
        del self.uploads[upload_id]
        parts = [upload.parts[n] for n in listed]
        etag, how = multipart_etag(parts)
        sizes = [part.size for part in parts]
        self.objects[(bucket, key)] = StoredObject(sum(sizes), etag, how, sizes)
        self.counters["objects"] += 1
        body = (
            f"<Location>/{bucket}/{_http.escape(key)}</Location><Bucket>{bucket}</Bucket>"
            f"<Key>{_http.escape(key)}</Key><ETag>{_http.escape(etag)}</ETag>"
        )
        return Response(200, _http.xml("CompleteMultipartUploadResult", body))

    def _list_parts(self, upload_id: str, bucket: str, key: str) -> Response:
        upload = self.uploads.get(upload_id)
        if upload is None:
            return error(404, "NoSuchUpload", "The specified upload does not exist.")
        entries = "".join(
            f"<Part><PartNumber>{n}</PartNumber><Size>{p.size}</Size>"
            f"<ETag>&quot;{p.md5.hex() if p.md5 else 'sink-unverified'}&quot;</ETag></Part>"
            for n, p in sorted(upload.parts.items())
        )
        body = (
            f"<Bucket>{bucket}</Bucket><Key>{_http.escape(key)}</Key>"
            f"<UploadId>{upload_id}</UploadId><IsTruncated>false</IsTruncated>{entries}"
        )
        return Response(200, _http.xml("ListPartsResult", body))

    def _head_object(self, request: Request, bucket: str, key: str) -> Response:
        stored = self.objects.get((bucket, key))
        if stored is None:
            return error(404, "NoSuchKey", "The specified key does not exist.")
        headers = {
            "ETag": stored.etag,
            "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT",
            "x-sink-etag": stored.how,
            "x-sink-parts": run_lengths(stored.part_sizes),
        }
        return Response(200, headers=headers, length=stored.size)


async def serve(
    options: Options,
    *,
    tls_dir: str | None = None,
    port: int = 0,
    on_ready: Callable[[dict[str, object]], None] | None = None,
) -> None:
    """Serve on 127.0.0.1 until cancelled; ``on_ready`` gets the endpoint description."""
    store = Store(options)
    ssl_context = None
    ca_bundle = None
    if tls_dir is not None:
        import ssl

        from .tlscert import make_certificates

        files = make_certificates(tls_dir)
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(files.cert, files.key)
        ca_bundle = files.ca
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _http.Connection(store.handle, store.on_head),
        host="127.0.0.1",
        port=port,
        ssl=ssl_context,
        backlog=256,
    )
    async with server:
        bound = server.sockets[0].getsockname()[1]
        scheme = "https" if ssl_context else "http"
        if on_ready is not None:
            on_ready(
                {
                    "endpoint": f"{scheme}://127.0.0.1:{bound}",
                    "ca_bundle": ca_bundle,
                    "pid": os.getpid(),
                }
            )
        try:
            await server.serve_forever()
        finally:
            store.pool.shutdown(wait=False, cancel_futures=True)


async def _main(args: argparse.Namespace) -> int:
    options = Options(md5=args.md5, part_delay=args.part_delay)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready(info: dict[str, object]) -> None:
        print(json.dumps(info), flush=True)

    with tempfile.TemporaryDirectory(prefix="asyncup-sink-") as tls_dir:
        task = asyncio.create_task(
            serve(options, tls_dir=tls_dir if args.tls else None, port=args.port, on_ready=ready)
        )
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        waiter.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asyncup_bench.sink", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", action="store_true", help="HTTPS with a certificate made now")
    parser.add_argument("--md5", action="store_true", help="hash bodies: real S3 ETags")
    parser.add_argument("--part-delay", type=float, default=0.0, help="seconds per UploadPart")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_main(args))
    return uvloop.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
