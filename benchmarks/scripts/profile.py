"""py-spy profile of asyncup's bench client uploading 1 GiB to the sink.

Usage: python benchmarks/scripts/profile.py http|https vN|head  (core from /tmp/asyncup-vN);
one warm-up upload, then one under py-spy; raw stacks in /tmp/bench-out/prof-vN-TRANSPORT.txt.
"""

from pathlib import Path
import json
import os
import subprocess
import sys
import tempfile

# The harness lies beside these scripts, not in the asyncup package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench.measure import MiB
from asyncup_bench.runner import BUCKET, client_env, write_random
from asyncup_bench.servers import start
from asyncup_bench.verify import Verifier

CLIENT = str(Path(__file__).resolve().parents[1] / "asyncup_bench" / "clients" / "asyncup_client.py")
transport, variant = sys.argv[1], sys.argv[2]
size = 1024 * MiB
with tempfile.TemporaryDirectory(prefix="prof-") as wd:
    path = os.path.join(wd, "data.bin")
    write_random(path, size)
    with start("sink", tls=transport == "https") as server:
        v = Verifier(server, BUCKET, {"path": path})
        v.create_bucket()
        for i in range(2):  # warm-up then profiled
            spec = {
                "endpoint": server.endpoint,
                "bucket": BUCKET,
                "key": f"p/{i}",
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
            if variant != "head":
                env["PYTHONPATH"] = f"/tmp/asyncup-{variant}"
            cmd = [sys.executable, CLIENT, json.dumps(spec)]
            if i:
                cmd = [
                    "py-spy",
                    "record",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    f"/tmp/bench-out/prof-{variant}-{transport}.txt",
                    "--",
                    *cmd,
                ]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            print(i, r.stdout.strip()[-300:], r.stderr.strip()[-300:])
            v.check(spec)
