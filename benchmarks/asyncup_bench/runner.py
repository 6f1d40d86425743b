"""The runner: for each case and transport, start a server, run every peer in its own process,
interleaved round by round (a warm-up round, then the repeats), verify every object, and
summarize.

One run of one peer is ``run_client``: Popen, then ``os.wait4`` for the child's own rusage
(user + sys CPU, peak RSS), with a watchdog that kills it past the time limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import peers as peer_registry
from .measure import MiB, Row, Sample, add_ratios, summarize
from .peers import CLIENTS, Peer
from .servers import Server, ServerError, make_room, start
from .verify import Verifier

BUCKET = "asyncup-bench"
SKIP_STATUS = 3


@dataclass(frozen=True, slots=True)
class Settings:
    cases: tuple[str, ...] = ("file",)
    transports: tuple[str, ...] = ("http",)
    peers: tuple[str, ...] = peer_registry.DEFAULT_PEERS
    server: str = "sink"
    endpoint_url: str | None = None
    ca_bundle: str | None = None
    size: int = 256 * MiB
    part_size: int = 8 * MiB
    concurrency: int = 10
    repeat: int = 3
    warmup: int = 1
    small_count: int = 1000
    small_size: int = 64 * 1024
    small_from: str = "bytes"
    """The small case's source: "bytes" read before the clock starts, or "files"."""
    slow_size: int = 256 * MiB
    part_delay: float = 0.5
    stream_chunk: int = 1 * MiB
    md5: bool = False
    timeout: float = 600.0
    setup: bool = True
    workdir: str | None = None
    asyncup_from: str | None = None
    """Where asyncup's client imports asyncup from (its PYTHONPATH); None: as installed."""


@dataclass(slots=True)
class Outcome:
    rows: list[Row] = field(default_factory=list)
    servers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChildResult:
    status: int
    wall: float
    cpu_seconds: float
    max_rss: int
    stdout: str
    stderr: str


def run_client(
    command: Sequence[str],
    *,
    env: dict[str, str],
    timeout: float,
    stdin_path: str | None = None,
) -> ChildResult:
    """Run ``command`` to completion; its own CPU and peak RSS come from os.wait4."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        open(stdin_path or os.devnull, "rb") as stdin,
    ):
        started = time.perf_counter()
        process = subprocess.Popen(command, stdin=stdin, stdout=out, stderr=err, env=env)
        watchdog = threading.Timer(timeout, _kill, (process.pid,))
        watchdog.start()
        peak = [0]
        watcher = threading.Thread(target=_watch_hwm, args=(process.pid, peak), daemon=True)
        watcher.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildResult(
            status=process.returncode,
            wall=wall,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            # ru_maxrss (KiB) keeps the harness's own RSS from before exec as a floor: the
            # child's VmHWM, watched while it ran, does not.
            max_rss=peak[0] or usage.ru_maxrss * 1024,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def _watch_hwm(pid: int, peak: list[int]) -> None:
    """Follow /proc/PID/status VmHWM (peak RSS since exec) until the process is gone."""
    path = f"/proc/{pid}/status"
    time.sleep(0.02)  # let it exec first: before that, VmHWM is the harness's
    while True:
        try:
            with open(path) as status:
                text = status.read()
        except OSError:
            return
        if "State:\tZ" in text:
            return
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        time.sleep(0.05)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def client_env(server: Server, pythonpath: str | None = None) -> dict[str, str]:
    """A client's environment: the bench's credentials and CA bundle, none of the caller's
    AWS or Python settings (``pythonpath``, if given, is the only PYTHONPATH)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "PYTHON")) and key not in ("VIRTUAL_ENV",)
    }
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    if server.ca_bundle:
        env.update(
            AWS_CA_BUNDLE=server.ca_bundle,
            SSL_CERT_FILE=server.ca_bundle,
            REQUESTS_CA_BUNDLE=server.ca_bundle,
        )
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return env


