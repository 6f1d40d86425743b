"""What an error says is known: a write that never reached the server claims nothing."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import asyncup
from tests.conftest import MiB, make_client, random_bytes
from tests.faultproxy import FaultProxy

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART,
    multipart_threshold=PART,
    max_attempts=3,
    retry_base_delay=0.01,
    retry_max_delay=0.02,
)
SIZES = {"PutObject": PART - 1, "CreateMultipartUpload": 2 * PART + 1}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def uploader(endpoint: str, wire: str) -> AsyncIterator[asyncup.Uploader]:
    """asyncup's own client ("threads"), or a caller's aiobotocore client ("aiohttp")."""
    if wire == "threads":
        async with asyncup.Uploader(endpoint_url=endpoint, config=CONFIG) as up:
            yield up
        return
    async with (
        await make_client(endpoint) as client,
        asyncup.Uploader(client=client, config=CONFIG) as up,
    ):
        yield up


@pytest.mark.parametrize("operation", SIZES)
@pytest.mark.parametrize(
    "where",
    [
        "refused",
        "unresolvable",
        "tls-to-plain",  # a TLS handshake with a server that speaks plain HTTP fails
    ],
)
async def test_a_write_that_could_not_connect_says_nothing_was_written(
    operation: str, where: str, wire: str, moto_endpoint: str
) -> None:
    endpoint = {
        "refused": f"http://127.0.0.1:{closed_port()}",
        "unresolvable": "http://asyncup-test.invalid:9",
        "tls-to-plain": moto_endpoint.replace("http://", "https://"),
    }[where]
    data = random_bytes(SIZES[operation], seed=1)
    with pytest.raises(asyncup.UploadError) as caught:
        async with uploader(endpoint, wire) as up:
            await up.upload(data, "bucket", "key")
    error = caught.value
    message = str(error)
    assert f"no attempt of {operation} reached the server" in message, message
    assert "nothing was written" in message
    assert "may exist" not in message
    assert "may have succeeded" not in message
    assert error.upload_id is None
    assert error.abort_succeeded is None


async def test_a_write_that_reached_the_server_still_says_what_may_exist(
    proxy: FaultProxy, proxied: Any, bucket: str
) -> None:
    """The other side of the rule: a PutObject whose connection broke once sent may have
    been written; with the object at the key not ours, the error says one may exist."""
    for _ in range(2 * CONFIG.max_attempts):  # the HTTP layers resend once on a broken PUT
        proxy.fail("PutObject", "reset")
    proxy.fail("HeadObject", "alien")
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(
            random_bytes(PART - 1, seed=2), bucket, "key", client=proxied, config=CONFIG
        )
    message = str(caught.value)
    assert "PutObject may have succeeded" in message
    assert "nothing was written" not in message
