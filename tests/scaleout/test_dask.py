"""asyncup.dask on a distributed.LocalCluster of two workers, against moto on 127.0.0.1.

Most tests share one cluster of two thread-workers (one slot each) in this process; the
killed-worker test has a cluster of two worker processes of its own. Parts go through the
fault proxy, which scripts failures and slows parts down where a test needs time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

distributed = pytest.importorskip("distributed")

import asyncup  # noqa: E402
import asyncup.dask  # noqa: E402
from asyncup._core import records  # noqa: E402
from asyncup.parallel import PartResult  # noqa: E402
from tests.conftest import (  # noqa: E402
    MiB,
    assert_nothing_left,
    assert_object,
    random_bytes,
    read_object,
    start,
    wait_quiet,
)
from tests.faultproxy import FaultProxy  # noqa: E402

pytestmark = pytest.mark.timeout(60)

PART = 5 * MiB
CONFIG = asyncup.TransferConfig(
    part_size=PART, concurrency=2, max_attempts=2, retry_base_delay=0.01, retry_max_delay=0.02
)
DATA = random_bytes(7 * PART + 99, seed=3)  # 8 parts


@pytest.fixture
def server() -> str:
    return "moto"


@pytest.fixture
def source(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)
    return path


def local_cluster(processes: bool) -> Any:
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=processes,
        protocol="tcp",  # threads too: the tests' own clients connect from outside
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",  # its HTTP server too: loopback, any free port
        worker_dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two workers as threads of this process (their tasks run on the cluster's loop)."""
    with local_cluster(processes=False) as running:
        yield running


@pytest.fixture
async def client(cluster: Any) -> AsyncIterator[Any]:
    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as connected:
        yield connected


async def upload(
    client: Any, source: pathlib.Path, bucket: str, endpoint: str, **options: Any
) -> asyncup.UploadResult:
    """``upload_parallel`` of the test file, two parts a task unless told otherwise."""
    settings = {"config": CONFIG, "parts_per_task": 2} | options
    return await asyncup.dask.upload_parallel(
        client, source, bucket, "big.bin", endpoint_url=endpoint, **settings
    )


async def uploads_of(s3: Any, bucket: str) -> list[str]:
    listing = await s3.list_multipart_uploads(Bucket=bucket)
    return [upload["UploadId"] for upload in listing.get("Uploads", [])]


async def test_one_file_goes_through_both_workers(
    client: Any, endpoint: str, s3: Any, bucket: str, source: pathlib.Path
) -> None:
    parts: list[PartResult] = []
    result = await upload(client, source, bucket, endpoint, on_part=parts.append)
    assert result.parts == 8
    assert result.size == len(DATA)
    assert sorted(p.number for p in parts) == list(range(1, 9))
    workers = set((await client.scheduler.identity(n_workers=-1))["workers"])
    assert {p.sender for p in parts} == workers  # both workers sent parts
    await assert_object(s3, bucket, "big.bin", DATA, PART)
    assert await uploads_of(s3, bucket) == []


async def test_a_part_that_keeps_failing_aborts_the_upload(
    client: Any, proxy: FaultProxy, s3: Any, bucket: str, source: pathlib.Path
) -> None:
    proxy.fail("UploadPart", "403", times=100, part=3)
    with pytest.raises(asyncup.UploadError) as caught:
        await upload(client, source, bucket, proxy.url)
    error = caught.value
    assert error.part_number == 3
    assert error.code == "AccessDenied"
    assert "on 2 worker(s)" in str(error)  # tried on one worker, then on the other
    assert proxy.faults_injected["403"] == 2
    assert error.abort_succeeded is True
    await assert_nothing_left(s3, bucket, "big.bin")


