"""The README's first command: `asyncup demo` against its own embedded endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import asyncup
from asyncup._cli.common import parse_size


@pytest.mark.timeout(120)
def test_demo_uploads_to_an_embedded_endpoint_and_verifies() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "asyncup", "demo", "--size", "24MiB", "--part-size", "5MiB"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "http://127.0.0.1:" in run.stdout
    assert "uploaded 24.0 MiB in 5 parts" in run.stdout
    assert "verified" in run.stdout
    assert "NOT verified" not in run.stdout
    assert "identical" in run.stdout


@pytest.mark.parametrize(
    ("text", "size"),
    [("512", 512), ("8MiB", 8 * 2**20), ("1GB", 10**9), ("1.5KiB", 1536), ("2 gib", 2 * 2**30)],
)
def test_sizes_accept_human_units(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(Exception, match="not a size"):
        parse_size("lots")


def test_bad_part_size_is_a_usage_error() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "asyncup", "demo", "--part-size", "1MiB"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "part_size" in run.stderr


def _bench(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncup", "bench", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=cwd,
    )


def test_bench_finds_its_harness_in_the_checkout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = _bench(
        env, tmp_path, "--help"
    )  # not from the checkout's directory: found from asyncup's own
    assert run.returncode == 0, run.stderr
    assert "--peers" in run.stdout


def test_bench_without_its_harness_says_where_it_lives(tmp_path: Path) -> None:
    """As installed from a wheel: asyncup alone, no benchmarks/ beside it."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(asyncup.__file__).parent, tmp_path / "site" / "asyncup", ignore=ignore)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    run = _bench(env, tmp_path)
    assert run.returncode == 2
    assert "benchmarks/asyncup_bench" in run.stderr
    assert "checkout" in run.stderr


FROZEN = """
import gc, sys
from asyncup._cli.main import main
if sys.argv[1] == "as-command":
    sys.argv = ["asyncup", "cp", "/nonexistent/file", "s3://bucket/key"]
    rc = main()
else:
    rc = main(["cp", "/nonexistent/file", "s3://bucket/key"])
print(rc, gc.get_freeze_count() > 0)
"""


@pytest.mark.parametrize(("how", "frozen"), [("as-command", "True"), ("with-arguments", "False")])
def test_the_command_leaves_what_it_loaded_to_the_collector_only_as_the_process(
    how: str, frozen: str
) -> None:
    """As the process's own command, `asyncup` freezes what it has loaded (the collector
    stops looking at it: each full collection, and the one at exit, costs less); main()
    called with its arguments, inside someone else's process, leaves their collector be."""
    run = subprocess.run(
        [sys.executable, "-c", FROZEN, how], capture_output=True, text=True, timeout=60
    )
    assert run.stdout.split() == ["1", frozen], run.stderr
    assert "No such file or directory" in run.stderr
