"""SeaweedFS's volume growth, and what it did to the bench's ranking on SeaweedFS.

Usage (from the checkout, venv active, the bench's peer environments made):
    python benchmarks/scripts/seaweedfs_growth.py 64|1024 grow|nogrow 5 [asyncup,minio]
Starts ``weed mini`` as the bench does, with volumes of 64 or 1024 MB, grows the volumes
the run will fill ahead of it (``grow``, as the bench now does) or not (``nogrow``, as it
did before), then uploads a 256 MiB file with each client in turn, N rounds after one
warm-up, a new process each. For each upload it prints MB/s, the client's CPU and the
server's (s/GiB), how many volumes the master grew meanwhile, and how many of SeaweedFS's
chunk assignments found no writable volume and slept a second before trying again ("retry
assign: retrying in 1s" in its log). asyncup's client also prints when each part started
and ended (ms since the upload began): a stalled part shows as one that took >1 s.
"""

from __future__ import annotations

from pathlib import Path

import json
import os
import statistics
import sys
import tempfile
import time

# The harness lies beside these scripts, not in the asyncup package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench import peers, runner
from asyncup_bench.measure import MiB
from asyncup_bench.servers import make_room, seaweedfs

volume_mb, grow, repeat = int(sys.argv[1]), sys.argv[2] == "grow", int(sys.argv[3])
clients = sys.argv[4].split(",") if len(sys.argv) > 4 else ["asyncup", "minio"]
SIZE, BUCKET = 256 * MiB, runner.BUCKET
CLIENTS = os.path.join(os.path.dirname(runner.__file__), "clients")

ASYNCUP_TIMED = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[2])
from _common import load_spec, measure
import asyncup, uvloop
spec = load_spec()
async def upload():
    config = asyncup.TransferConfig(part_size=8 << 20, multipart_threshold=8 << 20,
                                    concurrency=10)
    began, started, spans = time.perf_counter(), {}, []
    def on_event(event):
        now = round((time.perf_counter() - began) * 1000)
        if event.kind == "part_started":
            started[event.part_number] = now
        elif event.kind == "part_done":
            spans.append((event.part_number, started[event.part_number], now))
    async with asyncup.Uploader(endpoint_url=spec["endpoint"], config=config) as up:
        await up.upload(spec["path"], spec["bucket"], spec["key"], on_event=on_event)
    print("parts", " ".join(f"{n}:{a}-{b}" for n, a, b in sorted(spans)), file=sys.stderr)
measure(lambda: uvloop.run(upload()))
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command(name: str, spec: dict[str, object]) -> list[str]:
    if name == "asyncup":
        return [sys.executable, "-c", ASYNCUP_TIMED, json.dumps(spec), CLIENTS]
    python = str(peers.venv_bin(peers.PEERS[name].venv or "", "python"))
    return [python, os.path.join(CLIENTS, f"{name}_client.py"), json.dumps(spec)]


with tempfile.TemporaryDirectory(prefix="seaweedfs-growth-") as workdir:
    path = os.path.join(workdir, "data.bin")
    runner.write_random(path, SIZE)
    log_path = os.path.join(workdir, "weed.log")
    with seaweedfs(workdir, None, volume_mb=volume_mb, verbosity=1) as server:
        assert server.pid is not None
        runner.Verifier(server, BUCKET, {"path": path}).create_bucket()
        if grow:
            make_room(server, BUCKET, SIZE * len(clients) * (repeat + 1))
        results: dict[str, list[float]] = {name: [] for name in clients}
        for round_number in range(repeat + 1):
            shift = round_number % len(clients)
            for name in clients[shift:] + clients[:shift]:
                spec = {
                    "endpoint": server.endpoint, "bucket": BUCKET, "case": "file",
                    "key": f"{name}/{round_number}", "transport": "http", "size": SIZE,
                    "part_size": 8 * MiB, "concurrency": 10, "stream_chunk": MiB,
                    "ca_bundle": None, "path": path, "small_dir": None,
                }  # fmt: skip
                logged, server_cpu = os.path.getsize(log_path), cpu_seconds(server.pid)
                env = runner.client_env(server)
                result = runner.run_client(command(name, spec), env=env, timeout=300)
                time.sleep(0.3)  # the log catches up
                with open(log_path, "rb") as log:
                    log.seek(logged)
                    new = log.read().decode(errors="replace")
                report = json.loads(result.stdout.strip().splitlines()[-1])
                mbps = SIZE / 1e6 / report["seconds"]
                gib = SIZE / (1024 * MiB)
                print(
                    "warm-up" if round_number == 0 else f"round {round_number}", name,
                    f"{mbps:6.1f} MB/s  client {result.cpu_seconds / gib:.2f}"
                    f"  server {(cpu_seconds(server.pid) - server_cpu) / gib:.2f} s/GiB",
                    f" volumes grown {new.count('finished automatic volume grow')}",
                    f" assignments slept 1 s {new.count('retrying in 1s')}", flush=True,
                )  # fmt: skip
                for line in result.stderr.splitlines():
                    if line.startswith("parts "):
                        print("   ", line)
                if round_number:
                    results[name].append(mbps)
                time.sleep(0.5)
        for name, runs in results.items():
            print(f"{name}: median {statistics.median(runs):.1f} MB/s, runs",
                  sorted(round(r) for r in runs))  # fmt: skip