async def test_a_part_sent_twice_completes_with_the_right_bytes(
    client: Any, proxy: FaultProxy, s3: Any, bucket: str, source: pathlib.Path
) -> None:
    # Part 2 reaches S3 but its answer is lost: its batch fails on one worker (no retries
    # there) and the part is sent again from the other; S3 keeps the second copy.
    proxy.fail("UploadPart", "lost", times=1, part=2)
    parts: list[PartResult] = []
    await upload(
        client,
        source,
        bucket,
        proxy.url,
        config=dataclasses.replace(CONFIG, max_attempts=1),
        on_part=parts.append,
    )
    assert proxy.faults_injected["lost"] == 1
    assert proxy.counts["UploadPart"] == 9  # part 2 twice
    assert [p.number for p in parts].count(2) == 1
    await assert_object(s3, bucket, "big.bin", DATA, PART)
    assert await uploads_of(s3, bucket) == []


async def test_a_cancelled_coordinator_stops_the_senders_and_aborts(
    client: Any, proxy: FaultProxy, s3: Any, bucket: str, source: pathlib.Path
) -> None:
    proxy.delays["UploadPart"] = 1.5  # the first parts are still in flight at the cancel
    with anyio.move_on_after(1.0) as scope:
        await upload(client, source, bucket, proxy.url)
    assert scope.cancelled_caught
    assert proxy.counts["AbortMultipartUpload"] >= 1
    await assert_nothing_left(s3, bucket, "big.bin")
    sent = proxy.counts["UploadPart"]
    assert sent < 8
    await anyio.sleep(1.0)
    assert proxy.counts["UploadPart"] == sent  # no task goes on sending


async def test_many_files_in_batches_under_one_request_rate(
    client: Any, endpoint: str, s3: Any, bucket: str, tmp_path: pathlib.Path
) -> None:
    root = tmp_path / "tree"
    expected = {}
    for number in range(40):
        relative = f"d{number % 3}/sub{number % 2}/file-{number}.txt"
        expected[f"up/{relative}"] = random_bytes(1000 + number, seed=number)
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(expected[f"up/{relative}"])
    started = time.monotonic()
    summary = await asyncup.dask.upload_many(
        client,
        root,
        bucket,
        "up/",
        endpoint_url=endpoint,
        config=CONFIG,
        files_per_task=3,
        requests_per_second=8,
    )
    elapsed = time.monotonic() - started
    assert summary.ok, summary.errors
    assert summary.objects == 40
    assert summary.size == sum(len(data) for data in expected.values())
    assert len(summary.workers) == 2
    # 40 PutObjects at 8 a second for the cluster, after each worker's one-second burst
    # (4 each): at least 4 s. Unpaced, the same upload takes about 2 s on a busy machine.
    assert elapsed >= 3.5, f"{elapsed:.2f} s"
    listing = await s3.list_objects_v2(Bucket=bucket, Prefix="up/")
    assert {item["Key"] for item in listing["Contents"]} == set(expected)
    for key in ("up/d0/sub0/file-0.txt", "up/d2/sub1/file-5.txt"):
        assert await read_object(s3, bucket, key) == expected[key]


async def recorded_parts(manifest: pathlib.Path) -> set[int]:
    text = await anyio.Path(manifest).read_text()
    return set(records.parse(text)[1])


COORDINATOR = textwrap.dedent(
    """
    import sys, anyio, distributed, asyncup, asyncup.dask

    async def main(scheduler, endpoint, bucket, source, manifest):
        config = asyncup.TransferConfig(part_size=5 * 2**20, concurrency=1)
        async with distributed.Client(scheduler, asynchronous=True) as client:
            await asyncup.dask.upload_parallel(
                client, source, bucket, "big.bin", endpoint_url=endpoint, config=config,
                parts_per_task=1, manifest=manifest,
            )

    anyio.run(main, *sys.argv[1:])
    """
)


