"""The event loop's CPU per file for files of a few parts (40 x 16 MiB, 8 MiB parts), in one
long-lived Uploader, against the sink (issue 17: CreateMultipartUpload and
CompleteMultipartUpload on the lean path).

Usage (venv of a checkout active; PYTHONPATH picks the checkout measured):
    cd /tmp && PYTHONPATH=/work/main python -P /work/main/benchmarks/scripts/medium_files.py 3
Makes the files once (/tmp/asyncup-medium). Each round uploads them with ``upload_many``, 10 in
flight, on uvloop, after a warm-up round, and prints MiB/s, the event loop thread's CPU per
file and the process's. LOOP_PROFILE=FILE: a cProfile of the run, to FILE.
"""

import cProfile
import os
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench.runner import BUCKET, client_env
from asyncup_bench.servers import start
from asyncup_bench.verify import Verifier

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
COUNT, SIZE = 40, 16 * 1024 * 1024
HERE = Path("/tmp/asyncup-medium")


def files() -> list[Path]:
    HERE.mkdir(exist_ok=True)
    paths = [HERE / f"f{n}" for n in range(COUNT)]
    for path in paths:
        if not path.exists() or path.stat().st_size != SIZE:
            path.write_bytes(os.urandom(SIZE))
    return paths


async def measure(endpoint: str, paths: list[Path]) -> None:
    import asyncup

    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        for rnd in range(rounds + 1):
            items = [(path, f"medium/{rnd}/{path.name}") for path in paths]
            loop_cpu, cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
            summary = await up.upload_many(items, BUCKET, objects_in_flight=10)
            wall = time.perf_counter() - wall
            loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
            assert summary.ok, summary.errors[:2]
            rate, per_file = COUNT * SIZE / 2**20 / wall, 1e3 / COUNT
            print(
                "warm" if rnd == 0 else rnd,
                f"{rate:.0f} MiB/s  loop {loop_cpu * per_file:.2f} ms/file"
                f"  process {cpu * per_file:.2f} ms/file",
                flush=True,
            )


paths = files()
with start("sink", tls=False) as server:
    Verifier(server, BUCKET, {}).create_bucket()
    os.environ.update(client_env(server))
    if os.environ.get("LOOP_PROFILE"):
        with cProfile.Profile() as profile:
            uvloop.run(measure(server.endpoint, paths))
        profile.dump_stats(os.environ["LOOP_PROFILE"])
    else:
        uvloop.run(measure(server.endpoint, paths))
