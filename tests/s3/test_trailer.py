"""UploadPart with its checksum in a trailer (issue 17, work in progress): the request
``wire.trailed`` builds and ``payloads.TrailedPayload`` sends, each byte of the part read
once, against SeaweedFS, which checks signatures and trailers (moto checks neither)."""

from __future__ import annotations

import http.client
import os
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import pytest

from asyncup import SourceChangedError, TransferConfig, Uploader, UploadEvent, upload
from asyncup._core.checksums import b64, raw_digest
from asyncup._core.wire import TRAILED, Identity, Request, build, sign, trailed
from asyncup._pipeline import worker
from asyncup._s3 import payloads
from asyncup._s3.payloads import TrailedPayload, send_blocking
from tests.conftest import MiB, assert_object, random_bytes, tls_client
from tests.servers import ACCESS_KEY, SECRET_KEY

ON_SEAWEEDFS = pytest.mark.parametrize("server", ["seaweedfs"], indirect=True)
DATA = random_bytes(5 * MiB + 1234, seed=61)


def put_part(
    endpoint: str, params: dict[str, Any], payload: TrailedPayload, ca: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Send one trailed UploadPart as asyncup's threads send a part: (status, headers, body)."""
    url = urlsplit(endpoint)
    plain = build("upload_part", params, f"/{params['Bucket']}")
    assert isinstance(plain, Request)
    request = trailed(plain, payload.algorithm)
    who = Identity(ACCESS_KEY, SECRET_KEY, None, "us-east-1")
    headers = sign(request, url.netloc, who, payload=TRAILED)
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=ca)
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.netloc, context=context, timeout=30
        )
    else:
        connection = http.client.HTTPConnection(url.netloc, timeout=30)
    try:
        connection.putrequest("PUT", request.target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        send_blocking(payload, connection.sock)
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


@ON_SEAWEEDFS
@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA256"])
@pytest.mark.parametrize("right", [True, False])
async def test_a_trailed_part_is_checked_by_the_store(
    server: str, s3: Any, bucket: str, endpoint: str, tmp_path: Path, algorithm: str, right: bool
) -> None:
    """The store takes a part whose trailer is the checksum of its bytes, and says it back;
    one whose trailer is another value is refused."""
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 100 + DATA)
    created = await s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm=algorithm)
    params = {
        "Bucket": bucket,
        "Key": "k",
        "UploadId": created["UploadId"],
        "PartNumber": 1,
        "ContentLength": len(DATA),
        "ChecksumAlgorithm": algorithm,
    }
    expected = b64(raw_digest(algorithm, memoryview(DATA)))
    payload = TrailedPayload(str(path), 100, len(DATA), algorithm, wrong=not right)
    status, headers, body = await anyio.to_thread.run_sync(put_part, endpoint, params, payload)
    assert payload.digest is not None
    assert b64(payload.digest.checksum or b"") == expected
    if right:
        assert status == 200, body
        assert headers[f"x-amz-checksum-{algorithm.lower()}"] == expected
        parts = await s3.list_parts(Bucket=bucket, Key="k", UploadId=created["UploadId"])
        assert [part["Size"] for part in parts["Parts"]] == [len(DATA)]
    else:
        assert status == 400, body
        assert b"Digest" in body
    await s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=created["UploadId"])