def s5cmd_command(spec: dict[str, Any]) -> tuple[list[str], str | None]:
    """s5cmd's own command line for ``spec``, and the file to give it on stdin."""
    if spec["part_size"] % MiB:
        raise ValueError("s5cmd takes part sizes in whole MiB")
    s5cmd = str(peer_registry.venv_bin("common", "s5cmd"))
    base = [s5cmd, "--log", "error", "--endpoint-url", spec["endpoint"]]
    transfer = [
        "--concurrency",
        str(spec["concurrency"]),
        "--part-size",
        str(spec["part_size"] // MiB),
    ]
    target = f"s3://{spec['bucket']}/{spec['key']}"
    if spec["case"] == "stream":
        return [*base, "pipe", *transfer, target], spec["path"]
    if spec["case"] == "small":
        source = os.path.join(spec["small_dir"], "*")
        return [*base, "--numworkers", str(spec["concurrency"]), "cp", source, target + "/"], None
    return [*base, "cp", *transfer, spec["path"], target], None


def peer_command(peer: Peer, spec: dict[str, Any]) -> tuple[list[str], str | None]:
    if peer.script is None:
        return s5cmd_command(spec)
    python = (
        sys.executable if peer.venv is None else str(peer_registry.venv_bin(peer.venv, "python"))
    )
    return [python, str(CLIENTS / peer.script), json.dumps(spec), *peer.args], None


def sink_cpu(server: Server) -> float | None:
    """The sink's CPU seconds so far (None for other servers)."""
    if server.name != "sink":
        return None
    context = ssl.create_default_context(cafile=server.ca_bundle) if server.ca_bundle else None
    with urllib.request.urlopen(f"{server.endpoint}/_sink/stats", context=context, timeout=10) as r:
        stats: dict[str, float] = json.load(r)
    return stats["cpu_seconds"]


class PeerFailed(Exception):
    """A peer could not do an upload: the message says why, for the table."""


def run_once(
    peer: Peer, spec: dict[str, Any], server: Server, verifier: Verifier, settings: Settings
) -> Sample:
    try:
        command, stdin_path = peer_command(peer, spec)
    except ValueError as exc:
        raise PeerFailed(str(exc)) from exc
    before = sink_cpu(server)
    env = client_env(server, settings.asyncup_from if peer.name == "asyncup" else None)
    result = run_client(command, env=env, timeout=settings.timeout, stdin_path=stdin_path)
    after = sink_cpu(server)
    report = _last_json(result.stdout)
    if result.status == SKIP_STATUS and "skip" in report:
        raise PeerFailed(str(report["skip"]))
    # Killed by a signal once its report was out (obstore aborts at exit, now and then): the
    # upload was measured and is verified below, so the run counts, and the table says so.
    died_after_report = result.status < 0 and "seconds" in report
    if result.status != 0 and not died_after_report:
        tail = (result.stderr.strip().splitlines() or [f"exit status {result.status}"])[-1]
        raise PeerFailed(f"failed: {tail[:200]}")
    verified = verifier.check(spec)
    seconds = float(report.get("seconds", result.wall))
    upload_cpu = report.get("cpu_seconds")
    if peer.script is None:
        upload_cpu = result.cpu_seconds  # a binary: nothing but the upload
    max_rss = int(report.get("peak_rss") or result.max_rss)
    payload = (
        settings.small_count * settings.small_size if spec["case"] == "small" else spec["size"]
    )
    return Sample(
        peer=peer.name,
        case=spec["case"],
        transport=spec["transport"],
        seconds=seconds,
        cpu_seconds=result.cpu_seconds,
        max_rss=max_rss,
        payload=payload,
        objects=settings.small_count if spec["case"] == "small" else 1,
        upload_cpu_seconds=None if upload_cpu is None else float(upload_cpu),
        server_cpu_seconds=None if before is None or after is None else after - before,
        verified=verified,
        exit_note=f"exit status {result.status} after its report" if died_after_report else "",
    )


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                found: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            return found
    return {}


def write_random(path: str, size: int) -> None:
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 16 * MiB))
            out.write(chunk)
            left -= len(chunk)


def prepare_data(workdir: str, settings: Settings, cases: Sequence[str]) -> dict[str, Any]:
    """The benchmark's inputs: random files, and a directory of small ones if needed."""
    data: dict[str, Any] = {}
    if set(cases) & {"file", "stream"}:
        data["path"] = os.path.join(workdir, "data.bin")
        write_random(data["path"], settings.size)
    if "slow" in cases:
        data["slow_path"] = os.path.join(workdir, "slow.bin")
        write_random(data["slow_path"], settings.slow_size)
    if "small" in cases:
        data["small_dir"] = os.path.join(workdir, "small")
        os.makedirs(data["small_dir"])
        blob = os.urandom(settings.small_count * settings.small_size)
        for i in range(settings.small_count):
            with open(os.path.join(data["small_dir"], f"{i:04d}"), "wb") as out:
                out.write(blob[i * settings.small_size : (i + 1) * settings.small_size])
    return data


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(settings: Settings) -> Outcome:
    outcome = Outcome()
    ready: dict[str, str | None] = {}
    for name in settings.peers:
        venv = peer_registry.PEERS[name].venv
        if venv is None or peer_registry.is_ready(venv):
            ready[name] = None
        elif settings.setup:
            ready[name] = peer_registry.ensure(venv)
        else:
            ready[name] = "its environment is missing (asyncup bench --setup-peers)"
    with tempfile.TemporaryDirectory(prefix="asyncup-bench-", dir=settings.workdir) as workdir:
        data = prepare_data(workdir, settings, settings.cases)
        for transport in settings.transports:
            for case in settings.cases:
                outcome.rows += _run_case(case, transport, data, ready, settings, outcome)
    add_ratios(outcome.rows)
    return outcome


