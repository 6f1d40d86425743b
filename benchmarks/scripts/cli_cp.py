"""Whole command-line processes against the bench's sink: `asyncup cp` against `s5cmd cp`.

Usage (from the checkout, venv active, the peers' environments made: asyncup bench
--setup-peers):
    python benchmarks/scripts/cli_cp.py [ROUNDS] [http|https]
Cases: one 64 KiB file, and a directory of 1,000 files of 64 KiB; each command as a user
runs it (a fresh process, credentials from the environment), asyncup also with
ASYNCUP_LEAN=0 (everything through botocore) and, for one file, with no fast start's record
(a first cp: the records' folder removed before each run); plus `python -c "import asyncup"`,
the dependencies a cp of many files imports (asyncio, uvloop, ssl, anyio, awscrt) alone, the
signer's alone (awscrt: what a cp of one small file, which starts no event loop, cannot do
without); and a bare `python -c pass`. asyncup's cache is the run's own (XDG_CACHE_HOME). Rounds
interleaved (the order rotated each round), after a warm-up round;
prints the median wall and CPU (user + system, the process and its children) of each.
CLI_CP_BEFORE=/tmp/asyncup-vN adds both asyncup cases run from that checkout.
CLI_CP_INSTALLED=VENV adds the bare start, the import and both cases from a virtual
environment where asyncup is installed as a user installs it, not editable (``python -m venv
VENV && VENV/bin/pip install '.[fast]'``): an editable install's path finder runs at every
start of the interpreter, before a line of asyncup.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench.peers import venv_bin
from asyncup_bench.runner import BUCKET, client_env
from asyncup_bench.servers import start
from asyncup_bench.verify import Verifier

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
TRANSPORT = sys.argv[2] if len(sys.argv) > 2 else "http"
ASYNCUP = str(Path(sys.executable).parent / "asyncup")
S5CMD = str(venv_bin("common", "s5cmd"))
DEPENDENCIES = (
    "import asyncio, ssl, uvloop, anyio, anyio.to_thread, anyio.streams.memory,"
    " anyio._backends._asyncio, awscrt.auth, awscrt.checksums"
)
SIGNER = "import awscrt.auth, awscrt.checksums"
BEFORE = os.environ.get("CLI_CP_BEFORE")  # a checkout to compare with (git worktree add)
INSTALLED = os.environ.get("CLI_CP_INSTALLED")  # a venv with asyncup installed, not editable


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    cpu, started = children_cpu(), time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, children_cpu() - cpu


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cli-cp-") as work:
        one = Path(work, "one.bin")
        one.write_bytes(os.urandom(64 * 1024))
        tree = Path(work, "dir")
        tree.mkdir()
        for n in range(1000):
            Path(tree, f"{n:04d}").write_bytes(os.urandom(64 * 1024))
        with start("sink", tls=TRANSPORT == "https") as server:
            Verifier(server, BUCKET, {}).create_bucket()
            # asyncup's cache (botocore's data, fast starts' records) in the run's own folder.
            cache = Path(work, "cache")
            env = client_env(server) | {"XDG_CACHE_HOME": str(cache)}
            lean_off = {**env, "ASYNCUP_LEAN": "0"}
            # No record: a first cp. Its cache is its own (botocore's data kept), so that
            # removing its records leaves the other commands' in place.
            first = {**env, "XDG_CACHE_HOME": str(Path(work, "first-cache"))}
            records = str(Path(first["XDG_CACHE_HOME"], "asyncup", "start"))
            forget = ["sh", "-c", 'rm -rf "$0" && exec "$@"', records]
            url = ["--endpoint-url", server.endpoint]
            s5 = [S5CMD, "--log", "error", *url]  # over HTTPS, SSL_CERT_FILE trusts the CA
            dst = f"s3://{BUCKET}"
            commands = {
                "python -c pass": ([sys.executable, "-c", "pass"], env),
                "import asyncup": ([sys.executable, "-c", "import asyncup"], env),
                # What a cp of many files imports before a line of asyncup runs: the event
                # loop, anyio (as the pipeline uses it) and awscrt (the signer, and
                # CRC32C/CRC64NVME); a cp of one small file, awscrt only.
                "the dependencies' imports": ([sys.executable, "-c", DEPENDENCIES], env),
                "awscrt's import": ([sys.executable, "-c", SIGNER], env),
                "asyncup cp one": ([ASYNCUP, "cp", str(one), f"{dst}/a/one", *url, "-q"], env),
                "asyncup cp one (ASYNCUP_LEAN=0)": (
                    [ASYNCUP, "cp", str(one), f"{dst}/b/one", *url, "-q"], lean_off),
                "asyncup cp one (no record)": (
                    [*forget, ASYNCUP, "cp", str(one), f"{dst}/i/one", *url, "-q"], first),
                "s5cmd cp one": ([*s5, "cp", str(one), f"{dst}/c/one"], env),
                "asyncup cp dir": ([ASYNCUP, "cp", str(tree), f"{dst}/d/", *url, "-q"], env),
                "asyncup cp dir (ASYNCUP_LEAN=0)": (
                    [ASYNCUP, "cp", str(tree), f"{dst}/e/", *url, "-q"], lean_off),
                "s5cmd cp dir": ([*s5, "cp", f"{tree}/*", f"{dst}/f/"], env),
            }  # fmt: skip
            if BEFORE:  # the same commands on another checkout's asyncup (python -m asyncup)
                before = client_env(server, pythonpath=BEFORE) | {"XDG_CACHE_HOME": str(cache)}
                module = [sys.executable, "-P", "-m", "asyncup", "cp"]  # -P: not the cwd's
                commands["asyncup cp one (before)"] = (
                    [*module, str(one), f"{dst}/g/one", *url, "-q"],
                    before,
                )
                commands["asyncup cp dir (before)"] = (
                    [*module, str(tree), f"{dst}/h/", *url, "-q"], before)  # fmt: skip
            if INSTALLED:  # as a user has it: pip install, not pip install -e
                python, installed = f"{INSTALLED}/bin/python", f"{INSTALLED}/bin/asyncup"
                commands["python -c pass (installed)"] = ([python, "-c", "pass"], env)
                commands["import asyncup (installed)"] = ([python, "-c", "import asyncup"], env)
                commands["asyncup cp one (installed)"] = (
                    [installed, "cp", str(one), f"{dst}/j/one", *url, "-q"],
                    env,
                )
                commands["asyncup cp dir (installed)"] = (
                    [installed, "cp", str(tree), f"{dst}/k/", *url, "-q"], env)  # fmt: skip
            names = list(commands)
            walls: dict[str, list[float]] = {name: [] for name in names}
            cpus: dict[str, list[float]] = {name: [] for name in names}
            for round_number in range(ROUNDS + 1):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    wall, cpu = timed(*commands[name])
                    if round_number:  # the first round warms the caches up
                        walls[name].append(wall)
                        cpus[name].append(cpu)
            for name in names:
                print(json.dumps({
                    "case": name, "transport": TRANSPORT, "runs": ROUNDS,
                    "wall_ms": round(statistics.median(walls[name]) * 1000, 1),
                    "cpu_ms": round(statistics.median(cpus[name]) * 1000, 1),
                }))  # fmt: skip


if __name__ == "__main__":
    main()