async def test_a_trailed_part_goes_through_tls(
    seaweedfs_tls: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, ca = seaweedfs_tls
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    async with tls_client(endpoint, ca) as s3:
        await s3.create_bucket(Bucket="trailed")
        created = await s3.create_multipart_upload(
            Bucket="trailed", Key="k", ChecksumAlgorithm="CRC32"
        )
        params = {
            "Bucket": "trailed",
            "Key": "k",
            "UploadId": created["UploadId"],
            "PartNumber": 1,
            "ContentLength": len(DATA),
            "ChecksumAlgorithm": "CRC32",
        }
        payload = TrailedPayload(str(path), 0, len(DATA), "CRC32")
        status, headers, body = await anyio.to_thread.run_sync(
            put_part, endpoint, params, payload, ca
        )
        assert status == 200, body
        assert headers["x-amz-checksum-crc32"] == b64(raw_digest("CRC32", memoryview(DATA)))
        await s3.abort_multipart_upload(Bucket="trailed", Key="k", UploadId=created["UploadId"])


def record_trailed(monkeypatch: pytest.MonkeyPatch, wrong_once: int | None = None) -> list[int]:
    """The offsets of the trailed parts sent (each send); with ``wrong_once``, the first
    send at that offset says a wrong trailer."""
    sent: list[int] = []
    real = payloads._send_trailed

    def recorded(payload: TrailedPayload, sock: Any, fd: int) -> None:
        if payload.offset == wrong_once and payload.offset not in sent:
            payload.wrong = True
        sent.append(payload.offset)
        real(payload, sock, fd)
        payload.wrong = False

    monkeypatch.setattr(payloads, "_send_trailed", recorded)
    return sent


PART = 5 * MiB
CONFIG = TransferConfig(part_size=PART, multipart_threshold=PART, concurrency=2)
BIG = random_bytes(2 * PART + 2 * MiB, seed=62)  # three parts: 5, 5 and 2 MiB


def big_file(folder: Path) -> Path:
    path = folder / "big.bin"
    path.write_bytes(BIG)
    return path


async def test_a_files_parts_go_with_trailers_through_tls_each_byte_read_once(
    seaweedfs_tls: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over TLS to a store that verifies trailers, a file's parts are read once each, their
    checksums sent after them: no digest pass before a part is sent."""
    endpoint, ca = seaweedfs_tls
    path = big_file(tmp_path)
    sent = record_trailed(monkeypatch)
    passes: list[int] = []
    real_digest = worker.digest_range

    async def counted(path: str, offset: int, *args: Any, **kwargs: Any) -> Any:
        passes.append(offset)
        return await real_digest(path, offset, *args, **kwargs)

    monkeypatch.setattr(worker, "digest_range", counted)
    async with tls_client(endpoint, ca) as s3:
        await s3.create_bucket(Bucket="trailed-file")
        result = await upload(
            path, "trailed-file", "k", endpoint_url=endpoint, verify=ca, config=CONFIG
        )
        assert result.parts == 3
        assert result.verified_by == "store"
        assert sorted(sent) == [0, 0, PART, 2 * PART]  # the probe's byte, then each part
        assert passes == []
        await assert_object(s3, "trailed-file", "k", BIG, PART)


async def test_a_refused_trailer_sends_the_part_again_read_twice(
    seaweedfs_tls: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part whose trailer the store refuses (here: a wrong value, once) is sent again as
    parts are without trailers: its checksum first, then its bytes."""
    endpoint, ca = seaweedfs_tls
    path = big_file(tmp_path)
    sent = record_trailed(monkeypatch, wrong_once=PART)
    started: list[int | None] = []

    def count_starts(event: UploadEvent) -> None:
        if event.kind == "part_started":
            started.append(event.part_number)

    async with tls_client(endpoint, ca) as s3:
        await s3.create_bucket(Bucket="trailed-refused")
        result = await upload(
            path, "trailed-refused", "k", endpoint_url=endpoint, verify=ca, config=CONFIG,
            on_event=count_starts,
        )  # fmt: skip
        assert result.parts == 3
        assert sent.count(PART) == 1  # refused: not sent with a trailer again
        assert sorted(started) == [1, 2, 3]  # each part started once, however it went
        await assert_object(s3, "trailed-refused", "k", BIG, PART)


async def test_a_file_that_shrinks_while_a_trailed_part_is_sent_is_source_changed(
    seaweedfs_tls: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, ca = seaweedfs_tls
    path = big_file(tmp_path)

    def truncate_once_part_2_starts(event: UploadEvent) -> None:
        if event.kind == "part_started" and event.part_number == 2:
            os.truncate(path, PART + PART // 2)

    one_at_a_time = TransferConfig(
        part_size=PART, multipart_threshold=PART, concurrency=1, queue_size=0
    )
    async with tls_client(endpoint, ca) as s3:
        await s3.create_bucket(Bucket="trailed-shrinks")
        with pytest.raises(SourceChangedError) as caught:
            await upload(
                path, "trailed-shrinks", "k", endpoint_url=endpoint, verify=ca,
                config=one_at_a_time, on_event=truncate_once_part_2_starts,
            )  # fmt: skip
        assert caught.value.part_number == 2
        assert "ended inside part 2" in str(caught.value)
        assert caught.value.abort_succeeded is True
        listing = await s3.list_multipart_uploads(Bucket="trailed-shrinks")
        assert listing.get("Uploads", []) == []


@pytest.mark.parametrize("headers_checked", [False, True])
async def test_a_store_that_takes_any_trailer_gets_checksums_in_headers(
    headers_checked: bool,
    private_ca: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """moto over TLS checks no checksum: no part goes with a trailer. Said to check those in
    headers (as some stores do), it is probed for trailers: it takes a wrong one (and says
    it back as if checked), so its parts still go with their checksums in headers."""
    url, ca = private_ca
    bucket = f"moto-trailers-{headers_checked}".lower()
    path = big_file(tmp_path)
    sent = record_trailed(monkeypatch)
    async with (
        tls_client(url, ca) as s3,
        Uploader(endpoint_url=url, verify=ca, config=CONFIG) as up,
    ):
        await s3.create_bucket(Bucket=bucket)
        assert up._s3 is not None
        if headers_checked:
            up._s3.store("CRC32").verifies = True
        result = await up.upload(path, bucket, "k")
        assert result.parts == 3
        assert up._s3.store("CRC32").trails is (False if headers_checked else None)
        await assert_object(s3, bucket, "k", BIG, PART)
    assert sent == ([0] if headers_checked else [])  # the probe's byte alone


async def test_without_the_lean_path_no_part_goes_with_a_trailer(
    seaweedfs_tls: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ASYNCUP_LEAN=0 every request goes through botocore, which cannot send a framed
    body: even to a store known to verify trailers (as S3 is, without a probe), the parts
    go as before."""
    monkeypatch.setenv("ASYNCUP_LEAN", "0")
    endpoint, ca = seaweedfs_tls
    path = big_file(tmp_path)
    sent = record_trailed(monkeypatch)
    async with (
        tls_client(endpoint, ca) as s3,
        Uploader(endpoint_url=endpoint, verify=ca, config=CONFIG) as up,
    ):
        await s3.create_bucket(Bucket="no-lean")
        assert up._s3 is not None
        up._s3.store("CRC32").verifies = up._s3.store("CRC32").trails = True  # as for S3 itself
        result = await up.upload(path, "no-lean", "k")
        assert result.parts == 3
        await assert_object(s3, "no-lean", "k", BIG, PART)
    assert sent == []


async def test_a_store_that_refuses_trailers_gets_none_after_its_first_refusal(
    seaweedfs_tls: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that refuses a part's trailer for good (here: each trailer said wrong, after
    the probe found it checks them) gets that part again without one, and the client's
    next parts without one either: each refusal costs attempts and retry quota."""
    endpoint, ca = seaweedfs_tls
    path = big_file(tmp_path)
    sent: list[int] = []
    real = payloads._send_trailed

    def always_wrong(payload: TrailedPayload, sock: Any, fd: int) -> None:
        payload.wrong = True
        sent.append(payload.offset)
        real(payload, sock, fd)

    monkeypatch.setattr(payloads, "_send_trailed", always_wrong)
    one_at_a_time = TransferConfig(
        part_size=PART, multipart_threshold=PART, concurrency=1, queue_size=0
    )
    async with (
        tls_client(endpoint, ca) as s3,
        Uploader(endpoint_url=endpoint, verify=ca, config=one_at_a_time) as up,
    ):
        await s3.create_bucket(Bucket="refuses-trailers")
        result = await up.upload(path, "refuses-trailers", "k")
        assert result.parts == 3
        assert up._s3 is not None
        assert up._s3.store("CRC32").trails is False
        await assert_object(s3, "refuses-trailers", "k", BIG, PART)
    assert set(sent) == {0}  # the probe's byte and part 1's tries, none of the next parts
