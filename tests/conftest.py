"""Fixtures: a real S3 endpoint (moto server on 127.0.0.1), a bucket per test, a fault proxy."""

from __future__ import annotations

import atexit
import hashlib
import itertools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.abc
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from asyncup_bench.tlscert import CertFiles, make_certificates
from moto.server import ThreadedMotoServer

import asyncup
from asyncup._s3.client import open_client
from tests.faultproxy import FaultProxy
from tests.servers import ACCESS_KEY, SECRET_KEY, moto_process, seaweedfs

# The credential chain of asyncup's own clients must find something, and never a real account.
os.environ.update(
    AWS_ACCESS_KEY_ID=ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY=SECRET_KEY,
    AWS_DEFAULT_REGION="us-east-1",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)
# asyncup's cache (botocore's data parsed, fast starts' records): the session's own, not the
# user's, for this process and the commands it runs.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="asyncup-tests-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)

MiB = 1024 * 1024
_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs_endpoint() -> Iterator[str]:
    with seaweedfs() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(endpoint, CA bundle): moto over HTTPS, serving a 127.0.0.1 certificate signed by a
    private CA (``asyncup_bench.tlscert``), whose CA file is the bundle a user would pass."""
    certs = make_certificates(str(tmp_path_factory.mktemp("tls-moto")))
    with moto_process("--ssl-cert", certs.cert, "--ssl-key", certs.key, scheme="https") as url:
        yield url, certs.ca


@pytest.fixture(scope="session")
def proxy_certificates(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A certificate for a fault proxy that serves HTTPS on 127.0.0.1, and its private CA."""
    return make_certificates(str(tmp_path_factory.mktemp("tls-proxy")))


