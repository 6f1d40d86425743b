"""asyncup.parallel: one multipart upload fed by many hosts, without an engine.

The planner is pure arithmetic (no server). The rest runs against moto on 127.0.0.1, with
parts sent by two Uploaders that each own their client: two "workers" in one process.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import pickle
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from asyncup_bench import servers as bench_servers

import asyncup
from asyncup import parallel
from asyncup._core import records
from asyncup._core.plan import MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, MiB
from asyncup._core.verify import ListedPart
from asyncup._pipeline import resume as _resume
from asyncup._scaleout import spread as _spread
from asyncup.parallel import ParallelUpload, PartResult
from tests.conftest import assert_object, random_bytes
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.timeout(60)

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART, concurrency=3, max_attempts=2, retry_base_delay=0.01, retry_max_delay=0.02
)
DATA = random_bytes(5 * PART + 1234, seed=7)  # 6 parts, the last one short
SSE_KEY = bytes(range(32))


@pytest.fixture
def server() -> str:
    """moto only (the parametrized ``server`` of conftest runs SeaweedFS too)."""
    return "moto"


@pytest.fixture
def source(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)
    return path


@pytest.fixture
async def workers(endpoint: str) -> AsyncIterator[list[asyncup.Uploader]]:
    """The coordinator's Uploader and two workers', each with its own client."""
    async with (
        asyncup.Uploader(endpoint_url=endpoint, config=CONFIG) as coordinator,
        asyncup.Uploader(endpoint_url=endpoint, config=CONFIG) as first,
        asyncup.Uploader(endpoint_url=endpoint, config=CONFIG) as second,
    ):
        yield [coordinator, first, second]


async def uploads_of(s3: Any, bucket: str) -> list[str]:
    listing = await s3.list_multipart_uploads(Bucket=bucket)
    return [upload["UploadId"] for upload in listing.get("Uploads", [])]


# -- the planner: pure arithmetic at S3's limits -------------------------------------------


@pytest.mark.parametrize(
    ("size", "part_size", "expected_part_size", "expected_count"),
    [
        (0, PART, PART, 1),  # an empty file is one empty part
        (PART, PART, PART, 1),
        (PART + 1, PART, PART, 2),
        (MAX_PARTS * PART, PART, PART, MAX_PARTS),
        (MAX_PARTS * PART + 1, PART, 6 * MiB, -(-(MAX_PARTS * PART + 1) // (6 * MiB))),
        (MAX_OBJECT_SIZE, 8 * MiB, MAX_PART_SIZE, MAX_PARTS),  # 48.8 TiB: every part 5 GiB
        (MAX_OBJECT_SIZE - 1, PART, MAX_PART_SIZE, MAX_PARTS),
    ],
)
def test_the_plan_stays_within_s3s_limits(
    size: int, part_size: int, expected_part_size: int, expected_count: int
) -> None:
    cut = parallel.plan(size, part_size)
    assert (cut.part_size, cut.count) == (expected_part_size, expected_count)
    assert cut.count <= MAX_PARTS
    assert MIN_PART_SIZE <= cut.part_size <= MAX_PART_SIZE
    handle = make_handle(size=size, part_size=cut.part_size, part_count=cut.count)
    first, last = handle.part(1), handle.part(cut.count)
    assert (first.offset, first.length) == (0, min(size, cut.part_size))
    assert last.offset + last.length == size  # the ranges end where the file ends
    assert 0 <= last.length <= cut.part_size
    if cut.count > 2:
        middle = handle.part(cut.count // 2)
        assert middle.offset == (middle.number - 1) * cut.part_size
        assert middle.length == cut.part_size >= MIN_PART_SIZE  # only the last may be small


def test_the_plan_refuses_what_s3_cannot_hold() -> None:
    with pytest.raises(ValueError, match="larger than S3's limit"):
        parallel.plan(MAX_OBJECT_SIZE + 1, PART)
    with pytest.raises(ValueError, match="part_size"):
        parallel.plan(10 * PART, MIN_PART_SIZE - 1)
    with pytest.raises(ValueError, match="do not cut"):
        make_handle(size=10 * PART, part_size=PART, part_count=11)
    with pytest.raises(ValueError, match="at most 10000"):
        make_handle(size=(MAX_PARTS + 1) * PART, part_size=PART, part_count=MAX_PARTS + 1)
    with pytest.raises(ValueError, match="between 1 and 2"):
        make_handle(size=2 * PART, part_size=PART, part_count=2).part(3)
    with pytest.raises(ValueError, match="cannot travel"):
        make_handle(request_args=(("SSECustomerKey", "secret"),))


def test_batches_and_the_request_rate_split() -> None:
    numbers = list(range(1, 10_001))
    runs = _spread.batches(numbers, 64)
    assert [n for run in runs for n in run] == numbers  # each part once, in order
    assert {len(run) for run in runs[:-1]} == {64}
    assert len(runs[-1]) == 10_000 % 64
    assert _spread.parts_per_batch(parallel.plan(MAX_OBJECT_SIZE, PART), 256 * MiB) == 1
    assert _spread.parts_per_batch(parallel.plan(100 * PART, PART), 64 * MiB) == 12
    shares = [_spread.split_rate(3500, 7) for _ in range(7)]
    assert sum(shares) == pytest.approx(3500)
    assert _spread.requests_for(100, 8 * MiB, 8 * MiB) == 1  # one PutObject
    assert _spread.requests_for(20 * MiB, 8 * MiB, 8 * MiB) == 3 + 2  # Create, 3 parts, Complete
    with pytest.raises(ValueError, match="repeat"):
        _spread.checked_numbers([1, 1], 3)
    with pytest.raises(ValueError, match="between 1 and 3"):
        _spread.checked_numbers([4], 3)


def make_handle(**overrides: Any) -> ParallelUpload:
    fields: dict[str, Any] = {
        "bucket": "b",
        "key": "k",
        "upload_id": "u",
        "path": "/shared/big.bin",
        "size": 6 * PART,
        "mtime_ns": 1,
        "part_size": PART,
        "part_count": 6,
        "checksum_algorithm": "CRC32",
        "checksum_type": "COMPOSITE",
    }
    return ParallelUpload(**(fields | overrides))


def result(number: int, etag: str, checksum: str = "AAAAAA==", size: int = PART) -> PartResult:
    return PartResult(number=number, etag=etag, size=size, checksum=checksum)


def test_reconcile_keeps_what_s3_lists_and_finds_what_is_missing_or_divergent() -> None:
    cut = make_handle(size=3 * PART, part_count=3).plan
    listed = {n: ListedPart(n, f'"e{n}"', PART) for n in (1, 2, 3)}
    sent_twice = [result(1, '"old"'), result(1, '"e1"'), result(2, '"e2"'), result(3, '"e3"')]
    reconciled = _spread.reconcile(cut, sent_twice, listed)
    assert reconciled.ready
    assert reconciled.chosen[1].etag == '"e1"'  # the writer S3 kept
    # S3 holds part 2 with bytes no result reported (a foreign writer): send it again.
    foreign = _spread.reconcile(cut, sent_twice, {**listed, 2: ListedPart(2, '"x"', PART)})
    assert foreign.missing == (2,)
    short = _spread.reconcile(cut, sent_twice, {**listed, 3: ListedPart(3, '"e3"', 1)})
    assert short.missing == (3,)
    assert _spread.reconcile(cut, sent_twice[1:], {1: listed[1]}).missing == (2, 3)
    # Two senders read different bytes for part 1: the file changed under them.
    changed = [*sent_twice, result(1, '"e1"', checksum="BBBBBB==")]
    assert _spread.reconcile(cut, changed, listed).divergent == (1,)


def test_the_handle_pickles_and_round_trips_through_json_and_its_manifest_header() -> None:
    handle = make_handle(
        request_args=(("ExpectedBucketOwner", "111122223333"), ("RequestPayer", "requester")),
        sse_customer_key_md5="bWQ1",
    )
    assert pickle.loads(pickle.dumps(handle)) == handle
    assert ParallelUpload.from_json(handle.to_json()) == handle
    # The manifest is a resume journal whose header carries the rest of the handle.
    line = json.dumps({"format": records.FORMAT, "version": 1, **_asdict(handle.header())})
    parsed, parts = records.parse(line + "\n")
    assert ParallelUpload.from_header(parsed) == handle
    assert parts == {}
    old = records.parse(line.replace('"parallel"', '"ignored"') + "\n")[0]
    assert old.parallel is None  # a journal without the field: a plain resume journal


def _asdict(header: records.Header) -> dict[str, Any]:
    return dataclasses.asdict(header)


# -- the core against moto: parts from two workers ------------------------------------------


async def send_halves(workers: list[asyncup.Uploader], handle: ParallelUpload) -> list[PartResult]:
    """Odd parts from the first worker, even ones from the second, at the same time."""
    numbers = list(range(1, handle.part_count + 1))
    results: list[PartResult] = []

    async def send(up: asyncup.Uploader, half: list[int], sender: str) -> None:
        results.extend(await parallel.upload_parts(up, handle, half, sender=sender))

    async with anyio.create_task_group() as group:
        group.start_soon(send, workers[1], numbers[0::2], "worker-1")
        group.start_soon(send, workers[2], numbers[1::2], "worker-2")
    return results


async def test_parts_from_two_workers_complete_into_the_file(
    workers: list[asyncup.Uploader], s3: Any, bucket: str, source: pathlib.Path
) -> None:
    coordinator = workers[0]
    handle = await parallel.begin(coordinator, source, bucket, "big.bin")
    assert (handle.part_count, handle.part_size, handle.size) == (6, PART, len(DATA))
    results = await send_halves(workers, handle)
    assert {r.sender for r in results} == {"worker-1", "worker-2"}
    assert sorted(r.number for r in results) == [1, 2, 3, 4, 5, 6]
    done = await parallel.complete(coordinator, handle, results)
    assert done.parts == 6
    assert done.size == len(DATA)
    assert done.upload_id == handle.upload_id
    await assert_object(s3, bucket, "big.bin", DATA, PART)
    assert await uploads_of(s3, bucket) == []


async def test_a_part_sent_twice_is_listed_once_with_the_writer_s3_kept(
    workers: list[asyncup.Uploader], s3: Any, bucket: str, source: pathlib.Path
) -> None:
    coordinator = workers[0]
    handle = await parallel.begin(coordinator, source, bucket, "big.bin")
    results = await send_halves(workers, handle)
    # Part 2 again, from the other worker (a batch retried after its answer was lost).
    results += await parallel.upload_parts(workers[1], handle, [2], sender="worker-1")
    assert len(results) == 7
    await parallel.complete(coordinator, handle, results)
    await assert_object(s3, bucket, "big.bin", DATA, PART)  # not part 2 twice


async def test_bytes_no_result_accounts_for_are_sent_again_and_changed_bytes_refused(
    workers: list[asyncup.Uploader], s3: Any, bucket: str, source: pathlib.Path
) -> None:
    coordinator = workers[0]
    handle = await parallel.begin(coordinator, source, bucket, "big.bin")
    results = await send_halves(workers, handle)
    # Someone else writes part 2 last: S3 keeps those bytes, which no result reported.
    stale = bytes(PART)
    await s3.upload_part(
        Bucket=bucket, Key="big.bin", UploadId=handle.upload_id, PartNumber=2, Body=stale
    )
    with pytest.raises(parallel.MissingPartsError) as caught:
        await parallel.complete(coordinator, handle, results)
    assert caught.value.part_numbers == (2,)
    assert await uploads_of(s3, bucket) == [handle.upload_id]  # complete never aborts
    # Reported as a result, those bytes disagree with the file's: refused, not completed.
    foreign = await s3.upload_part(
        Bucket=bucket, Key="big.bin", UploadId=handle.upload_id, PartNumber=2, Body=stale
    )
    wrong = result(2, foreign["ETag"], checksum=base64.b64encode(b"\0\0\0\1").decode())
    with pytest.raises(asyncup.SourceChangedError, match="changed"):
        await parallel.complete(coordinator, handle, [*results, wrong])
    results += await parallel.upload_parts(workers[2], handle, caught.value.part_numbers)
    await parallel.complete(coordinator, handle, results)
    await assert_object(s3, bucket, "big.bin", DATA, PART)


async def test_complete_reads_every_page_of_list_parts(
    server: str,
    monkeypatch: pytest.MonkeyPatch,
    proxy: FaultProxy,
    workers: list[asyncup.Uploader],
    s3: Any,
    bucket: str,
    source: pathlib.Path,
) -> None:
    handle = await parallel.begin(workers[0], source, bucket, "big.bin")
    results = await send_halves(workers, handle)
    monkeypatch.setattr(_resume, "LIST_PAGE", 2)
    async with asyncup.Uploader(endpoint_url=proxy.url, config=CONFIG) as through_proxy:
        await parallel.complete(through_proxy, handle, results)
    # 6 parts, 2 a page; moto also keeps the 1-byte part 10,000 of the workers' integrity
    # probe (it verifies no checksum), never listed in Complete; SeaweedFS refused it.
    assert proxy.counts["ListParts"] == (4 if server == "moto" else 3)
    await assert_object(s3, bucket, "big.bin", DATA, PART)


async def test_a_changed_file_is_refused_before_any_part_is_sent(
    proxy: FaultProxy, workers: list[asyncup.Uploader], bucket: str, source: pathlib.Path
) -> None:
    handle = await parallel.begin(workers[0], source, bucket, "big.bin")
    await anyio.to_thread.run_sync(touch, source)
    async with asyncup.Uploader(endpoint_url=proxy.url, config=CONFIG) as worker:
        with pytest.raises(asyncup.SourceChangedError, match="not the file"):
            await parallel.upload_parts(worker, handle, [1, 2])
    assert proxy.counts["UploadPart"] == 0


def touch(path: pathlib.Path) -> None:
    """A new mtime, the same bytes."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


