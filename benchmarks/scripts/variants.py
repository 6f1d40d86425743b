"""Before/after: the current asyncup bench client against older cores (PYTHONPATH).

Usage (from the checkout, venv active; cores in worktrees /tmp/asyncup-vN):
    python benchmarks/scripts/variants.py v0,v1,v5 http,https 5 [file|slow] [SIZE_MiB] [SERVER]
SERVER: sink (default), moto or seaweedfs (HTTP only). Runs interleaved, the order rotated
each round; prints each run and the medians; writes
/tmp/bench-out/variants-CASE-TRANSPORTS[-SERVER].json.
"""

from pathlib import Path
import json
import os
import statistics
import sys
import tempfile

# The harness lies beside these scripts, not in the asyncup package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench.measure import MiB
from asyncup_bench.runner import BUCKET, client_env, run_client, sink_cpu, write_random
from asyncup_bench.servers import start
from asyncup_bench.verify import Verifier

CLIENT = str(Path(__file__).resolve().parents[1] / "asyncup_bench" / "clients" / "asyncup_client.py")
variants = sys.argv[1].split(",")
transports = sys.argv[2].split(",")
repeat = int(sys.argv[3])
case = sys.argv[4] if len(sys.argv) > 4 else "file"
size = int(sys.argv[5]) * MiB if len(sys.argv) > 5 else 1024 * MiB
server_name = sys.argv[6] if len(sys.argv) > 6 else "sink"
delay = 0.5 if case == "slow" else 0.0
out = {}
with tempfile.TemporaryDirectory(prefix="variants-") as wd:
    path = os.path.join(wd, "data.bin")
    write_random(path, size)
    for transport in transports:
        with start(server_name, tls=transport == "https", part_delay=delay) as server:
            v = Verifier(server, BUCKET, {"path": path})
            v.create_bucket()
            for rnd in range(repeat + 1):
                order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
                for name in order:
                    spec = {
                        "endpoint": server.endpoint,
                        "bucket": BUCKET,
                        "key": f"{name}/{rnd}",
                        "case": "file",
                        "transport": transport,
                        "size": size,
                        "part_size": 8 * MiB,
                        "concurrency": 10,
                        "stream_chunk": MiB,
                        "ca_bundle": server.ca_bundle,
                        "path": path,
                        "small_dir": None,
                    }
                    env = client_env(server)
                    env["PYTHONPATH"] = f"/tmp/asyncup-{name}"
                    b = sink_cpu(server) if server_name == "sink" else 0.0
                    r = run_client([sys.executable, CLIENT, json.dumps(spec)], env=env, timeout=600)
                    a = sink_cpu(server) if server_name == "sink" else 0.0
                    rep = (
                        json.loads([x for x in r.stdout.splitlines() if x.startswith("{")][-1])
                        if r.status == 0
                        else {}
                    )
                    if r.status != 0:
                        print(name, transport, "FAILED", r.stderr[-500:], flush=True)
                        continue
                    v.check(spec)
                    gib = size / (1024 * MiB)
                    s = dict(
                        mbps=size / 1e6 / rep["seconds"],
                        cpu=r.cpu_seconds / gib,
                        ucpu=rep["cpu_seconds"] / gib,
                        rss=rep["peak_rss"] / MiB,
                        sink=(a - b) / gib,
                    )
                    print(
                        transport,
                        "warm" if rnd == 0 else rnd,
                        name,
                        {k: round(x, 2) for k, x in s.items()},
                        flush=True,
                    )
                    if rnd:
                        out.setdefault(f"{transport}/{name}", []).append(s)
res = {
    k: {m: statistics.median(x[m] for x in xs) for m in xs[0]} | {"runs": len(xs)}
    for k, xs in out.items()
}
print(json.dumps(res, indent=1))
suffix = "" if server_name == "sink" else f"-{server_name}"
os.makedirs("/tmp/bench-out", exist_ok=True)
with open(f"/tmp/bench-out/variants-{case}-{'-'.join(transports)}{suffix}.json", "w") as dest:
    json.dump({"case": case, "size": size, "samples": out, "medians": res}, dest, indent=1)
