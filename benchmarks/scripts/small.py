"""The small-object case (1,000 x 64 KiB) on the sink: time it, or profile it.

Usage (from the checkout, venv active):
    python benchmarks/scripts/small.py runs head,vN http 5      # interleaved runs, medians
    python benchmarks/scripts/small.py pyspy head http          # py-spy raw stacks
    python benchmarks/scripts/small.py cprofile head http       # cProfile of the client
``head`` is the checkout; ``vN`` a core in /tmp/asyncup-vN (``git worktree add``).
SMALL_FROM=files: the objects are files, read inside the timed upload (else bytes).
Output under /tmp/bench-out/.
"""

from pathlib import Path
import json
import os
import statistics
import subprocess
import sys
import tempfile

# The harness lies beside these scripts, not in the asyncup package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench.measure import MiB
from asyncup_bench.runner import (
    BUCKET,
    Settings,
    client_env,
    prepare_data,
    run_client,
    sink_cpu,
)
from asyncup_bench.servers import start
from asyncup_bench.verify import Verifier

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "..", "asyncup_bench", "clients", "asyncup_client.py")
OUT = "/tmp/bench-out"
mode, variants, transport = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 5
count = int(os.environ.get("SMALL_COUNT", "1000"))
os.makedirs(OUT, exist_ok=True)


def spec_for(server, data, key):
    return {
        "endpoint": server.endpoint,
        "bucket": BUCKET,
        "key": key,
        "case": "small",
        "transport": transport,
        "size": 0,
        "part_size": 8 * MiB,
        "concurrency": 10,
        "stream_chunk": MiB,
        "ca_bundle": server.ca_bundle,
        "path": None,
        "small_dir": data["small_dir"],
        "small_from": os.environ.get("SMALL_FROM", "bytes"),  # or "files"
    }


def env_for(server, name):
    env = client_env(server)
    if name != "head":
        env["PYTHONPATH"] = f"/tmp/asyncup-{name}"
    env.update({k: v for k, v in os.environ.items() if k.startswith("ASYNCUP_BENCH_")})
    return env


with tempfile.TemporaryDirectory(prefix="small-") as wd:
    data = prepare_data(wd, Settings(small_count=count), ["small"])
    with start("sink", tls=transport == "https") as server:
        v = Verifier(server, BUCKET, data)
        v.create_bucket()
        if mode == "runs":
            results = {name: [] for name in variants}
            for rnd in range(repeat + 1):
                order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
                for name in order:
                    spec = spec_for(server, data, f"{name}/{rnd}")
                    before = sink_cpu(server)
                    r = run_client(
                        [sys.executable, CLIENT, json.dumps(spec)],
                        env=env_for(server, name),
                        timeout=600,
                    )
                    if r.status != 0:
                        print(name, "FAILED", r.stderr[-800:], flush=True)
                        continue
                    rep = json.loads([x for x in r.stdout.splitlines() if x.startswith("{")][-1])
                    v.check(spec)
                    s = dict(
                        ops=count / rep["seconds"],
                        cpu_ms=1000 * r.cpu_seconds / count,
                        ucpu_ms=1000 * rep["cpu_seconds"] / count,
                        rss=rep["peak_rss"] / MiB,
                        sink_ms=1000 * (sink_cpu(server) - before) / count,
                    )
                    print(
                        transport,
                        "warm" if rnd == 0 else rnd,
                        name,
                        {k: round(x, 3) for k, x in s.items()},
                        flush=True,
                    )
                    if rnd:
                        results[name].append(s)
            medians = {
                name: {k: round(statistics.median(s[k] for s in runs), 3) for k in runs[0]}
                for name, runs in results.items()
                if runs
            }
            print(json.dumps(medians, indent=1))
            with open(f"{OUT}/small-{'-'.join(variants)}-{transport}.json", "w") as out:
                json.dump({"runs": results, "medians": medians}, out, indent=1)
        else:
            name = variants[0]
            for i in range(2):  # warm-up, then profiled
                spec = spec_for(server, data, f"p/{i}")
                cmd = [sys.executable, CLIENT, json.dumps(spec)]
                if i and mode == "pyspy":
                    out = f"{OUT}/small-{name}-{transport}.txt"
                    cmd = ["py-spy", "record", "-r", "500", "-f", "raw", "-o", out, "--", *cmd]
                elif i and mode == "cprofile":
                    out = f"{OUT}/small-{name}-{transport}.prof"
                    cmd = [sys.executable, "-m", "cProfile", "-o", out, CLIENT, json.dumps(spec)]
                r = subprocess.run(cmd, env=env_for(server, name), capture_output=True, text=True)
                print(i, r.stdout.strip()[-300:], r.stderr.strip()[-300:])
                v.check(spec)
