"""What every client script shares: the spec it is given, its sources, and its one report.

A client runs as ``PYTHON CLIENT.py SPEC_JSON`` in its peer's environment (where asyncup is
not installed: this module is found because it sits next to the script). It prints one JSON
line: ``{"seconds": ..., "cpu_seconds": ...}`` for the upload alone (imports and reading
the small objects excluded), or ``{"skip": "why"}`` with exit status 3.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn

SKIP_STATUS = 3


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(sys.argv[1])
    return spec


def skip(reason: str) -> NoReturn:
    print(json.dumps({"skip": reason}), flush=True)
    sys.exit(SKIP_STATUS)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss() -> int | None:
    """This process's own peak RSS in bytes (VmHWM), or None where /proc has none.

    Unlike wait4's ru_maxrss, VmHWM starts afresh at exec: it does not include the pages
    of the harness the client was forked from.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def measure(upload: Callable[[], object]) -> None:
    """Run ``upload()`` and print how long it took, in wall and CPU seconds, and peak RSS."""
    started, cpu = time.perf_counter(), _cpu()
    upload()
    seconds = time.perf_counter() - started
    report = {"seconds": seconds, "cpu_seconds": _cpu() - cpu, "peak_rss": peak_rss()}
    print(json.dumps(report), flush=True)


def chunks(spec: dict[str, Any]) -> Iterator[bytes]:
    """The file as a stream of unknown length: ``stream_chunk``-sized reads."""
    with open(spec["path"], "rb") as source:
        while chunk := source.read(spec["stream_chunk"]):
            yield chunk


async def async_chunks(spec: dict[str, Any]) -> AsyncIterator[bytes]:
    for chunk in chunks(spec):
        yield chunk


class Stream:
    """A non-seekable file object over ``chunks``: read(n) only, no size, no seek."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._chunks = chunks(spec)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def small_objects(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, path) of every small object: ``prefix/NNNN`` for ``small_dir/NNNN``."""
    names = sorted(os.listdir(spec["small_dir"]))
    return [(f"{spec['key']}/{name}", os.path.join(spec["small_dir"], name)) for name in names]


def read_small_objects(spec: dict[str, Any]) -> list[tuple[str, bytes]]:
    out = []
    for key, path in small_objects(spec):
        with open(path, "rb") as source:
            out.append((key, source.read()))
    return out
