"""What a run leaves behind: the machine, the versions, JSON, and a PNG plot."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from typing import Any

from . import peers as peer_registry
from .measure import Row


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return info
    for line in lscpu.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Model name":
            info["cpu"] = value.strip()
        if name.strip() == "Flags":
            flags = set(value.split())
            wanted = ("aes", "vaes", "avx2", "avx512f", "sha_ni", "pclmulqdq", "vpclmulqdq")
            info["cpu_flags"] = [flag for flag in wanted if flag in flags]
    return info


def core(path: str | None) -> dict[str, Any]:
    """Which asyncup was measured: the directory it came from, its commit, and whether the
    tree had uncommitted changes there (``git status``), so a table names what it measured."""
    if path is None:
        import asyncup

        path = os.path.dirname(os.path.dirname(os.path.abspath(asyncup.__file__)))
    info: dict[str, Any] = {"path": path}
    try:
        commit = subprocess.run(
            ["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", path, "status", "--porcelain", "--", "asyncup"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return info
    changed = [line[3:] for line in status.splitlines() if not line.startswith("??")]
    return {**info, "commit": commit, "uncommitted": changed}


def versions(names: Sequence[str]) -> dict[str, str]:
    """The version of each peer's library, from the environment it runs in."""
    wanted = {
        "asyncup": ("asyncup", "aiobotocore", "botocore", "aiohttp", "uvloop"),
        "asyncup-botocore": ("asyncup", "aiobotocore", "botocore", "aiohttp", "uvloop"),
        "boto3": ("boto3", "s3transfer"),
        "boto3-crt": ("boto3", "awscrt"),
        "aioboto3": ("aioboto3", "aiobotocore"),
        "s3fs": ("s3fs", "aiobotocore"),
        "obstore": ("obstore",),
        "obstore-unsigned": ("obstore",),
        "minio": ("minio",),
        "s5cmd": ("s5cmd",),
        "libcloud": ("apache-libcloud",),
    }
    found: dict[str, str] = {}
    cache: dict[str | None, dict[str, str]] = {}
    for name in names:
        venv = peer_registry.PEERS[name].venv
        if venv not in cache:
            cache[venv] = peer_registry.versions(venv)
        installed = cache[venv]
        found[name] = " ".join(f"{d} {installed.get(d, '?')}" for d in wanted.get(name, ()))
    return found


def write_json(path: str, rows: Sequence[Row], extra: dict[str, Any]) -> None:
    document = {**extra, "rows": [dataclasses.asdict(row) for row in rows]}
    with open(path, "w") as out:
        json.dump(document, out, indent=1)


def plot(path: str, rows: Sequence[Row]) -> None:
    """Throughput and CPU per GiB per peer, one column of panels per case and transport."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.mb_per_s is not None:
            groups.setdefault((row.case, row.transport), []).append(row)
    if not groups:
        return
    fig, axes = plt.subplots(
        2, len(groups), figsize=(4.5 * len(groups) + 1, 7), squeeze=False, constrained_layout=True
    )
    for column, ((case, transport), group) in enumerate(groups.items()):
        names = [row.peer for row in group]
        colors = ["tab:red" if n == "asyncup" else "tab:blue" for n in names]
        small = case == "small"
        speeds = [(row.objects_per_s if small else row.mb_per_s) or 0.0 for row in group]
        cpus = [row.cpu_per_gib or 0.0 for row in group]
        top, bottom = axes[0][column], axes[1][column]
        top.barh(names, speeds, color=colors)
        top.set_title(f"{case}, {transport}")
        top.set_xlabel("objects/s" if small else "MB/s (higher is better)")
        top.invert_yaxis()
        bottom.barh(names, cpus, color=colors)
        bottom.set_xlabel("client CPU s per GiB (lower is better)")
        bottom.invert_yaxis()
    fig.savefig(path, dpi=110)
    plt.close(fig)
