"""The endpoints a benchmark runs against, each in its own process on 127.0.0.1.

``sink`` (the default) isolates the client's cost; ``moto`` and ``seaweedfs`` are real
S3 implementations, much slower than the clients here, so they measure the server. Every
server is stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVERS = ("sink", "moto", "seaweedfs")

VOLUME_MB = 1024
"""The size of a SeaweedFS volume here: the largest ``weed mini`` picks by itself."""


class ServerError(RuntimeError):
    """A server could not be started."""


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    endpoint: str
    ca_bundle: str | None
    pid: int | None
    """The server's own process, or None for an endpoint given with --endpoint-url."""
    etag_is_md5: bool
    """Whether its ETags are MD5-based and worth checking (the sink's only with --md5)."""
    master: str | None = None
    """SeaweedFS's master, which grows its volumes (``make_room``)."""


def free_port(also_plus: int | None = None) -> int:
    """A loopback port free now (and ``port + also_plus`` too, for SeaweedFS's gRPC)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if also_plus is None:
            return port
        if port + also_plus < 65536:
            with socket.socket() as other:
                try:
                    other.bind(("127.0.0.1", port + also_plus))
                except OSError:
                    continue
            return port
    raise ServerError("no free loopback port")


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"the server exited with status {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise ServerError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def start(
    name: str,
    *,
    tls: bool,
    md5: bool = False,
    part_delay: float = 0.0,
    tools_dir: str | None = None,
) -> Iterator[Server]:
    """Start server ``name`` on 127.0.0.1 for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix=f"asyncup-bench-{name}-") as workdir:
        if name == "sink":
            with _sink(tls, md5, part_delay) as server:
                yield server
        elif name == "moto":
            with _moto(tls, workdir) as server:
                yield server
        elif name == "seaweedfs":
            if tls:
                raise ServerError("seaweedfs: the harness runs it over HTTP only")
            with seaweedfs(workdir, tools_dir) as server:
                yield server
        else:
            raise ServerError(f"unknown server {name!r}; one of {', '.join(SERVERS)}")


def sink_command() -> list[str]:
    """The sink as its own process (with ``harness_env()``)."""
    return [sys.executable, "-m", "asyncup_bench.sink"]


def harness_env() -> dict[str, str]:
    """The environment of a harness module run with ``-m``: the harness is not installed
    with asyncup, it lies in benchmarks/ beside the results, so that goes on PYTHONPATH."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


@contextlib.contextmanager
def _sink(tls: bool, md5: bool, part_delay: float) -> Iterator[Server]:
    command = [*sink_command(), "--part-delay", str(part_delay)]
    command += ["--tls"] if tls else []
    command += ["--md5"] if md5 else []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=harness_env())
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise ServerError(f"the sink exited with status {process.wait()}")
        info = json.loads(line)
        yield Server("sink", info["endpoint"], info["ca_bundle"], process.pid, md5)
    finally:
        _stop(process)
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def _moto(tls: bool, workdir: str) -> Iterator[Server]:
    if shutil.which("moto_server") is None and not _importable("moto.server"):
        raise ServerError("moto is not installed: pip install 'asyncup[demo]'")
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    ca_bundle = None
    if tls:
        from .tlscert import make_certificates

        files = make_certificates(workdir)
        command += ["-s", "-c", files.cert, "-k", files.key]
        ca_bundle = files.ca
    log = open(os.path.join(workdir, "moto.log"), "wb")  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, process, 30)
        scheme = "https" if tls else "http"
        yield Server("moto", f"{scheme}://127.0.0.1:{port}", ca_bundle, process.pid, True)
    finally:
        _stop(process)
        log.close()


@contextlib.contextmanager
def seaweedfs(
    workdir: str, tools_dir: str | None, *, volume_mb: int = VOLUME_MB, verbosity: int = 0
) -> Iterator[Server]:
    """``weed mini`` in ``workdir`` (its log: ``workdir/weed.log``, at glog level
    ``verbosity``), with volumes of ``volume_mb``."""
    weed = shutil.which("weed", path=tools_dir) or shutil.which("weed")
    if weed is None:
        raise ServerError("seaweedfs: no 'weed' command (asyncup bench --setup-peers installs it)")
    ports = [free_port(10000) for _ in range(5)]
    if len(set(ports)) < 5:
        raise ServerError("seaweedfs: could not find free ports")
    s3, master, volume, filer, _ = ports
    data = os.path.join(workdir, "data")
    os.makedirs(data)
    command = [
        weed, f"-v={verbosity}", "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
        f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        f"-master.volumeSizeLimitMB={volume_mb}", "-volume.max=0",
    ]  # fmt: skip
    # -volume.max=0: as many volumes as the disk has room for. A fixed 4 x 64 MB held 256 MB
    # in all: the bench keeps every object, so the second 256 MiB upload failed (InternalError).
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    log = open(os.path.join(workdir, "weed.log"), "wb")  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_listening(s3, process, 60)
        time.sleep(1.0)  # the S3 gateway listens before the filer behind it is ready
        master_url = f"http://127.0.0.1:{master}"
        yield Server("seaweedfs", f"http://127.0.0.1:{s3}", None, process.pid, True, master_url)
    finally:
        _stop(process, grace=15)
        log.close()


def make_room(server: Server, bucket: str, nbytes: int) -> None:
    """Have SeaweedFS grow, before the clock starts, the volumes ``nbytes`` will fill in
    ``bucket`` (other servers need nothing).

    A write that finds no writable volume makes the master grow one, and SeaweedFS retries
    that write's assignment after a fixed second. Grown on the timed path (with 64 MB
    volumes, four times per 256 MiB upload), those sleeps decided which client came first
    (benchmarks/PROFILE.md, "SeaweedFS: the volume growth"). Deployments grow volumes of
    gigabytes, several at a time: a write seldom waits there.
    """
    if server.master is None:
        return
    try:
        with urllib.request.urlopen(f"{server.master}/dir/status", timeout=30) as answer:
            free: int = json.load(answer)["Topology"]["Free"]
        count = min(free, nbytes // (VOLUME_MB * 1024 * 1024) + 2)
        if count <= 0:
            return
        url = f"{server.master}/vol/grow?collection={bucket}&count={count}&replication=000"
        with urllib.request.urlopen(url, timeout=120) as answer:
            grown = json.load(answer)
    except (OSError, ValueError, KeyError) as exc:
        raise ServerError(f"seaweedfs: could not grow volumes for {bucket}: {exc}") from exc
    if grown.get("count") != count:
        raise ServerError(f"seaweedfs: growing {count} volumes for {bucket} answered {grown}")


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
