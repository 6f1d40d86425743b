"""``asyncup bench``: asyncup against the other S3 uploaders, side by side, on one machine.

    asyncup bench                         # sink over HTTP, 256 MiB file, every peer
    asyncup bench --tls both --size 1GiB --repeat 5 --json out.json --plot out.png
    asyncup bench --case small --peers asyncup,boto3,obstore
    asyncup bench --setup-peers           # make the peers' environments now
    asyncup bench --asyncup-from /tmp/wt  # measure the asyncup of a worktree

Layout: ``sink`` (the fast S3 endpoint, its own process), ``servers`` (sink, moto,
seaweedfs), ``peers`` (who is measured, in which environment), ``clients/`` (one small
script per peer), ``runner`` (runs and times them), ``verify``, ``measure`` (pure: medians,
ratios, the table) and ``report`` (JSON, plot, machine and versions).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from .measure import MiB

CASES = ("file", "stream", "small", "slow")


def add_arguments(parser: argparse.ArgumentParser, parse_size: Callable[[str], int]) -> None:
    from .peers import DEFAULT_PEERS, PEERS
    from .servers import SERVERS

    parser.add_argument("--endpoint-url", help="an S3 endpoint to use instead of a server")
    parser.add_argument("--ca-bundle", help="CA bundle for --endpoint-url over HTTPS")
    parser.add_argument("--server", choices=SERVERS, default="sink")
    parser.add_argument("--size", type=parse_size, default=256 * MiB, help="default 256MiB")
    parser.add_argument("--part-size", type=parse_size, default=8 * MiB)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="measured runs (after a warm-up)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up rounds (default 1)")
    parser.add_argument(
        "--tls",
        nargs="?",
        const="on",
        default="off",
        choices=("off", "on", "both"),
        help="HTTPS (with a CA made at start); 'both' measures HTTP and HTTPS",
    )
    parser.add_argument(
        "--peers",
        default=",".join(DEFAULT_PEERS),
        help=f"comma-separated, of {', '.join(PEERS)} (default: {','.join(DEFAULT_PEERS)})",
    )
    parser.add_argument(
        "--case", default="file", help=f"comma-separated, of {', '.join(CASES)} (default: file)"
    )
    parser.add_argument("--count", type=int, default=1000, help="objects in the small case")
    parser.add_argument("--object-size", type=parse_size, default=64 * 1024)
    parser.add_argument(
        "--small-from",
        choices=("bytes", "files"),
        default="bytes",
        help="small case: objects read into memory before the clock starts (default), or"
        " uploaded from their files, read inside the timed upload (asyncup, obstore, s5cmd)",
    )
    parser.add_argument("--slow-size", type=parse_size, default=256 * MiB)
    parser.add_argument("--part-delay", type=float, default=0.5, help="slow case: s per part")
    parser.add_argument("--md5", action="store_true", help="sink computes real ETags (slower)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--plot", metavar="FILE.png")
    parser.add_argument("--setup-peers", action="store_true", help="make the peer envs and exit")
    parser.add_argument(
        "--no-setup", action="store_true", help="never create a missing peer environment"
    )
    parser.add_argument(
        "--asyncup-from",
        metavar="DIR",
        help="asyncup's client imports asyncup from DIR (a git worktree of the commit to"
        " measure, e.g. while the checkout has uncommitted changes); default: as installed",
    )


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import peers, report, runner
    from .measure import table

    if args.setup_peers:
        for venv in peers.VENVS:
            peers.setup_venv(venv, quiet=False)
        return 0
    names = tuple(n.strip() for n in args.peers.split(",") if n.strip())
    unknown = [n for n in names if n not in peers.PEERS]
    cases = tuple(c.strip() for c in args.case.split(",") if c.strip())
    if unknown:
        parser.error(f"unknown peers {', '.join(unknown)}; known: {', '.join(peers.PEERS)}")
    if any(c not in CASES for c in cases):
        parser.error(f"--case takes {', '.join(CASES)}")
    if args.repeat < 1 or args.concurrency < 1:
        parser.error("--repeat and --concurrency must be >= 1")
    core = args.asyncup_from and os.path.abspath(args.asyncup_from)
    if core and not os.path.isfile(os.path.join(core, "asyncup", "__init__.py")):
        parser.error(f"--asyncup-from: no asyncup package in {core}")
    transports = {"off": ("http",), "on": ("https",), "both": ("http", "https")}[args.tls]
    if args.endpoint_url:
        transports = ("https" if args.endpoint_url.startswith("https") else "http",)
    settings = runner.Settings(
        cases=cases,
        transports=transports,
        peers=names,
        server=args.server,
        endpoint_url=args.endpoint_url,
        ca_bundle=args.ca_bundle,
        size=args.size,
        part_size=args.part_size,
        concurrency=args.concurrency,
        repeat=args.repeat,
        warmup=args.warmup,
        small_count=args.count,
        small_size=args.object_size,
        small_from=args.small_from,
        slow_size=args.slow_size,
        part_delay=args.part_delay,
        md5=args.md5,
        setup=not args.no_setup,
        asyncup_from=core or None,
    )
    print(
        f"asyncup bench: {', '.join(cases)} on {args.endpoint_url or args.server}"
        f" ({'/'.join(transports)}), {args.size / MiB:.0f} MiB, parts {args.part_size / MiB:g}"
        f" MiB, concurrency {args.concurrency}, {args.warmup} warm-up + {args.repeat} runs",
        file=sys.stderr,
        flush=True,
    )
    outcome = runner.run(settings)
    print(table(outcome.rows))
    if args.json:
        extra = {
            "command": sys.argv,
            "machine": report.machine(),
            "versions": report.versions(names),
            "settings": vars(args),
            "servers": outcome.servers,
            "asyncup_core": report.core(core or None),
        }
        report.write_json(args.json, outcome.rows, extra)
    if args.plot:
        report.plot(args.plot, outcome.rows)
    baseline = [r for r in outcome.rows if r.peer == "asyncup"]
    return 1 if baseline and any(r.mb_per_s is None for r in baseline) else 0
