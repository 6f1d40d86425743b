"""What the subcommands share: sizes on the command line, the event loop, the connection
flags, and the one Uploader each command opens with them."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._core.config import TransferConfig

if TYPE_CHECKING:
    from .._pipeline.uploader import Uploader

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4,
}  # fmt: skip


def parse_size(text: str) -> int:
    """'8MiB' -> 8388608, '1GB' -> 10**9, '512' -> 512."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 8MiB, 1GB, 512)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def run_loop(coro_fn: Callable[[], Coroutine[Any, Any, int]]) -> int:
    import asyncio  # (the event loop, its ~30 ms of imports, for a command that runs one)

    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro_fn())
    return uvloop.run(coro_fn())


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """Where and how a command connects (--endpoint-url, --profile, --region, TLS)."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    verify: bool | str | None = None
    """boto3's ``verify``: None (AWS_CA_BUNDLE or botocore's CA bundle), a CA bundle, False."""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The connection flags, as one group of ``parser``'s arguments."""
    group = parser.add_argument_group("connection")
    group.add_argument("--endpoint-url", metavar="URL", help="an S3-compatible endpoint")
    group.add_argument("--profile", help="a profile from the AWS config files")
    group.add_argument("--region")
    tls = group.add_mutually_exclusive_group()
    tls.add_argument(
        "--no-verify-ssl",
        action="store_true",
        help="do not verify TLS certificates (verification is on otherwise)",
    )
    tls.add_argument(
        "--ca-bundle",
        type=_existing_file,
        metavar="PATH",
        help="verify TLS certificates against this CA bundle (PEM) instead of the default",
    )


def verify_from(args: argparse.Namespace) -> bool | str | None:
    """boto3's ``verify`` from --no-verify-ssl and --ca-bundle (exclusive, as parsed)."""
    return False if args.no_verify_ssl else args.ca_bundle


def connection_from(args: argparse.Namespace) -> Connection:
    """The Connection the flags of ``add_connection_arguments`` ask for."""
    return Connection(
        endpoint_url=args.endpoint_url,
        profile=args.profile,
        region=args.region,
        verify=verify_from(args),
    )


@asynccontextmanager
async def open_uploader(
    connection: Connection, config: TransferConfig, *, fast_start: bool = False
) -> AsyncIterator[Uploader]:
    """The one Uploader of a command, on asyncup's own client (for --profile too);
    ``fast_start``: the client waits for a request that needs it (``_s3.start``), for a
    command that does not use it directly."""
    from .._pipeline.uploader import Uploader

    if connection.verify is False:
        print("asyncup: TLS certificates are NOT verified (--no-verify-ssl)", file=sys.stderr)
    uploader = Uploader(
        endpoint_url=connection.endpoint_url,
        region_name=connection.region,
        config=config,
        verify=connection.verify,
        profile=connection.profile,
    )
    uploader._fast_start = fast_start
    async with uploader:
        yield uploader


def _existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return text