async def test_abort_stops_the_upload_for_good(
    workers: list[asyncup.Uploader], s3: Any, bucket: str, source: pathlib.Path
) -> None:
    handle = await parallel.begin(workers[0], source, bucket, "big.bin")
    await parallel.upload_parts(workers[1], handle, [1, 2])
    assert await parallel.abort(workers[0], handle)
    assert await uploads_of(s3, bucket) == []
    with pytest.raises(parallel.PartsError) as caught:
        await parallel.upload_parts(workers[2], handle, [3, 4])
    assert set(caught.value.failed) == {3, 4}
    assert caught.value.results == []
    assert await uploads_of(s3, bucket) == []


async def test_a_gone_upload_stops_the_other_parts_at_once(
    proxy: FaultProxy, workers: list[asyncup.Uploader], bucket: str, source: pathlib.Path
) -> None:
    handle = await parallel.begin(workers[0], source, bucket, "big.bin")
    proxy.fail("UploadPart", "404", times=1, part=3)  # NoSuchUpload (moto answers 500)
    one_at_a_time = dataclasses.replace(CONFIG, concurrency=1)
    async with asyncup.Uploader(endpoint_url=proxy.url, config=one_at_a_time) as worker:
        with pytest.raises(parallel.PartsError) as caught:
            await parallel.upload_parts(worker, handle, [2, 3, 4, 5])
    error = caught.value
    assert error.fatal
    assert error.code == "NoSuchUpload"
    assert error.part_number == 3
    assert [r.number for r in error.results] == [2]
    assert set(error.failed) == {3, 4, 5}
    assert "not sent" in error.failed[5]
    assert proxy.counts["UploadPart"] == 2  # parts 4 and 5 were never sent
    await parallel.abort(workers[0], handle)