@pytest.fixture(scope="session")
def seaweedfs_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(endpoint, CA bundle): SeaweedFS over HTTPS, which checks every signature and checksum
    (moto checks neither), serving a certificate signed by a private CA."""
    certs = make_certificates(str(tmp_path_factory.mktemp("tls-seaweedfs")))
    with seaweedfs((certs.cert, certs.key)) as url:
        yield url, certs.ca


def tls_client(endpoint: str, verify: bool | str) -> Any:
    """An aiobotocore client to a server over HTTPS (setting up and reading back)."""
    return get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", verify=verify, config=client_config()
    )


SERVERS = ["moto", "seaweedfs"]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    """The name of the S3 server this test runs against; every integration test runs on both."""
    name: str = request.param
    return name


@pytest.fixture
def endpoint(server: str, request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{server}_endpoint")
    return url


def client_config(**overrides: Any) -> AioConfig:
    """A caller's client as the tests make it: botocore's own retries off, so every retry
    seen in a test is asyncup's, and no checksum of botocore's own, so that every checksum
    a store sees is one asyncup sent (a part sent without one fails the tests)."""
    settings: dict[str, Any] = {
        "retries": {"total_max_attempts": 1},
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "connect_timeout": 5,
        "read_timeout": 10,
        "max_pool_connections": 32,
    }
    settings.update(overrides)
    return AioConfig(**settings)


# How a client's parts go out: "aiohttp", a caller's own aiobotocore client (parts written
# from the event loop); "threads", a client as asyncup makes its own (parts of 1 MiB or more
# sent from worker threads, asyncup._threaded).
WIRES = ("aiohttp", "threads")


async def make_client(
    endpoint: str, *, wire: str = "aiohttp", verify: str | None = None, **overrides: Any
) -> Any:
    """A client to ``endpoint`` (over HTTPS: ``verify`` is the CA bundle)."""
    if wire == "threads":
        return open_client(
            endpoint,
            asyncup.TransferConfig(),
            region_name="us-east-1",
            client_config=client_config(**overrides),
            verify=verify,
        )
    session = get_session()
    return session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        verify=verify,
        config=client_config(**overrides),
    )


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest) -> str:
    """Each test of the proxied clients runs with both ways of sending parts."""
    wire: str = request.param
    return wire


@pytest.fixture
async def s3(endpoint: str) -> AsyncIterator[Any]:
    """An aiobotocore client straight to the server (for setting up and reading back)."""
    async with await make_client(endpoint) as client:
        yield client


@pytest.fixture
async def bucket(s3: Any, server: str) -> AsyncIterator[str]:
    """A new bucket per test; on SeaweedFS emptied and deleted afterwards (each bucket there
    is a collection with volumes of its own)."""
    name = f"asyncup-test-{os.getpid()}-{next(_bucket_numbers)}"
    await s3.create_bucket(Bucket=name)
    yield name
    if server == "seaweedfs":
        await empty_and_delete(s3, name)


async def empty_and_delete(s3: Any, name: str) -> None:
    uploads = await s3.list_multipart_uploads(Bucket=name)
    for upload in uploads.get("Uploads", []):
        await s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    listing = await s3.list_objects_v2(Bucket=name)
    for item in listing.get("Contents", []):
        await s3.delete_object(Bucket=name, Key=item["Key"])
    await s3.delete_bucket(Bucket=name)


@pytest.fixture
async def proxy(endpoint: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(endpoint) as fault_proxy:
        yield fault_proxy


@pytest.fixture
async def proxied(proxy: FaultProxy, wire: str) -> AsyncIterator[Any]:
    """A client whose requests go through the fault proxy. Its read timeout is long enough
    that a busy machine never times a request out: a timed-out request goes on in the proxy
    while its retry runs, which would blur the in-flight counts the tests check."""
    async with await make_client(proxy.url, wire=wire, read_timeout=10) as client:
        yield client


@pytest.fixture
async def proxied_short(proxy: FaultProxy, wire: str) -> AsyncIterator[Any]:
    """Through the fault proxy with a 1.5 s read timeout, for tests of stalls."""
    async with await make_client(proxy.url, wire=wire, read_timeout=1.5) as client:
        yield client


def start(command: list[str]) -> subprocess.Popen[bytes]:
    """A child process for a test to kill (not anyio.open_process: the suite's event loop may
    not own a child watcher)."""
    return subprocess.Popen(command)


async def wait_quiet(proxy: FaultProxy) -> None:
    """Until no part has been through ``proxy`` for a second: the requests of a process that
    died (or was interrupted) go on in the proxy for a while (its delays), and land late."""
    with anyio.fail_after(20):
        while True:
            last = proxy.part_timeline[-1][0] if proxy.part_timeline else 0.0
            if proxy.parts_in_flight == 0 and time.monotonic() - last > 1.0:
                return
            await anyio.sleep(0.1)


async def interrupt(process: anyio.abc.Process) -> tuple[int, str]:
    """Ctrl-C to a running command: its exit status and what it wrote on stderr."""
    process.send_signal(signal.SIGINT)
    with anyio.fail_after(20):
        returncode = await process.wait()
    assert process.stderr is not None
    return returncode, b"".join([chunk async for chunk in process.stderr]).decode()


async def read_object(s3: Any, bucket: str, key: str) -> bytes:
    response = await s3.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


def expected_etag(data: bytes, part_size: int | None) -> str:
    """S3's ETag for ``data``: plain MD5, or multipart (md5 of part MD5s, "-N")."""
    if part_size is None:
        return f'"{hashlib.md5(data).hexdigest()}"'
    md5s = [
        hashlib.md5(data[i : i + part_size]).digest()
        for i in range(0, max(len(data), 1), part_size)
    ]
    return f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'


async def assert_object(s3: Any, bucket: str, key: str, data: bytes, part_size: int | None) -> None:
    """The object reads back byte for byte and has the ETag its bytes and parts imply."""
    head = await s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == expected_etag(data, part_size)
    assert await read_object(s3, bucket, key) == data


async def assert_nothing_left(s3: Any, bucket: str, key: str) -> None:
    """No multipart upload is left in the bucket and no object exists at ``key``."""
    listing = await s3.list_multipart_uploads(Bucket=bucket)
    assert listing.get("Uploads", []) == []
    objects = await s3.list_objects_v2(Bucket=bucket, Prefix=key)
    assert objects.get("KeyCount", 0) == 0


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking bytes (fast: no os.urandom for MiBs)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    reps = size // len(block) + 1
    data = bytearray(block * reps)[:size]
    # Make each 64 KiB block different so that misplaced parts are caught.
    for i in range(0, size, len(block)):
        stamp = i.to_bytes(8, "big")[: size - i]
        data[i : i + len(stamp)] = stamp
    return bytes(data)
