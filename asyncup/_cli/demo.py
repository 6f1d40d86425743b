"""``asyncup demo``: real bytes through the whole pipeline to an embedded S3 endpoint.

moto server is started on a free loopback port, a file of random bytes is uploaded, and the
result is checked independently of asyncup's own checks: the ETag S3 returns is compared
with the one computed here from the parts written, and the object is read back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread

from .._core.checksums import multipart_etag
from .._core.config import MiB, TransferConfig
from .._core.plan import plan_known_size
from .._pipeline.uploader import Uploader
from .._s3.client import open_plain_client


@asynccontextmanager
async def embedded_s3() -> AsyncIterator[tuple[str, Any]]:
    """Yield (endpoint_url, client) for a moto server started on a free loopback port."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover
        raise SystemExit("the demo needs moto: pip install 'asyncup[demo]'") from exc
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    await anyio.to_thread.run_sync(server.start)
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        async with open_plain_client(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="asyncup-demo",
            aws_secret_access_key="asyncup-demo",
        ) as client:
            yield endpoint, client
    finally:
        await anyio.to_thread.run_sync(server.stop)


def write_random(path: str, size: int, part_size: int) -> tuple[str, str]:
    """Write ``size`` random bytes; return their sha256 and the multipart ETag they imply."""
    sha = hashlib.sha256()
    md5s = []
    with open(path, "wb") as out:
        for part in plan_known_size(size, part_size).parts():
            chunk = os.urandom(part.length)
            sha.update(chunk)
            md5s.append(hashlib.md5(chunk, usedforsecurity=False).digest())
            out.write(chunk)
    return sha.hexdigest(), multipart_etag(md5s)


async def read_sha256(client: Any, bucket: str, key: str) -> str:
    got = await client.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    async with got["Body"] as body:
        while chunk := await body.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def run_demo(size: int, config: TransferConfig) -> int:
    with tempfile.TemporaryDirectory(prefix="asyncup-demo-") as tmp:
        path = os.path.join(tmp, "demo.bin")
        sha, etag = await anyio.to_thread.run_sync(write_random, path, size, config.part_size)
        async with embedded_s3() as (endpoint, client):
            print(f"embedded S3 endpoint (moto server): {endpoint}")
            await client.create_bucket(Bucket="asyncup-demo")
            async with Uploader(client=client, config=config) as up:
                started = time.perf_counter()
                result = await up.upload(path, "asyncup-demo", "demo.bin")
                elapsed = time.perf_counter() - started
            same = await read_sha256(client, "asyncup-demo", "demo.bin") == sha
    etag_ok = result.etag == etag
    print(
        f"uploaded {result.size / MiB:.1f} MiB in {result.parts} parts"
        f" ({config.concurrency} in flight) in {elapsed:.2f}s:"
        f" {result.size / MiB / elapsed:.1f} MiB/s"
    )
    print(f"each part sent with its {result.checksum_algorithm} checksum, computed off the loop")
    print(
        f"ETag {result.etag}: {'verified' if etag_ok else 'DIFFERENT'}"
        f" (expected {etag}, from the MD5s of the parts written)"
    )
    print(f"read back byte for byte: {'identical' if same else 'DIFFERENT'}")
    return 0 if same and etag_ok else 1
