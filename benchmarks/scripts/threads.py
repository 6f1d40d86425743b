"""Parts sent from threads: the ceiling of a bare sender, and asyncup in one warm process.

Usage (from the checkout, venv active; a 1 GiB file is made once at /tmp/asyncup-threads-1g):
    python benchmarks/scripts/threads.py ceiling MODE http|https 5
        10 threads, each PUTs 8 MiB parts of the file with http.client to the sink; no
        botocore, no event loop: what the machine allows. MODE says how each part is read,
        checksummed and sent:
          sendall   pread the whole part, CRC32 it (zlib), ``sendall`` the buffer
          sendfile  a CRC32 pass (zlib) in 1 MiB preads, then ``sendfile`` (HTTP only)
          isal      the same with ISA-L's CRC32 (what asyncup does over HTTP)
          mapped    the ISA-L pass, then ``sendall`` from the part's pages mapped 4 MiB at a
                    time (tried in asyncup as 41d19ff, reverted: RESULTS.md)
          read      the ISA-L pass, then 1 MiB preads each sent (what asyncup does over TLS)
          buffer    the whole part in one pread, CRC32'd (ISA-L) and sent from the buffer
          nocrc     ``sendfile`` and no checksum at all (what obstore-unsigned and
                    awscrt-bare send; a reference)
          onepass   1 MiB preads, each CRC32'd (ISA-L) and sent from the same buffer: the one
                    pass a trailing checksum would allow (its CRC32 sent nowhere here; a
                    reference)
          trailed   1 MiB preads, each CRC32'd and sent from the buffer as an aws-chunked
                    chunk, the CRC32 as a trailer (what asyncup does over TLS)
          trsendfile  1 MiB preads, each CRC32'd, then the same range sent with
                    ``sendfile`` as an aws-chunked chunk, the CRC32 as a trailer (HTTP only)
    python benchmarks/scripts/threads.py warm http|https 4 [CRC32|CRC32C|none]
        asyncup.Uploader.upload of the file, 4 times in one process (after the first, no
        connection, thread or import is new), 8 MiB parts, concurrency 10.
Each prints MB/s and the process's CPU seconds (user+sys) per upload.
"""

from __future__ import annotations

import base64
import http.client
import json
import mmap
import os
import queue
import resource
import ssl
import statistics
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

from isal.isal_zlib import crc32 as isal_crc32

# The harness lies beside these scripts, not in the asyncup package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench.servers import harness_env, sink_command

PATH = "/tmp/asyncup-threads-1g"
SIZE, PART, CONCURRENCY = 1 << 30, 8 << 20, 10
CHUNK = 1 << 20


