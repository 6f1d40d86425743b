"""The README's first command: `asyncup demo` against its own embedded endpoint."""

from __future__ import annotations

import subprocess
import sys

import pytest

from asyncup._cli.main import parse_size


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
