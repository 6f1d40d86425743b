"""The asyncup command: argument parsing and rendering only.

asyncup demo    upload real bytes through the whole pipeline to an embedded S3 endpoint
asyncup bench   asyncup against the other S3 uploaders (a checkout's benchmarks/asyncup_bench)
asyncup cp      files, directories and stdin to S3 (see cp)
asyncup uploads list or abort unfinished multipart uploads (see uploads)
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _bench_harness() -> Any:
    """The harness of ``asyncup bench``, or None. It is not in the wheel: it lies beside the
    results in a checkout (benchmarks/asyncup_bench), found from where asyncup is imported
    (an editable install's source tree)."""
    try:
        return importlib.import_module("asyncup_bench")
    except ImportError:
        pass
    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    if not (benchmarks / "asyncup_bench" / "__init__.py").is_file():
        return None
    sys.path.insert(0, str(benchmarks))
    return importlib.import_module("asyncup_bench")


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        # The process's own command: no collection while its modules load (~56,000 objects,
        # which live until the process ends: frozen below). Each would walk them all: ~10 ms
        # of a one-file `asyncup cp` (benchmarks/RESULTS.md).
        gc.disable()
    from .._core.config import MiB, TransferConfig
    from .common import parse_size, run_loop

    parser = argparse.ArgumentParser(
        prog="asyncup", description="Fast, fault-safe concurrent uploads to S3."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="upload real bytes to an embedded S3 endpoint (moto server on 127.0.0.1)",
        description="Starts moto server on 127.0.0.1, writes a file of random bytes, uploads it"
        " through the whole pipeline, reads it back and checks it byte for byte.",
    )
    demo.add_argument("--size", type=parse_size, default=parse_size("96MiB"))
    demo.add_argument("--part-size", type=parse_size, default=8 * MiB)
    demo.add_argument("--concurrency", type=int, default=8)
    bench = commands.add_parser(
        "bench",
        help="benchmark asyncup against other S3 uploaders on a local endpoint",
        description="Starts a fast S3 sink (or moto, seaweedfs) on 127.0.0.1 and uploads the"
        " same data with asyncup and each peer, each in its own process; prints MB/s, CPU"
        " per GiB, peak RSS and each peer's ratio to asyncup.",
    )
    words = sys.argv[1:] if argv is None else list(argv)
    # The harness (~7 ms of imports) only for the command that runs it.
    harness = _bench_harness() if words[:1] == ["bench"] else None
    if harness is not None:
        harness.add_arguments(bench, parse_size)
    cp = commands.add_parser(
        "cp",
        help="upload a file, a directory or stdin to S3",
        description="Uploads SRC (a file, a directory, recursively, or - for stdin) to DST"
        " (s3://bucket/key, or s3://bucket/prefix/). Many files share one client and one budget"
        " of requests and buffers. Exit status: 0 ok, 1 a failure, 2 usage, 130 interrupted"
        " (the uploads in flight are aborted first).",
        allow_abbrev=False,
    )
    from .cp import add_arguments as add_cp_arguments

    add_cp_arguments(cp)
    uploads = commands.add_parser(
        "uploads",
        help="list or abort unfinished multipart uploads (ls, abort)",
        description="Unfinished multipart uploads are billed until aborted: 'ls' lists them,"
        " 'abort --older-than AGE' aborts the stale ones.",
    )
    if words[:1] == ["uploads"]:  # its own modules only for the command that runs it
        from .uploads import add_arguments as add_uploads_arguments

        add_uploads_arguments(uploads)
    args = parser.parse_args(argv)
    if argv is None:
        # The process's own command: what is loaded by now (~56,000 objects) lives until
        # the process ends, so the collector stops looking at it. Each full collection,
        # and the one as Python exits, then costs ~20 ms less: ~50 ms of `asyncup cp` of
        # one file (benchmarks/RESULTS.md). Called with its arguments, from a process of
        # someone else's, main() leaves that process's collector as it is.
        gc.freeze()
        gc.enable()
    if args.command == "cp":
        from .cp_run import run as run_cp

        return run_cp(args, cp)
    if args.command == "uploads":
        from .uploads import run as run_uploads

        return run_uploads(args, uploads)
    if args.command == "bench":
        if harness is None:
            bench.error(
                "the benchmark harness is not installed with asyncup: it lives in the"
                " repository (benchmarks/asyncup_bench); run asyncup bench from a checkout"
                " installed with pip install -e '.[bench]'"
            )
        return int(harness.run(args, bench))
    try:
        config = TransferConfig(part_size=args.part_size, concurrency=args.concurrency)
    except ValueError as exc:
        parser.error(str(exc))
    from .demo import run_demo

    return run_loop(lambda: run_demo(args.size, config))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
