"""Resume after a crash: ``upload(..., resume=PATH)`` keeps a journal and goes on from it."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import sys
import textwrap
from typing import Any

import anyio
import pytest

import asyncup
from asyncup._core import records
from asyncup._pipeline import integrity
from asyncup._pipeline import resume as _resume
from tests.conftest import MiB, assert_object, random_bytes, start, wait_quiet
from tests.faultproxy import FaultProxy

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART,
    multipart_threshold=PART,
    concurrency=2,
    max_attempts=2,
    retry_base_delay=0.01,
    retry_max_delay=0.02,
)
DATA = random_bytes(5 * PART + 1234, seed=11)  # 6 parts


@pytest.fixture
def source(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "source.bin"
    path.write_bytes(DATA)
    return path


@pytest.fixture
def journal(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "state" / "upload.resume"


async def recorded_parts(journal: pathlib.Path) -> set[int]:
    _, parts = records.parse(await anyio.Path(journal).read_text())
    return set(parts)


async def exists(path: pathlib.Path) -> bool:
    return await anyio.Path(path).exists()


async def uploads_of(s3: Any, bucket: str) -> list[str]:
    listing = await s3.list_multipart_uploads(Bucket=bucket)
    return [upload["UploadId"] for upload in listing.get("Uploads", [])]


async def fail_after_some_parts(
    proxy: FaultProxy, client: Any, bucket: str, source: pathlib.Path, journal: pathlib.Path
) -> asyncup.UploadError:
    """An upload whose part 4 fails for good: one part at a time, it stops with parts 1-3 sent."""
    proxy.fail("UploadPart", "403", times=1, part=4)
    one_by_one = dataclasses.replace(CONFIG, concurrency=1)
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(
            source, bucket, "obj", client=client, config=one_by_one, resume=journal
        )
    assert await recorded_parts(journal) == {1, 2, 3}
    return caught.value


async def test_a_resumable_upload_completes_and_removes_its_journal(
    s3: Any, bucket: str, source: pathlib.Path, journal: pathlib.Path
) -> None:
    async with asyncup.Uploader(client=s3, config=CONFIG) as up:
        result = await up.upload(source, bucket, "obj", resume=journal)
    assert result.parts == 6
    await assert_object(s3, bucket, "obj", DATA, PART)
    assert not await exists(journal)


async def test_a_failed_upload_is_kept_and_resumed_sending_only_the_missing_parts(
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
) -> None:
    error = await fail_after_some_parts(proxy, proxied, bucket, source, journal)
    assert error.resume_path == os.fspath(journal)
    assert error.abort_succeeded is None
    assert "upload again with resume=" in str(error)
    assert await uploads_of(s3, bucket) == [error.upload_id]  # kept, not aborted
    assert proxy.counts["AbortMultipartUpload"] == 0
    recorded = await recorded_parts(journal)
    assert recorded
    assert 4 not in recorded

    proxy.counts.clear()
    progress: list[int] = []
    result = await asyncup.upload(
        source,
        bucket,
        "obj",
        client=proxied,
        config=CONFIG,
        resume=journal,
        on_progress=progress.append,
    )
    assert proxy.counts["CreateMultipartUpload"] == 0
    assert proxy.counts["ListParts"] == 1
    assert proxy.counts["UploadPart"] == 6 - len(recorded)  # only what was missing
    assert result.upload_id == error.upload_id
    assert sum(progress) == len(DATA)
    await assert_object(s3, bucket, "obj", DATA, PART)
    assert await uploads_of(s3, bucket) == []
    assert not await exists(journal)


async def test_a_part_s3_no_longer_holds_is_sent_again(
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
) -> None:
    await fail_after_some_parts(proxy, proxied, bucket, source, journal)
    _, parts = records.parse(await anyio.Path(journal).read_text())
    # The journal says part 1 was sent with another ETag: S3's copy is not the one recorded.
    first = parts[1]
    record = {"part": 1, "etag": '"0123"', "size": first.size, "checksum": "AAAAAA==", "md5": None}
    async with await anyio.open_file(journal, "a") as file:
        await file.write(json.dumps(record) + "\n")
    proxy.counts.clear()
    await asyncup.upload(source, bucket, "obj", client=proxied, config=CONFIG, resume=journal)
    assert proxy.counts["UploadPart"] == 6 - len(parts) + 1
    await assert_object(s3, bucket, "obj", DATA, PART)


async def test_a_cancelled_upload_is_kept_for_resume(
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
) -> None:
    # 3 rounds of 2 parts, 0.6 s each: the cancel comes in the second round, far from
    # Complete (with 0.3 s, parts sent from threads reached Complete by 1 s now and then).
    proxy.delays["UploadPart"] = 0.6
    with anyio.move_on_after(1.0) as scope:
        await asyncup.upload(source, bucket, "obj", client=proxied, config=CONFIG, resume=journal)
    assert scope.cancelled_caught
    assert len(await uploads_of(s3, bucket)) == 1
    assert proxy.counts["AbortMultipartUpload"] == 0
    recorded = await recorded_parts(journal)
    proxy.delays.clear()
    proxy.counts.clear()
    await asyncup.upload(source, bucket, "obj", client=proxied, config=CONFIG, resume=journal)
    assert proxy.counts["UploadPart"] == 6 - len(recorded)
    await assert_object(s3, bucket, "obj", DATA, PART)
    assert await uploads_of(s3, bucket) == []


@pytest.mark.parametrize("change", ["size", "mtime", "bytes"])
async def test_a_changed_file_is_refused_before_any_part_is_sent(
    change: str,
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
) -> None:
    error = await fail_after_some_parts(proxy, proxied, bucket, source, journal)
    await anyio.to_thread.run_sync(change_file, source, change)
    proxy.counts.clear()
    with pytest.raises(asyncup.SourceChangedError) as caught:
        await asyncup.upload(source, bucket, "obj", client=proxied, config=CONFIG, resume=journal)
    assert str(source) in str(caught.value)
    assert caught.value.resume_path == os.fspath(journal)
    assert proxy.counts["UploadPart"] == 0
    assert proxy.counts["AbortMultipartUpload"] == 0
    assert await uploads_of(s3, bucket) == [error.upload_id]  # left as it was
    assert await exists(journal)


def change_file(source: pathlib.Path, change: str) -> None:
    stat = source.stat()
    if change == "size":
        with source.open("ab") as file:
            file.write(b"more")
    elif change == "mtime":
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    else:  # the same size and mtime, other bytes in part 2: only reading it back tells
        data = bytearray(DATA)
        data[PART + 100] ^= 0xFF
        source.write_bytes(bytes(data))
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))


async def test_an_upload_aborted_meanwhile_starts_again(
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
) -> None:
    error = await fail_after_some_parts(proxy, proxied, bucket, source, journal)
    await s3.abort_multipart_upload(Bucket=bucket, Key="obj", UploadId=error.upload_id)
    proxy.counts.clear()
    result = await asyncup.upload(
        source, bucket, "obj", client=proxied, config=CONFIG, resume=journal
    )
    assert proxy.counts["CreateMultipartUpload"] == 1
    assert proxy.counts["UploadPart"] == 6
    assert result.upload_id != error.upload_id
    await assert_object(s3, bucket, "obj", DATA, PART)
    assert await uploads_of(s3, bucket) == []


async def test_an_upload_completed_with_its_answer_lost_is_found_on_resume(
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
) -> None:
    # Complete reaches the server, its answer is lost, and the object cannot be asked: the
    # upload is kept with every part recorded. On resume, ListParts finds no upload; the object
    # at the key is checked against the journal's parts and accepted without a request.
    config = asyncup.TransferConfig(
        part_size=PART, multipart_threshold=PART, max_attempts=1, checksum_algorithm=None
    )
    proxy.fail("CompleteMultipartUpload", "lost")
    proxy.fail("HeadObject", "503")  # so the first run cannot confirm it either
    with pytest.raises(asyncup.UploadError, match="an object may exist"):
        await asyncup.upload(source, bucket, "obj", client=proxied, config=config, resume=journal)
    assert await recorded_parts(journal) == {1, 2, 3, 4, 5, 6}
    proxy.counts.clear()
    result = await asyncup.upload(
        source, bucket, "obj", client=proxied, config=config, resume=journal
    )
    assert proxy.counts["UploadPart"] == 0
    assert proxy.counts["CreateMultipartUpload"] == 0
    assert result.etag_verified
    assert not await exists(journal)
    await assert_object(s3, bucket, "obj", DATA, PART)


async def test_list_parts_is_followed_page_by_page(
    monkeypatch: pytest.MonkeyPatch,
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
) -> None:
    await fail_after_some_parts(proxy, proxied, bucket, source, journal)
    recorded = await recorded_parts(journal)
    monkeypatch.setattr(_resume, "LIST_PAGE", 2)
    proxy.counts.clear()
    await asyncup.upload(source, bucket, "obj", client=proxied, config=CONFIG, resume=journal)
    assert proxy.counts["ListParts"] >= 2
    assert proxy.counts["UploadPart"] == 6 - len(recorded)  # every page was read
    await assert_object(s3, bucket, "obj", DATA, PART)


async def test_resume_needs_a_file_and_a_journal_of_this_upload(
    proxy: FaultProxy,
    proxied: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    async with asyncup.Uploader(client=proxied, config=CONFIG) as up:
        with pytest.raises(ValueError, match="file path"):
            await up.upload(DATA, bucket, "obj", resume=journal)
        with pytest.raises(TypeError, match="resume"):
            await up.upload(source, bucket, "obj", resume=3)  # type: ignore[arg-type]
        await fail_after_some_parts(proxy, proxied, bucket, source, journal)
        proxy.counts.clear()
        with pytest.raises(ValueError, match="is for s3://"):
            await up.upload(source, bucket, "other", resume=journal)
        crc32c = asyncup.TransferConfig(
            part_size=PART, multipart_threshold=PART, checksum_algorithm="CRC32C"
        )
        async with asyncup.Uploader(client=proxied, config=crc32c) as other:
            with pytest.raises(ValueError, match="same"):
                await other.upload(source, bucket, "obj", resume=journal)
        damaged = tmp_path / "damaged"
        damaged.write_text("{not json\n")
        with pytest.raises(ValueError, match="damaged"):
            await up.upload(source, bucket, "obj", resume=damaged)
    assert sum(proxy.counts.values()) == 0


def test_a_line_cut_short_by_a_crash_is_ignored() -> None:
    header = records.Header(
        bucket="b",
        key="k",
        upload_id="u",
        size=10,
        part_size=PART,
        checksum_algorithm="CRC32",
        checksum_type="COMPOSITE",
        origin=records.Origin(path="/f", size=10, mtime_ns=1),
    )
    first = json.dumps({"format": records.FORMAT, "version": 1, **_asdict(header)})
    part = json.dumps({"part": 1, "etag": '"e"', "size": 10, "checksum": "AAAAAA==", "md5": None})
    parsed, parts = records.parse(f"{first}\n{part}\n{part[:20]}")
    assert parsed == header
    assert set(parts) == {1}
    with pytest.raises(records.JournalError, match="damaged"):
        records.parse(f"{first}\n{part[:20]}\n{part}\n")
    with pytest.raises(records.JournalError, match="another version"):
        records.parse(first.replace('"version": 1', '"version": 99') + "\n")


def _asdict(header: records.Header) -> dict[str, Any]:
    return dataclasses.asdict(header)


CRASHING_UPLOAD = textwrap.dedent(
    """
    import sys, anyio, asyncup
    from aiobotocore.session import get_session
    from aiobotocore.config import AioConfig

    async def main(endpoint, bucket, source, journal):
        config = asyncup.TransferConfig(part_size=5 * 2**20, multipart_threshold=5 * 2**20,
                                        concurrency=2)
        session = get_session()
        async with session.create_client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            config=AioConfig(retries={"total_max_attempts": 1}),
        ) as client:
            await asyncup.upload(source, bucket, "obj", client=client, config=config,
                                 resume=journal)

    anyio.run(main, *sys.argv[1:])
    """
)


async def test_a_killed_upload_resumes_sending_only_the_missing_parts(
    proxy: FaultProxy,
    proxied: Any,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    script = tmp_path / "crashing_upload.py"
    await anyio.Path(script).write_text(CRASHING_UPLOAD)
    proxy.delays["UploadPart"] = 0.5  # slow enough to kill it mid-way
    command = [sys.executable, str(script), proxy.url, bucket, str(source), str(journal)]
    process = start(command)
    try:
        with anyio.fail_after(30):
            while not await exists(journal) or len(await recorded_parts(journal)) < 2:
                assert process.poll() is None, "the upload ended before it was killed"
                await anyio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        await anyio.to_thread.run_sync(process.wait, 10)
    assert process.returncode == -signal.SIGKILL
    assert await uploads_of(s3, bucket) != []
    recorded = await recorded_parts(journal)
    assert 2 <= len(recorded) < 6

    await wait_quiet(proxy)  # the killed process's last part may still land, late
    proxy.delays.clear()
    proxy.counts.clear()
    result = await asyncup.upload(
        source, bucket, "obj", client=proxied, config=CONFIG, resume=journal
    )
    assert proxy.counts["UploadPart"] == 6 - len(recorded)
    assert proxy.counts["CreateMultipartUpload"] == 0
    assert result.parts == 6
    await assert_object(s3, bucket, "obj", DATA, PART)
    assert await uploads_of(s3, bucket) == []
    assert not await exists(journal)


@pytest.mark.parametrize("server", ["moto"], indirect=True)  # moto takes a probe's byte
async def test_a_resumed_upload_that_holds_the_probes_part_is_probed_elsewhere(
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    journal: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The integrity probe sends one byte as the highest part number, 10,000: made 6 here,
    the upload's last. Resumed with all its parts sent, the upload holds that part; probed
    in it, a store that takes the probe's byte (moto) would replace the part, and Complete
    would refuse its ETag or make another object. The probe goes to an upload of its own."""
    monkeypatch.setattr(integrity, "MAX_PARTS", 6)
    proxy.fail("CompleteMultipartUpload", "403")
    with pytest.raises(asyncup.UploadError) as caught:
        async with asyncup.Uploader(endpoint_url=proxy.url, config=CONFIG) as up:
            await up.upload(source, bucket, "obj", resume=journal)
    assert await recorded_parts(journal) == {1, 2, 3, 4, 5, 6}
    async with asyncup.Uploader(endpoint_url=proxy.url, config=CONFIG) as up:
        result = await up.upload(source, bucket, "obj", resume=journal)
        assert up._s3 is not None
        assert up._s3.store("CRC32").verifies is False  # the probe's byte was taken
    assert result.upload_id == caught.value.upload_id
    await assert_object(s3, bucket, "obj", DATA, PART)
    assert await uploads_of(s3, bucket) == []
