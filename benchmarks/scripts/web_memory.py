"""The aiohttp recipe (examples/aiohttp_app.py) under load: the app's RSS, peak and between rounds.

Usage (from the checkout, venv active):
    python benchmarks/scripts/web_memory.py CLIENTS ROUNDS [SERVER] [CORE]
SERVER: sink (default: the bench's S3 sink, which keeps nothing) or moto (objects deleted
after each round). CORE: a directory whose asyncup the app imports (a worktree), default the
checkout's. The app runs in a process of its own with the recipe's defaults (8 MiB parts,
concurrency 10, queue 10: a budget of 160 MiB); CLIENTS clients at once PUT streamed bodies
of 100 KiB to 40 MiB (chunked, unknown length), 15 % of them hanging up mid-body. Prints one
JSON line per round (the app's VmRSS before and after, its VmHWM, what the clients saw) and
the app's RSS when idle, and after each round its RSS by kind of mapping (smaps); extra
environment variables are passed on to the app (e.g. MALLOC_ARENA_MAX=2). For a look
inside: WEB_MEMORY_APP=app.py runs that script as the app instead (it must serve the
recipe and a GET /_snap, e.g. tracemalloc's top allocations), which is then asked mid-round
(after WEB_MEMORY_AT seconds, default 1) and after each round.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asyncup_bench.servers import start  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "web-memory"
KiB, MiB = 1024, 1024 * 1024
APP = """
import os, sys
from aiohttp import web
from examples.aiohttp_app import make_app
web.run_app(make_app(os.environ["S3_BUCKET"], endpoint_url=os.environ["S3_ENDPOINT_URL"]),
            host="127.0.0.1", port=int(os.environ["PORT"]), print=None, access_log=None)
"""


def status(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) // 1024  # MiB
    return fields


def cpu_seconds(pid: int) -> float:
    """The app's CPU time so far, user and system (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def breakdown(pid: int) -> dict[str, int]:
    """The app's resident MiB by kind of mapping (from /proc/PID/smaps): part buffers (8 MiB
    anonymous mappings), the brk heap, other anonymous memory (malloc's thread arenas and
    its large blocks, Python's own arenas), and files (code, libraries)."""
    kinds: Counter[str] = Counter()
    kind = "file"
    with open(f"/proc/{pid}/smaps") as file:
        for line in file:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                name = fields[5] if len(fields) > 5 else ""
                if name == "[heap]":
                    kind = "heap"
                elif name.startswith("/"):
                    kind = "file"
                elif end - start == 8 * MiB:
                    kind = "8MiB_mappings"
                else:
                    kind = "anon"
            elif fields[0] == "Rss:":
                kinds[kind] += int(fields[1])
    return {k: v // 1024 for k, v in kinds.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def body(size: int, hang_up: bool, rng: random.Random) -> object:
    chunk = rng.randbytes(256 * KiB)
    sent = 0
    stop = size // 2 if hang_up else size
    while sent < stop:
        piece = chunk[: min(len(chunk), stop - sent)]
        sent += len(piece)
        yield piece
    if hang_up:
        raise ConnectionAbortedError("the client hangs up mid-body")


async def one(
    session: aiohttp.ClientSession, url: str, key: str, rng: random.Random, seen: Counter[str]
) -> None:
    size = int(rng.uniform(100 * KiB, 40 * MiB))
    hang_up = rng.random() < 0.15
    try:
        async with session.put(f"{url}/objects/{key}", data=body(size, hang_up, rng)) as answer:
            await answer.read()
            seen[f"status {answer.status}"] += 1
    except (aiohttp.ClientError, ConnectionAbortedError):
        seen["hung up" if hang_up else "failed"] += 1


async def round_(url: str, clients: int, number: int) -> Counter[str]:
    rng = random.Random(number)
    seen: Counter[str] = Counter()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(
            *(one(session, url, f"r{number}/c{n}", rng, seen) for n in range(clients))
        )
    return seen


async def empty(endpoint: str) -> None:
    """moto keeps what it is sent: delete each round's objects."""
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1"
    ) as s3:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        async for page in pages:
            for entry in page.get("Contents", []):
                await s3.delete_object(Bucket=BUCKET, Key=entry["Key"])


async def main() -> None:
    clients, rounds = int(sys.argv[1]), int(sys.argv[2])
    server_name = sys.argv[3] if len(sys.argv) > 3 else "sink"
    core = sys.argv[4] if len(sys.argv) > 4 else str(ROOT)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with start(server_name, tls=False) as server:
        from aiobotocore.session import get_session

        async with get_session().create_client(
            "s3", endpoint_url=server.endpoint, region_name="us-east-1"
        ) as s3:
            await s3.create_bucket(Bucket=BUCKET)
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": f"{core}{os.pathsep}{ROOT}",
            "S3_BUCKET": BUCKET,
            "S3_ENDPOINT_URL": server.endpoint,
            "PORT": str(port),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        command = [sys.executable, "-c", APP]
        if os.environ.get("WEB_MEMORY_APP"):  # another app script (a traced one, say)
            command = [sys.executable, os.environ["WEB_MEMORY_APP"]]
        app = subprocess.Popen(command, env=env, cwd=os.path.dirname(core) or "/")  # not the checkout: its asyncup would come first
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            await asyncio.sleep(1)
            idle = status(app.pid)["VmRSS"]
            print(json.dumps({"clients": clients, "server": server_name, "idle_rss": idle}))
            for number in range(rounds):
                before = status(app.pid)["VmRSS"]
                cpu_before = cpu_seconds(app.pid)
                started = time.monotonic()
                if os.environ.get("WEB_MEMORY_APP"):  # a look at the app mid-round too
                    async def look() -> None:
                        await asyncio.sleep(float(os.environ.get("WEB_MEMORY_AT", "1")))
                        async with aiohttp.ClientSession() as session:
                            async with session.get(f"{url}/_snap") as answer:
                                print("mid-round:", await answer.text(), flush=True)

                    seen, _ = await asyncio.gather(round_(url, clients, number), look())
                else:
                    seen = await round_(url, clients, number)
                seconds = time.monotonic() - started
                cpu = cpu_seconds(app.pid) - cpu_before
                await asyncio.sleep(2)  # what the app gives back once the load is gone
                after = status(app.pid)
                print(
                    json.dumps(
                        {
                            "round": number,
                            "rss_before": before,
                            "peak": after["VmHWM"],
                            "rss_after": after["VmRSS"],
                            "seconds": round(seconds, 1),
                            "app_cpu_s": round(cpu, 2),
                            **seen,
                            "rss_after_by_kind": breakdown(app.pid),
                        }
                    ),
                    flush=True,
                )
                if server_name == "moto":
                    await empty(server.endpoint)
                if os.environ.get("WEB_MEMORY_APP"):
                    async with aiohttp.ClientSession() as session:
                        async with session.get(f"{url}/_snap") as answer:
                            print(await answer.text(), flush=True)
                    print("after the app's gc.collect():", breakdown(app.pid), flush=True)
        finally:
            app.terminate()
            app.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