def make_file() -> None:
    if not os.path.exists(PATH) or os.path.getsize(PATH) != SIZE:
        with open(PATH, "wb") as file:
            for _ in range(SIZE // (64 << 20)):
                file.write(os.urandom(64 << 20))


def start_sink(tls: bool) -> tuple[subprocess.Popen[bytes], str]:
    command = sink_command() + (["--tls"] if tls else [])
    sink = subprocess.Popen(command, stdout=subprocess.PIPE, env=harness_env())
    assert sink.stdout is not None
    return sink, json.loads(sink.stdout.readline())["endpoint"]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ceiling(mode: str, endpoint: str, tls: bool) -> None:
    url = urlsplit(endpoint)
    context = ssl._create_unverified_context() if tls else None

    def connection() -> http.client.HTTPConnection:
        if tls:
            return http.client.HTTPSConnection(url.hostname, url.port, context=context)
        return http.client.HTTPConnection(url.hostname, url.port)

    control = connection()
    control.request("PUT", "/bench")  # the bucket (the sink keeps no state for it)
    control.getresponse().read()
    control.request("POST", "/bench/k?uploads")
    answer = control.getresponse().read().decode()
    upload_id = answer.split("<UploadId>")[1].split("</UploadId>")[0]
    numbers: queue.Queue[int] = queue.Queue()
    for number in range(1, SIZE // PART + 1):
        numbers.put(number)
    etags: dict[int, str] = {}

    def sender() -> None:
        conn, fd = connection(), os.open(PATH, os.O_RDONLY)
        buffer, small = bytearray(PART), bytearray(1 << 20)
        while True:
            try:
                number = numbers.get_nowait()
            except queue.Empty:
                break
            offset = (number - 1) * PART
            crc = done = 0
            if mode in ("sendfile", "isal", "mapped", "read"):
                digest = zlib.crc32 if mode == "sendfile" else isal_crc32
                while done < PART:
                    n = os.preadv(fd, [small], offset + done)
                    crc, done = digest(memoryview(small)[:n], crc), done + n
            elif mode in ("sendall", "buffer"):
                os.preadv(fd, [buffer], offset)
                crc = zlib.crc32(buffer) if mode == "sendall" else isal_crc32(buffer)
            conn.putrequest("PUT", f"/bench/k?partNumber={number}&uploadId={upload_id}")
            if mode in ("trailed", "trsendfile"):
                trailer = len("x-amz-checksum-crc32:AAAAAAAA\r\n")  # a CRC32 is 8 in base64
                framed = PART + (PART // CHUNK) * (len(f"{CHUNK:x}") + 4) + 3 + trailer + 2
                conn.putheader("Content-Length", str(framed))
                conn.putheader("Content-Encoding", "aws-chunked")
                conn.putheader("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
                conn.putheader("x-amz-decoded-content-length", str(PART))
                conn.putheader("x-amz-trailer", "x-amz-checksum-crc32")
            else:
                conn.putheader("Content-Length", str(PART))
            if mode not in ("nocrc", "onepass", "trailed", "trsendfile"):
                conn.putheader("x-amz-checksum-crc32", base64.b64encode(crc.to_bytes(4, "big")))
            conn.endheaders()
            if mode in ("sendfile", "isal", "nocrc"):
                sent = 0
                while sent < PART:
                    sent += os.sendfile(conn.sock.fileno(), fd, offset + sent, PART - sent)
            elif mode == "mapped":
                for start in range(0, PART, 4 << 20):
                    flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
                    with (
                        mmap.mmap(fd, 4 << 20, flags, mmap.PROT_READ, offset=offset + start) as m,
                        memoryview(m) as view,
                    ):
                        for at in range(0, 4 << 20, 1 << 20):
                            conn.sock.sendall(view[at : at + (1 << 20)])
            elif mode == "read":
                done = 0
                while done < PART:
                    n = os.preadv(fd, [small], offset + done)
                    conn.sock.sendall(memoryview(small)[:n])
                    done += n
            elif mode == "onepass":
                done = 0
                while done < PART:
                    n = os.preadv(fd, [small], offset + done)
                    crc = isal_crc32(memoryview(small)[:n], crc)
                    conn.sock.sendall(memoryview(small)[:n])
                    done += n
            elif mode in ("trailed", "trsendfile"):
                done = 0
                head = f"{CHUNK:x}\r\n".encode()
                while done < PART:
                    n = os.preadv(fd, [small], offset + done)
                    assert n == CHUNK
                    crc = isal_crc32(memoryview(small)[:n], crc)
                    if mode == "trailed":
                        conn.sock.sendall(head + small + b"\r\n")  # one write, as asyncup
                    else:
                        conn.sock.sendall(head)
                        at, sent = offset + done, 0
                        while sent < n:
                            sent += os.sendfile(conn.sock.fileno(), fd, at + sent, n - sent)
                        conn.sock.sendall(b"\r\n")
                    done += n
                value = base64.b64encode(crc.to_bytes(4, "big")).decode()
                conn.sock.sendall(f"0\r\nx-amz-checksum-crc32:{value}\r\n\r\n".encode())
            else:
                conn.sock.sendall(buffer)
            response = conn.getresponse()
            if response.read() and response.status != 200:
                raise RuntimeError(f"part {number}: {response.status}")
            etags[number] = response.getheader("ETag") or ""
        os.close(fd)

    threads = [threading.Thread(target=sender) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        for n, etag in sorted(etags.items())
    )
    body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>"
    control.request("POST", f"/bench/k?uploadId={upload_id}", body=body)
    control.getresponse().read()


def warm(endpoint: str, uploads: int, checksum: str | None) -> None:
    import uvloop

    import asyncup

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    async def main() -> None:
        config = asyncup.TransferConfig(
            part_size=PART, concurrency=CONCURRENCY, checksum_algorithm=checksum
        )
        async with asyncup.Uploader(endpoint_url=endpoint, config=config, verify=False) as up:
            await up.client.create_bucket(Bucket="bench")
            for _ in range(uploads):
                before, started = cpu(), time.perf_counter()
                await up.upload(PATH, "bench", "k")
                took = time.perf_counter() - started
                print(f"{SIZE / took / 1e6:,.0f} MB/s, {cpu() - before:.2f} CPU s")

    uvloop.run(main())


def main() -> None:
    what, args = sys.argv[1], sys.argv[2:]
    make_file()
    if what == "ceiling":
        mode, tls, repeat = args[0], args[1] == "https", int(args[2])
        sink, endpoint = start_sink(tls)
        try:
            results = []
            for round_ in range(repeat + 1):  # the first is a warm-up
                before, started = cpu(), time.perf_counter()
                ceiling(mode, endpoint, tls)
                took = time.perf_counter() - started
                if round_:
                    results.append((SIZE / took / 1e6, cpu() - before))
            rates = [rate for rate, _ in results]
            print(
                f"{mode} {args[1]}: median {statistics.median(rates):,.0f} MB/s,"
                f" {statistics.median(c for _, c in results):.2f} CPU s/GiB;"
                f" runs {[round(r) for r in rates]}"
            )
        finally:
            sink.terminate()
    else:
        tls, uploads = args[0] == "https", int(args[1])
        checksum = args[2] if len(args) > 2 else "CRC32"
        sink, endpoint = start_sink(tls)
        try:
            warm(endpoint, uploads, None if checksum == "none" else checksum)
        finally:
            sink.terminate()


if __name__ == "__main__":
    main()