async def test_a_new_coordinator_takes_over_from_the_manifest(
    workers: list[asyncup.Uploader],
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    manifest_path = tmp_path / "state" / "big.manifest"
    handle = await parallel.begin(workers[0], source, bucket, "big.bin")
    manifest = await parallel.Manifest.create(manifest_path, handle)
    await manifest.record(await parallel.upload_parts(workers[1], handle, [1, 2, 3]))
    # Part 4 went too, but its result died with the coordinator: it is sent again.
    await parallel.upload_parts(workers[2], handle, [4])
    del manifest  # the coordinator is gone

    async with asyncup.Uploader(endpoint_url=workers[0].client.meta.endpoint_url) as new:
        resumed = await parallel.resume(new, manifest_path)
        assert resumed is not None
        assert resumed.manifest.handle == handle
        assert sorted(r.number for r in resumed.results) == [1, 2, 3]
        assert resumed.todo == (4, 5, 6)
        rest = await parallel.upload_parts(workers[2], handle, resumed.todo)
        await resumed.manifest.record(rest)
        await parallel.complete(new, handle, resumed.results + rest)
        await resumed.manifest.discard()
    await assert_object(s3, bucket, "big.bin", DATA, PART)
    assert await parallel.resume(workers[0], manifest_path) is None


async def test_the_sse_c_key_never_travels_and_a_worker_needs_the_same_one(
    monkeypatch: pytest.MonkeyPatch,
    proxy: FaultProxy,
    workers: list[asyncup.Uploader],
    s3: Any,
    bucket: str,
    source: pathlib.Path,
) -> None:
    extra = {"SSECustomerKey": SSE_KEY, "RequestPayer": "requester"}
    handle = await parallel.begin(workers[0], source, bucket, "big.bin", extra_args=extra)
    shipped = handle.to_json().encode() + pickle.dumps(handle)
    for secret in (SSE_KEY, base64.b64encode(SSE_KEY)):
        assert secret not in shipped
    assert dict(handle.request_args) == {"RequestPayer": "requester"}
    async with asyncup.Uploader(endpoint_url=proxy.url, config=CONFIG) as worker:
        with pytest.raises(ValueError, match="never travels"):
            await parallel.upload_parts(worker, handle, [1])
        with pytest.raises(ValueError, match="not the one"):
            await parallel.upload_parts(worker, handle, [1], sse_customer_key=bytes(32))
        assert proxy.counts["UploadPart"] == 0
        monkeypatch.setenv(parallel.SSE_CUSTOMER_KEY_ENV, base64.b64encode(SSE_KEY).decode())
        results = await parallel.upload_parts(worker, handle, range(1, 7))
    sent = [headers for operation, headers in proxy.requests if operation == "UploadPart"]
    assert len(sent) == 6
    assert all(h.get("x-amz-server-side-encryption-customer-key") for h in sent)
    assert all(h.get("x-amz-request-payer") == "requester" for h in sent)
    await parallel.complete(workers[0], handle, results, sse_customer_key=SSE_KEY)
    head = await s3.head_object(
        Bucket=bucket, Key="big.bin", SSECustomerAlgorithm="AES256", SSECustomerKey=SSE_KEY
    )
    assert head["ContentLength"] == len(DATA)


# -- streaming: a part is read from its range, never held whole -----------------------------


@pytest.fixture(scope="module")
def sink() -> Iterator[str]:
    """The bench's S3 sink (a subprocess on 127.0.0.1): it keeps no bytes, so the memory
    traced in this process is the client's alone."""
    with bench_servers.start("sink", tls=False) as server:
        yield server.endpoint


async def test_a_large_part_is_streamed_from_its_range(sink: str, tmp_path: pathlib.Path) -> None:
    part_size = 64 * MiB
    path = tmp_path / "large.bin"
    with path.open("wb") as file:
        for seed in range(2 * part_size // MiB):
            file.write(random_bytes(MiB, seed=seed))
    config = asyncup.TransferConfig(part_size=part_size, concurrency=2)
    async with asyncup.Uploader(endpoint_url=sink, config=config) as up:
        await up.client.create_bucket(Bucket="streamed")
        handle = await parallel.begin(up, path, "streamed", "large.bin")
        assert handle.part_count == 2
        tracemalloc.start()
        try:
            results = await parallel.upload_parts(up, handle, [1, 2])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await parallel.complete(up, handle, results)
    # Two 64 MiB parts went at once, each one 4 MiB read at a time (9 MiB traced here).
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB"
