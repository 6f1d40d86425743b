"""Faults in parts sent with a trailing checksum: the fault proxy over HTTPS, in front of
SeaweedFS (which checks every signature and trailer), so that an Uploader's own client sends
a file's parts as it does over TLS to S3: each read once, its checksum after it (aws-chunked,
``STREAMING-UNSIGNED-PAYLOAD-TRAILER``)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from asyncup_bench.tlscert import CertFiles

import asyncup
from asyncup._pipeline import integrity
from tests.conftest import MiB, assert_nothing_left, assert_object, make_client, random_bytes
from tests.faultproxy import FaultProxy

PART = 5 * MiB
DATA = random_bytes(2 * PART + 2 * MiB, seed=71)  # three parts: 5, 5 and 2 MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART,
    multipart_threshold=PART,
    concurrency=2,
    max_attempts=4,
    retry_base_delay=0.01,
    retry_max_delay=0.05,
)
ONE_AT_A_TIME = dataclasses.replace(CONFIG, concurrency=1, queue_size=0)


@pytest.fixture
async def tls_proxy(
    seaweedfs_endpoint: str, proxy_certificates: CertFiles
) -> AsyncIterator[FaultProxy]:
    tls = (proxy_certificates.cert, proxy_certificates.key)
    async with FaultProxy(seaweedfs_endpoint, tls=tls) as proxy:
        yield proxy


@pytest.fixture
async def store(seaweedfs_endpoint: str) -> AsyncIterator[Any]:
    """A client straight to SeaweedFS, for setting up and reading back."""
    async with await make_client(seaweedfs_endpoint) as client:
        yield client


async def new_bucket(store: Any, name: str) -> str:
    await store.create_bucket(Bucket=name)
    return name


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)
    return path


async def upload_still_trailing(
    proxy: FaultProxy,
    certificates: CertFiles,
    path: Path,
    bucket: str,
    config: Any = CONFIG,
    resume: Path | None = None,
) -> asyncup.UploadResult:
    """``path`` uploaded through ``proxy`` by an Uploader's own client, which afterwards
    still sends its parts with trailers."""
    async with asyncup.Uploader(
        endpoint_url=proxy.url, verify=certificates.ca, config=config
    ) as up:
        result = await up.upload(path, bucket, "k", resume=resume)
        assert up._s3 is not None
        assert up._s3.store("CRC32").trails is True
    return result


def trailed_parts(proxy: FaultProxy) -> list[bool]:
    """For each UploadPart that reached the proxy: whether it came with a trailer."""
    return [
        headers.get("x-amz-trailer") == "x-amz-checksum-crc32"
        and headers.get("x-amz-content-sha256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        for operation, headers in proxy.requests
        if operation == "UploadPart"
    ]


@pytest.mark.parametrize(
    ("fault", "times"), [("503", 2), ("500", 1), ("reset", 2), ("lost", 1), ("stall", 1)]
)
async def test_a_trailed_part_is_retried_with_its_trailer_and_the_object_is_identical(
    fault: str,
    times: int,
    tls_proxy: FaultProxy,
    proxy_certificates: CertFiles,
    store: Any,
    big: Path,
) -> None:
    """A fault in a trailed part (refused, cut mid-body, its answer lost or stalled) is
    retried, with its trailer again: a transient fault does not make the client give up
    trailers."""
    bucket = await new_bucket(store, f"trailed-{fault}")
    tls_proxy.fail("UploadPart", fault, times=times, part=2, stall=2)
    result = await upload_still_trailing(tls_proxy, proxy_certificates, big, bucket)
    assert result.parts == 3
    assert result.verified_by == "store"
    assert tls_proxy.faults_injected[fault] == times
    assert trailed_parts(tls_proxy) == [True] * (3 + times)
    await assert_object(store, bucket, "k", DATA, PART)
    assert (await store.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


async def test_a_trailed_part_corrupted_on_the_way_is_sent_again_checksum_in_a_header(
    tls_proxy: FaultProxy, proxy_certificates: CertFiles, store: Any, big: Path
) -> None:
    """A byte of a trailed part flipped on the way: the store refuses its trailer, and the
    part is sent again read twice (its checksum first, in a header). The store took a
    trailed part before, so the refusal is not taken for a store that refuses trailers:
    the next part goes with its trailer."""
    bucket = await new_bucket(store, "trailed-corrupt")
    tls_proxy.fail("UploadPart", "corrupt", part=2)
    result = await upload_still_trailing(tls_proxy, proxy_certificates, big, bucket, ONE_AT_A_TIME)
    assert result.parts == 3
    assert tls_proxy.faults_injected["corrupt"] == 1
    assert trailed_parts(tls_proxy) == [True, True, False, True]  # parts 1, 2, 2 again, 3
    await assert_object(store, bucket, "k", DATA, PART)


async def test_a_trailed_part_failing_for_good_aborts_the_upload(
    tls_proxy: FaultProxy, proxy_certificates: CertFiles, store: Any, big: Path
) -> None:
    """Every attempt of a trailed part refused: one UploadError, the upload aborted, nothing
    left behind."""
    bucket = await new_bucket(store, "trailed-fails")
    tls_proxy.fail("UploadPart", "503", times=CONFIG.max_attempts, part=2)
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(
            big, bucket, "k", endpoint_url=tls_proxy.url, verify=proxy_certificates.ca,
            config=CONFIG,
        )  # fmt: skip
    assert "SlowDown" in str(caught.value)
    assert tls_proxy.counts["AbortMultipartUpload"] == 1
    assert all(trailed_parts(tls_proxy))
    await assert_nothing_left(store, bucket, "k")


async def test_cancelled_while_a_trailed_part_is_sent_the_upload_is_aborted(
    tls_proxy: FaultProxy, proxy_certificates: CertFiles, store: Any, big: Path
) -> None:
    """Cancelled while a trailed part is on its way (its thread blocked in the send, the
    proxy not reading): the cancellation reaches the caller, the thread's socket is shut
    down, the upload is aborted and nothing is left."""
    bucket = await new_bucket(store, "trailed-cancelled")
    arrived = anyio.Event()

    async def hold(request: web.Request) -> None:
        arrived.set()
        await anyio.sleep(30)  # the body unread: the sender blocks once the buffers fill

    tls_proxy.fail("UploadPart", "hook", part=2, hook=hold)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:

            async def upload() -> None:
                await asyncup.upload(
                    big, bucket, "k", endpoint_url=tls_proxy.url,
                    verify=proxy_certificates.ca, config=CONFIG,
                )  # fmt: skip

            group.start_soon(upload)
            await arrived.wait()
            group.cancel_scope.cancel()
    assert group.cancel_scope.cancelled_caught
    assert tls_proxy.counts["AbortMultipartUpload"] == 1
    assert all(trailed_parts(tls_proxy))
    await assert_nothing_left(store, bucket, "k")


_kept = itertools.count()


@dataclasses.dataclass
class Kept:
    bucket: str
    journal: Path
    upload_id: str | None


@pytest.fixture
async def kept(
    tls_proxy: FaultProxy,
    proxy_certificates: CertFiles,
    store: Any,
    big: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Kept:
    """A resumable upload of ``big`` that stopped at part 2 (refused for good), kept with
    part 1 sent; the probes' part number (10,000) made 3, the upload's last."""
    monkeypatch.setattr(integrity, "MAX_PARTS", 3)
    bucket = await new_bucket(store, f"trailed-kept-{next(_kept)}")
    journal = tmp_path / "upload.resume"
    tls_proxy.fail("UploadPart", "403", part=2)
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(
            big, bucket, "k", endpoint_url=tls_proxy.url, verify=proxy_certificates.ca,
            config=ONE_AT_A_TIME, resume=journal,
        )  # fmt: skip
    return Kept(bucket, journal, caught.value.upload_id)


async def test_a_resumed_upload_that_holds_the_probes_part_is_probed_elsewhere(
    tls_proxy: FaultProxy, proxy_certificates: CertFiles, store: Any, big: Path, kept: Kept
) -> None:
    """The probes (checksums in headers, in trailers) send one byte as the highest part
    number, 10,000: made 3 here, the upload's last. A resumed upload may hold that part
    already, which the probe's byte would replace on a store that takes it: both probes go
    to uploads of their own, and part 3 to the resumed one."""
    bucket, journal = kept.bucket, kept.journal
    part_3: list[tuple[str, str | None]] = []  # (upload, bytes): the probes' and the part's

    async def note(request: web.Request) -> None:
        length = request.headers.get("x-amz-decoded-content-length", request.content_length)
        part_3.append((request.query["uploadId"], str(length)))

    tls_proxy.fail("UploadPart", "hook", part=3, times=3, hook=note)
    tls_proxy.requests.clear()
    result = await upload_still_trailing(
        tls_proxy, proxy_certificates, big, bucket, ONE_AT_A_TIME, resume=journal
    )
    resumed = kept.upload_id
    assert result.upload_id == resumed
    assert sorted(length for _, length in part_3) == sorted(["1", "1", str(2 * MiB)])
    assert all((upload == resumed) == (length != "1") for upload, length in part_3)
    assert trailed_parts(tls_proxy)[-2:] == [True, True]  # parts 2 and 3
    await assert_object(store, bucket, "k", DATA, PART)
    assert (await store.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


async def test_a_trailer_probe_whose_upload_cannot_be_made_is_not_tried_again(
    tls_proxy: FaultProxy, proxy_certificates: CertFiles, store: Any, big: Path, kept: Kept
) -> None:
    """The trailer probe of a resumed upload that may hold part 10,000 (made 3 here) needs
    an upload of its own. Where that cannot be created, the client sends no trailers, and
    does not try again for each part (a Create, a probe and an Abort each time)."""
    bucket, journal = kept.bucket, kept.journal

    async def forward(request: web.Request) -> None:
        pass

    tls_proxy.fail("CreateMultipartUpload", "hook", hook=forward)  # the checksum probe's
    tls_proxy.fail("CreateMultipartUpload", "403")  # the trailer probe's
    tls_proxy.counts.clear()
    tls_proxy.requests.clear()
    async with asyncup.Uploader(
        endpoint_url=tls_proxy.url, verify=proxy_certificates.ca, config=ONE_AT_A_TIME
    ) as up:
        await up.upload(big, bucket, "k", resume=journal)
        assert up._s3 is not None
        assert up._s3.store("CRC32").verifies is True
        assert up._s3.store("CRC32").trails is False
    assert tls_proxy.counts["CreateMultipartUpload"] == 2
    assert tls_proxy.faults_injected["403"] == 2  # part 2 in the first run, then the Create
    assert not any(trailed_parts(tls_proxy))
    await assert_object(store, bucket, "k", DATA, PART)
    assert (await store.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


async def test_a_trailed_part_taken_after_an_early_refusal_turns_trailers_back_on(
    tls_proxy: FaultProxy, proxy_certificates: CertFiles, store: Any, big: Path
) -> None:
    """Two parts in flight at first: part 1's trailer refused (a byte flipped on the way)
    before part 2's was taken. The refusal came before the store had taken any, so it
    stopped trailers; part 2 taken then shows the store takes them: the client sends
    trailers again (``upload_still_trailing``)."""
    bucket = await new_bucket(store, "trailers-back-on")
    tls_proxy.fail("UploadPart", "corrupt", part=1)

    async def after_part_1(request: web.Request) -> None:
        await anyio.sleep(1.0)  # so that part 1's refusal comes first

    tls_proxy.fail("UploadPart", "hook", part=2, hook=after_part_1)
    two_at_a_time = dataclasses.replace(CONFIG, concurrency=2, queue_size=0)
    result = await upload_still_trailing(tls_proxy, proxy_certificates, big, bucket, two_at_a_time)
    assert result.parts == 3
    assert trailed_parts(tls_proxy).count(False) >= 1  # part 1 again, its checksum in a header
    await assert_object(store, bucket, "k", DATA, PART)
