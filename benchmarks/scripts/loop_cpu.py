"""The event loop's CPU per 64 KiB PutObject in a long-lived process (issue 17's web-server
target: <= 150 us), measured in-process against the sink.

Usage (from the checkout, venv active):
    python benchmarks/scripts/loop_cpu.py [http|https] [rounds]

One Uploader, as a web backend keeps it; each round uploads 2,000 objects of 64 KiB from
bytes, 10 in flight (``upload_many``), after a warm-up round. Printed per round: objects/s,
the event loop thread's CPU per object (``time.thread_time`` in the loop's thread), and the
whole process's CPU per object (worker threads included). Medians at the end.
LOOP_PROFILE=FILE: a cProfile of the run, to FILE.
"""

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench.runner import BUCKET, client_env
from asyncup_bench.servers import start
from asyncup_bench.verify import Verifier

transport = sys.argv[1] if len(sys.argv) > 1 else "http"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
COUNT, SIZE = 2000, 64 * 1024


async def measure(endpoint: str) -> list[tuple[float, float, float]]:
    import asyncup

    body = os.urandom(SIZE)
    results = []
    async with asyncup.Uploader(endpoint_url=endpoint) as up:
        for rnd in range(rounds + 1):
            items = [(body, f"loop/{rnd}/{n}") for n in range(COUNT)]
            loop_cpu, cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
            summary = await up.upload_many(items, BUCKET, objects_in_flight=10)
            wall = time.perf_counter() - wall
            loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
            assert summary.ok, summary.errors[:3]
            row = (COUNT / wall, 1e6 * loop_cpu / COUNT, 1e6 * cpu / COUNT)
            print(transport, "warm" if rnd == 0 else rnd, "objects/s %.0f  loop %.0f us  process %.0f us" % row, flush=True)
            if rnd:
                results.append(row)
    return results


with start("sink", tls=transport == "https") as server:
    Verifier(server, BUCKET, {}).create_bucket()
    os.environ.update(client_env(server))
    if os.environ.get("LOOP_PROFILE"):  # cProfile of every round, to that file
        import cProfile

        with cProfile.Profile() as profile:
            rows = asyncio.run(measure(server.endpoint))
        profile.dump_stats(os.environ["LOOP_PROFILE"])
    else:
        rows = asyncio.run(measure(server.endpoint))
    medians = [statistics.median(row[i] for row in rows) for i in range(3)]
    print("median: objects/s %.0f  loop %.0f us/object  process %.0f us/object" % tuple(medians))
