"""The lean path on real servers (issue 17): after a bucket's first write, asyncup's own
client sends PutObject, UploadPart, CreateMultipartUpload and CompleteMultipartUpload without
botocore's pipeline, signed as botocore signs (SeaweedFS checks every signature), answered
and failing as through botocore; what it cannot say goes through botocore, with a DEBUG line
saying why."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiohttp import web

import asyncup
from asyncup._s3 import lean
from tests.conftest import MiB, assert_object, random_bytes
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.timeout(60)


def botocore_sends(client: Any, *operations: str) -> list[str]:
    """The requests botocore itself sends through ``client`` (the lean path's are not)."""
    sent: list[str] = []
    for operation in operations:
        client.meta.events.register(
            f"before-send.s3.{operation}", lambda operation=operation, **_: sent.append(operation)
        )
    return sent


async def test_small_objects_go_lean_after_the_first(endpoint: str, s3: Any, bucket: str) -> None:
    blobs = {f"small/{n}": random_bytes(1000 + n, seed=n) for n in range(30)}
    extra = {"ContentType": "text/plain", "Metadata": {"n": "1"}}
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        sent = botocore_sends(up.client, "PutObject")
        items = [(blob, key) for key, blob in blobs.items()]
        summary = await up.upload_many(items, bucket, extra_args=extra, objects_in_flight=1)
    assert summary.ok, summary.errors
    assert sent == ["PutObject"]  # the first, which taught the bucket's endpoint
    for key, blob in blobs.items():
        await assert_object(s3, bucket, key, blob, None)
    head = await s3.head_object(Bucket=bucket, Key="small/7")
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"n": "1"}
    assert [r.etag for r in summary.results if r.key == "small/7"] == [head["ETag"]]


async def test_parts_go_lean_after_the_first(
    endpoint: str, s3: Any, bucket: str, tmp_path: Path
) -> None:
    part = 5 * MiB
    config = asyncup.TransferConfig(part_size=part, multipart_threshold=part, concurrency=1)
    data = random_bytes(3 * part + 7, seed=4)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    operations = ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
    async with asyncup.Uploader(endpoint_url=endpoint, config=config) as up:
        sent = botocore_sends(up.client, *operations)
        from_file = await up.upload(path, bucket, "from-file")
        from_memory = await up.upload(data, bucket, "from-memory")
    # The first Create taught the endpoint; the rest of both uploads went lean.
    assert sent == ["CreateMultipartUpload"]
    assert from_file.parts == from_memory.parts == 4
    await assert_object(s3, bucket, "from-file", data, part)
    await assert_object(s3, bucket, "from-memory", data, part)


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_an_error_answer_is_botocores_error(endpoint: str, bucket: str) -> None:
    """IfNoneMatch on a key that exists: 412 PreconditionFailed, the same code and message
    whichever path sent it."""
    args = {"IfNoneMatch": "*"}
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        await up.upload(b"first", bucket, "k", extra_args=args)  # learns the endpoint
        with pytest.raises(asyncup.UploadError) as lean_error:
            await up.upload(b"second", bucket, "k", extra_args=args)
    assert lean_error.value.code == "PreconditionFailed"
    assert type(lean_error.value.__cause__).__name__ == "ClientError"


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_what_the_lean_path_cannot_say_goes_through_botocore(
    endpoint: str, s3: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncup")
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        sent = botocore_sends(up.client, "PutObject")
        await up.upload(b"a", bucket, "a")
        await up.upload(b"b", bucket, "b", extra_args={"Expires": "2030-01-01T00:00:00Z"})
        await up.upload(b"c", bucket, "c")
    assert sent == ["PutObject", "PutObject"]  # the first, and the one with a time to parse
    assert "goes through botocore (Expires='2030-01-01T00:00:00Z'" in caplog.text
    head = await s3.head_object(Bucket=bucket, Key="b")
    assert head["Expires"].year == 2030


@pytest.mark.parametrize("server", ["moto"], indirect=True)
@pytest.mark.parametrize("code", ["RequestTimeTooSkewed", "PermanentRedirect"])
async def test_answers_botocore_handles_send_the_attempt_through_it(
    endpoint: str, s3: Any, bucket: str, code: str
) -> None:
    """A clock-skew or redirect answer to a lean request: the attempt is made again through
    botocore (which corrects for them), and the endpoint is learnt again."""
    async with FaultProxy(endpoint) as proxy, asyncup.Uploader(endpoint_url=proxy.url) as up:
        sent = botocore_sends(up.client, "PutObject")
        await up.upload(b"a", bucket, "a")
        proxy.fail("PutObject", "hook", hook=_answer(code))
        await up.upload(b"b", bucket, "b")
        await up.upload(b"c", bucket, "c")
    assert sent == ["PutObject", "PutObject", "PutObject"]  # a; b again; c learns anew
    for key in "abc":
        await assert_object(s3, bucket, key, key.encode(), None)


def _answer(code: str) -> Any:
    async def hook(request: web.Request) -> None:
        await request.read()
        body = f"<Error><Code>{code}</Code><Message>as a test says</Message></Error>"
        raise web.HTTPBadRequest(text=body, content_type="application/xml")

    return hook


def test_the_lean_path_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCUP_LEAN", "0")

    class Client:
        put_object = object()

    lean.attach(Client())
    assert lean.method(Client(), "put_object") is Client.put_object


@pytest.mark.parametrize("server", ["moto"], indirect=True)
async def test_a_client_configured_otherwise_sends_everything_through_botocore(
    endpoint: str, bucket: str
) -> None:
    """Payloads signed (client_config): the lean path would send UNSIGNED-PAYLOAD, so it is
    off, never silently different."""
    config = AioConfig(s3={"payload_signing_enabled": True})
    async with asyncup.Uploader(endpoint_url=endpoint, client_config=config) as up:
        sent = botocore_sends(up.client, "PutObject")
        for key in "abc":
            await up.upload(key.encode(), bucket, key)
    assert sent == ["PutObject"] * 3