def _server(case: str, transport: str, settings: Settings) -> Any:
    tls = transport == "https"
    if settings.endpoint_url is not None:
        return contextlib.nullcontext(
            Server("endpoint", settings.endpoint_url, settings.ca_bundle, None, True)
        )
    tools = str(peer_registry.venv_dir("servers") / "bin")
    if settings.server == "seaweedfs" and settings.setup:
        peer_registry.ensure("servers")
    delay = settings.part_delay if case == "slow" else 0.0
    return start(settings.server, tls=tls, md5=settings.md5, part_delay=delay, tools_dir=tools)


def _run_case(
    case: str,
    transport: str,
    data: dict[str, Any],
    ready: dict[str, str | None],
    settings: Settings,
    outcome: Outcome,
) -> list[Row]:
    names = list(settings.peers)
    notes: dict[str, str] = {n: why for n, why in ready.items() if why}
    samples: dict[str, list[Sample]] = {n: [] for n in names}
    failures: dict[str, list[str]] = {}
    size = settings.slow_size if case == "slow" else settings.size
    try:
        with _server(case, transport, settings) as server:
            outcome.servers[f"{case}/{transport}"] = server.endpoint
            verifier = Verifier(server, BUCKET, data)
            verifier.create_bucket()
            rounds = settings.warmup + settings.repeat
            upload = settings.small_count * settings.small_size if case == "small" else size
            make_room(server, BUCKET, upload * len(names) * rounds)
            for round_number in range(rounds):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:  # interleaved, rotating
                    peer = peer_registry.PEERS[name]
                    if name in notes:
                        continue
                    if case not in peer.cases:
                        notes[name] = f"cannot do the {case} case"
                        continue
                    if case == "small" and settings.small_from == "files" and not peer.files:
                        notes[name] = "sends small objects from bytes only (here)"
                        continue
                    spec = {
                        "endpoint": server.endpoint,
                        "bucket": BUCKET,
                        "key": f"{case}/{name}/{round_number}",
                        "case": case,
                        "transport": transport,
                        "size": size,
                        "part_size": settings.part_size,
                        "concurrency": settings.concurrency,
                        "stream_chunk": settings.stream_chunk,
                        "ca_bundle": server.ca_bundle,
                        "path": data.get("slow_path" if case == "slow" else "path"),
                        "small_dir": data.get("small_dir"),
                        "small_from": settings.small_from,
                    }
                    label = "warm-up" if round_number < settings.warmup else "run"
                    try:
                        sample = run_once(peer, spec, server, verifier, settings)
                    except PeerFailed as exc:
                        log(f"  {case}/{transport} {label} {name}: {exc}")
                        if round_number < settings.warmup:
                            notes[name] = str(exc)  # cannot run: no more attempts
                        else:
                            failures.setdefault(name, []).append(str(exc))
                        continue
                    log(
                        f"  {case}/{transport} {label} {round_number + 1 - settings.warmup:>2}"
                        f" {name:<10} {sample.payload / 1e6 / sample.seconds:8.1f} MB/s"
                        f" cpu {sample.cpu_seconds:6.2f}s rss {sample.max_rss / MiB:6.0f} MiB"
                    )
                    if round_number >= settings.warmup:
                        samples[name].append(sample)
    except ServerError as exc:
        log(f"  {case}/{transport}: the server failed: {exc}")
        return [_failed_row(n, case, transport, f"server: {exc}") for n in names]
    rows = []
    for name in names:
        row = summarize(name, case, transport, samples[name])
        row.note = notes.get(name, "") or peer_registry.PEERS[name].what
        if name in failures:
            row.note += f"; {len(failures[name])} run(s) failed: {failures[name][0]}"
        ended = [sample.exit_note for sample in samples[name] if sample.exit_note]
        if ended:
            row.note += f"; {len(ended)} run(s) counted: {ended[0]}"
        rows.append(row)
    return rows


def _failed_row(peer: str, case: str, transport: str, why: str) -> Row:
    row = summarize(peer, case, transport, [])
    row.note = why
    return row