async def test_a_killed_coordinator_is_taken_over_from_its_manifest(
    cluster: Any,
    client: Any,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    source: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    script = tmp_path / "coordinator.py"
    manifest = tmp_path / "big.manifest"
    await anyio.Path(script).write_text(COORDINATOR)
    proxy.delays["UploadPart"] = 0.5
    command = [
        sys.executable,
        str(script),
        cluster.scheduler_address,
        proxy.url,
        bucket,
        str(source),
        str(manifest),
    ]
    process = start(command)
    try:
        with anyio.fail_after(40):
            while (
                not await anyio.Path(manifest).exists() or len(await recorded_parts(manifest)) < 2
            ):
                assert process.poll() is None, "the coordinator ended before it was killed"
                await anyio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        await anyio.to_thread.run_sync(process.wait, 10)
    assert process.returncode == -signal.SIGKILL
    (upload_id,) = await uploads_of(s3, bucket)
    await wait_quiet(proxy)  # the dead coordinator's tasks have ended
    recorded = await recorded_parts(manifest)
    assert 2 <= len(recorded) < 8

    proxy.delays.clear()
    proxy.counts.clear()
    result = await upload(client, source, bucket, proxy.url, manifest=manifest)
    assert proxy.counts["CreateMultipartUpload"] == 0
    assert proxy.counts["UploadPart"] == 8 - len(recorded)  # only what the manifest lacks
    assert result.upload_id == upload_id
    await assert_object(s3, bucket, "big.bin", DATA, PART)
    assert await uploads_of(s3, bucket) == []
    assert not await anyio.Path(manifest).exists()


async def test_a_killed_worker_has_its_batch_sent_by_another(
    proxy: FaultProxy, s3: Any, bucket: str, source: pathlib.Path
) -> None:
    """Two worker processes; one is SIGKILLed while it sends a batch. The coordinator has a
    synchronous Client (its own loop in a thread), as a script's would be."""
    processes = await anyio.to_thread.run_sync(local_cluster, True)
    try:
        client = await anyio.to_thread.run_sync(distributed.Client, processes)
        try:
            pids: dict[str, int] = await anyio.to_thread.run_sync(client.run, os.getpid)
            proxy.delays["UploadPart"] = 0.4
            parts: list[PartResult] = []
            killed: list[tuple[str, tuple[int, int]]] = []

            async def kill_a_busy_worker() -> None:
                with anyio.fail_after(20):
                    while True:
                        processing = await anyio.to_thread.run_sync(client.processing)
                        busy = {w: k for w, k in processing.items() if k}
                        if busy and proxy.counts["UploadPart"] >= 1:
                            break
                        await anyio.sleep(0.05)
                worker, keys = next(iter(busy.items()))
                first, last = (int(n) for n in str(keys[0]).split("-")[3:5])
                os.kill(pids[worker], signal.SIGKILL)
                killed.append((worker, (first, last)))

            async with anyio.create_task_group() as group:
                group.start_soon(kill_a_busy_worker)
                result = await upload(client, source, bucket, proxy.url, on_part=parts.append)
        finally:
            await anyio.to_thread.run_sync(client.close)
    finally:
        await anyio.to_thread.run_sync(processes.close)
    assert result.parts == 8
    [(worker, (first, last))] = killed
    batch = [p for p in parts if first <= p.number <= last]
    assert batch, "the killed worker's batch was never sent"
    assert all(p.sender != worker for p in batch)  # by a worker still alive
    await assert_object(s3, bucket, "big.bin", DATA, PART)
    assert await uploads_of(s3, bucket) == []


async def test_many_files_report_each_failure_and_go_on(
    client: Any, endpoint: str, s3: Any, bucket: str, tmp_path: pathlib.Path
) -> None:
    paths = []
    for number in range(6):
        path = tmp_path / f"f{number}.bin"
        path.write_bytes(random_bytes(100 + number, seed=number))
        paths.append(path)
    missing = tmp_path / "gone.bin"  # listed, but not there when its task runs
    summary = await asyncup.dask.upload_many(
        client,
        [*paths, (missing, "renamed/gone.bin")],
        bucket,
        "p/",
        endpoint_url=endpoint,
        config=CONFIG,
        files_per_task=4,
    )
    assert summary.objects == 6
    assert [key for key, _ in summary.errors] == ["p/renamed/gone.bin"]
    assert "gone.bin" in summary.errors[0][1]
    listing = await s3.list_objects_v2(Bucket=bucket, Prefix="p/")
    assert sorted(item["Key"] for item in listing["Contents"]) == [f"p/f{n}.bin" for n in range(6)]
