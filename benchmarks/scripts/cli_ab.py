"""`asyncup cp` from two checkouts, whole processes, alternated: the checkout against a worktree.

Usage (from the checkout, venv active; the other core in /tmp/asyncup-NAME, git worktree add):
    python -P benchmarks/scripts/cli_ab.py NAME [ROUNDS] [one|dir]
Both run as `python -P -m asyncup cp ...` (-P: the code of PYTHONPATH, not the current
directory's), credentials from the environment, against the sink over HTTP: one 64 KiB file,
or a directory of 1,000 x 64 KiB. Prints each one's median wall time and its runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench.runner import BUCKET, client_env
from asyncup_bench.servers import start
from asyncup_bench.verify import Verifier

OTHER = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
CASE = sys.argv[3] if len(sys.argv) > 3 else "one"
CHECKOUTS = {"head": str(Path(__file__).resolve().parents[2]), OTHER: f"/tmp/asyncup-{OTHER}"}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cli-ab-") as work:
        if CASE == "dir":
            source = Path(work, "dir")
            source.mkdir()
            for n in range(1000):
                Path(source, f"{n:04d}").write_bytes(os.urandom(64 * 1024))
            target = f"s3://{BUCKET}/d/"
        else:
            source = Path(work, "one.bin")
            source.write_bytes(os.urandom(64 * 1024))
            target = f"s3://{BUCKET}/one"
        walls: dict[str, list[float]] = {name: [] for name in CHECKOUTS}
        with start("sink", tls=False) as server:
            Verifier(server, BUCKET, {}).create_bucket()
            for round_number in range(ROUNDS + 1):
                names = list(CHECKOUTS) if round_number % 2 else list(CHECKOUTS)[::-1]
                for name in names:
                    env = client_env(server, pythonpath=CHECKOUTS[name])
                    command = [sys.executable, "-P", "-m", "asyncup", "cp", str(source), target,
                               "--endpoint-url", server.endpoint, "-q"]  # fmt: skip
                    started = time.perf_counter()
                    subprocess.run(command, env=env, check=True)
                    if round_number:  # the first round warms the caches up
                        walls[name].append((time.perf_counter() - started) * 1000)
        for name, runs in walls.items():
            print(name, CASE, f"median {statistics.median(runs):.0f} ms", sorted(round(x) for x in runs))


if __name__ == "__main__":
    main()
