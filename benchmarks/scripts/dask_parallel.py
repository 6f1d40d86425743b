"""One file to the bench sink: asyncup in one process vs asyncup.dask on two worker processes.

Usage: python benchmarks/scripts/dask_parallel.py [SIZE_MiB] [REPEATS] [http|https]

Starts the sink (127.0.0.1), writes SIZE MiB of random bytes (page-cached: the file is read
twice per part on the Dask path, once to checksum and once to send), then alternates:
``asyncup.upload`` in this process, the same through ``asyncup.parallel`` (parts streamed
from pathlib import Path
from their ranges, one Uploader: the Dask path without Dask), and
``asyncup.dask.upload_parallel`` over a
LocalCluster of 2 worker processes x 1 thread (8 parts a task, concurrency 10 per task),
the cluster started once beforehand. Prints one JSON line per run and the medians; MB/s is
10^6 bytes per second of the upload call.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import distributed

# The harness lies beside these scripts, not in the asyncup package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import asyncup  # noqa: E402
import asyncup.dask  # noqa: E402
from asyncup_bench.runner import write_random
from asyncup_bench.servers import start

MiB = 1024 * 1024
# The worker processes import this module (spawn): the settings must not need argv.
size_mib = int(sys.argv[1]) if __name__ == "__main__" and len(sys.argv) > 1 else 512
repeats = int(sys.argv[2]) if __name__ == "__main__" and len(sys.argv) > 2 else 3
tls = __name__ == "__main__" and len(sys.argv) > 3 and sys.argv[3] == "https"
size = size_mib * MiB
config = asyncup.TransferConfig(part_size=8 * MiB, concurrency=10)
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


async def one_process(endpoint: str, verify: str | None, path: str) -> float:
    started = time.perf_counter()
    result = await asyncup.upload(
        path, "bench", "one.bin", endpoint_url=endpoint, config=config, verify=verify
    )
    assert result.size == size
    return time.perf_counter() - started


async def core_one_process(endpoint: str, verify: str | None, path: str) -> float:
    """The streamed-range path without Dask: every part through one Uploader."""
    from asyncup import parallel

    started = time.perf_counter()
    async with asyncup.Uploader(endpoint_url=endpoint, config=config, verify=verify) as up:
        handle = await parallel.begin(up, path, "bench", "core.bin")
        results = await parallel.upload_parts(up, handle, range(1, handle.part_count + 1))
        result = await parallel.complete(up, handle, results)
    assert result.size == size
    return time.perf_counter() - started


async def two_workers(endpoint: str, verify: str | None, path: str, scheduler: str) -> float:
    async with distributed.Client(scheduler, asynchronous=True) as client:
        started = time.perf_counter()
        result = await asyncup.dask.upload_parallel(
            client,
            path,
            "bench",
            "dask.bin",
            endpoint_url=endpoint,
            config=config,
            verify=verify,
            parts_per_task=8,
        )
        seconds = time.perf_counter() - started
    assert result.size == size
    return seconds


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dask-bench-") as workdir:
        path = os.path.join(workdir, "data.bin")
        write_random(path, size)
        with (
            start("sink", tls=tls) as sink,
            distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                worker_dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,
            ) as cluster,
        ):
            verify = sink.ca_bundle
            async with asyncup.Uploader(endpoint_url=sink.endpoint, verify=verify) as up:
                await up.client.create_bucket(Bucket="bench")
            # Warm-up: imports and connections in every process.
            await one_process(sink.endpoint, verify, path)
            await two_workers(sink.endpoint, verify, path, cluster.scheduler_address)
            times: dict[str, list[float]] = {
                "one process": [],
                "one process, parallel core": [],
                "2 dask workers": [],
            }
            for _ in range(repeats):
                for name in times:
                    if name == "one process":
                        seconds = await one_process(sink.endpoint, verify, path)
                    elif name == "one process, parallel core":
                        seconds = await core_one_process(sink.endpoint, verify, path)
                    else:
                        seconds = await two_workers(
                            sink.endpoint, verify, path, cluster.scheduler_address
                        )
                    times[name].append(seconds)
                    print(json.dumps({"run": name, "MB/s": round(size / seconds / 1e6)}))
    for name, runs in times.items():
        rates = sorted(round(size / s / 1e6) for s in runs)
        print(f"{name}: median {statistics.median(rates)} MB/s, runs {rates}")


if __name__ == "__main__":
    anyio.run(main)
