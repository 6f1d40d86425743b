"""The event loop's CPU per 64 KiB PutObject in a long-lived process (issue 17's web-server
target: <= 150 us), measured in-process against the sink.

Usage (from the checkout, venv active):
    python benchmarks/scripts/loop_cpu.py [http|https] [rounds]

One Uploader, as a web backend keeps it; each round uploads 2,000 objects of 64 KiB from
bytes, 10 in flight (``upload_many``), after a warm-up round. Printed per round: objects/s,
the event loop thread's CPU per object (``time.thread_time`` in the loop's thread), and the
whole process's CPU per object (worker threads included). Medians at the end.
LOOP_UVLOOP=1: on uvloop (as uvicorn runs when it is installed), not asyncio's own loop.
LOOP_PROFILE=FILE: a cProfile of the run, to FILE.
LOOP_WITHOUT=sign,scope,gc: what one piece costs in place (an ablation, for the profile
only: the sink checks no signature): ``sign`` puts fixed headers for awscrt's signature,
``scope`` makes each request's deadline scope a no-op, ``gc`` turns the collector off.
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
WITHOUT = set(filter(None, os.environ.get("LOOP_WITHOUT", "").split(",")))


def ablate() -> None:
    """Take the pieces named in LOOP_WITHOUT out of the hot path."""
    import gc

    from asyncup._core import wire

    if "sign" in WITHOUT:
        scope = "bench/20261207/us-east-1/s3/aws4_request"
        fixed = [
            ("X-Amz-Date", "20261207T000000Z"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("Authorization", f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"),
        ]
        wire.sign = lambda request, host, who, now=None: [("Host", host), *request.headers, *fixed]
    if "scope" in WITHOUT:
        import contextlib

        from asyncup._concurrency import deadlines

        class NoDeadline(contextlib.nullcontext[None]):
            expired = False

        deadlines.Deadlines.within = lambda self, seconds: NoDeadline()
    if "gc" in WITHOUT:
        gc.disable()


async def measure(endpoint: str) -> list[tuple[float, float, float]]:
    import asyncup

    ablate()
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


if os.environ.get("LOOP_UVLOOP"):  # the event loop uvicorn and the CLI run on
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

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
