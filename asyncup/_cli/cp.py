"""``asyncup cp SRC DST``: files, directories and stdin to S3 through one Uploader.

    arguments -> TransferConfig + extra_args (checked: usage errors exit 2, before any request)
    SRC, DST  -> items (``cp_sources.plan``: directory walk, filters, keys checked)
    items     -> ``many.for_each``, ``--jobs`` at a time -> upload_routed (one client, one budget)
              -> an Outcome per item -> Reporter (bars, lines or JSON lines) -> summary
                 (``cp_run``: through ``cp_uploads``; one small file on a fast start through
                 ``cp_one``, with no event loop)

A failed object is reported and the others go on (unless --fail-fast). Ctrl-C cancels the
uploads in flight, which makes asyncup abort them, and exits 130.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from .._core.config import CHECKSUM_ALGORITHMS, INTEGRITY_MODES, TransferConfig
from .._core.params import CANNED_ACLS, SERVER_SIDE_ENCRYPTION, route
from .common import Connection, add_connection_arguments, connection_from, parse_size
from .cp_sources import STDIN, Filter, Item

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
SSE_C_KEY_BYTES = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the uploads need besides the items."""

    config: TransferConfig
    extra_args: dict[str, Any]
    connection: Connection
    jobs: int
    fail_fast: bool
    resume_dir: str | None = None
    """Where each file's resume journal is kept (``--resume``); None: no resume."""


def add_arguments(cp: argparse.ArgumentParser) -> None:
    """The ``cp`` subcommand's arguments."""
    cp.add_argument("src", metavar="SRC", help="a file, a directory (recursive) or - for stdin")
    cp.add_argument(
        "dst", metavar="DST", help="s3://bucket/key, or s3://bucket/prefix/ (keeps the names)"
    )
    _add_selection(cp)
    _add_transfer(cp)
    _add_object(cp)
    add_connection_arguments(cp)
    output = cp.add_argument_group("output")
    output.add_argument("--dry-run", action="store_true", help="print what would be uploaded")
    output.add_argument("--quiet", "-q", action="store_true", help="only failures and warnings")
    output.add_argument("--json", action="store_true", help="one JSON line per object")


def _add_selection(cp: argparse.ArgumentParser) -> None:
    group = cp.add_argument_group(
        "directories",
        "Globs match the path relative to SRC ('*' crosses '/'); the last matching filter"
        " wins. Everything is selected unless the first filter is an --include.",
    )
    for kind in ("include", "exclude"):
        group.add_argument(
            f"--{kind}",
            dest="filters",
            action=_AppendFilter,
            const=kind,
            default=[],
            metavar="GLOB",
            help=f"{kind} matching files (repeatable)",
        )
    group.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="files uploaded at once (default: --concurrency); all share one budget",
    )
    group.add_argument(
        "--fail-fast", action="store_true", help="stop everything at the first failure"
    )


def _add_transfer(cp: argparse.ArgumentParser) -> None:
    group = cp.add_argument_group("transfer (sizes take units: 8MiB, 1GB)")
    group.add_argument("--part-size", type=parse_size, metavar="SIZE", help="default 8MiB")
    group.add_argument("--multipart-threshold", type=parse_size, metavar="SIZE")
    group.add_argument("--concurrency", type=int, metavar="N", help="requests in flight")
    group.add_argument("--queue-size", type=int, metavar="N", help="parts read ahead")
    group.add_argument("--max-attempts", type=int, metavar="N", help="requests per operation")
    group.add_argument(
        "--checksum-algorithm",
        type=str.upper,
        choices=[*CHECKSUM_ALGORITHMS, "NONE"],
        metavar="ALG",
        help=f"{', '.join(CHECKSUM_ALGORITHMS)} or none (default CRC32)",
    )
    group.add_argument("--max-buffer-bytes", type=parse_size, metavar="SIZE")
    group.add_argument(
        "--max-bandwidth",
        type=parse_size,
        metavar="SIZE",
        help="bytes per second, all files together",
    )
    group.add_argument("--retry-base-delay", type=float, metavar="SECONDS")
    group.add_argument("--retry-max-delay", type=float, metavar="SECONDS")
    group.add_argument("--abort-timeout", type=float, metavar="SECONDS")
    group.add_argument(
        "--resume",
        action="store_true",
        help="keep an interrupted or failed upload and go on from it when the same command"
        " runs again (files only; journals in --resume-dir)",
    )
    group.add_argument(
        "--resume-dir",
        metavar="DIR",
        help=f"where --resume keeps its journals (default {_default_resume_dir()})",
    )
    group.add_argument("--request-timeout", type=float, metavar="SECONDS", help="default 60")
    group.add_argument(
        "--integrity",
        choices=INTEGRITY_MODES,
        help="where the store checks nothing: auto (verify by MD5 where possible, report"
        " the rest; default), require (fail what cannot be verified), off",
    )


def _add_object(cp: argparse.ArgumentParser) -> None:
    group = cp.add_argument_group("object attributes")
    group.add_argument(
        "--acl", choices=sorted(CANNED_ACLS), metavar="ACL", help="a canned ACL: private..."
    )
    group.add_argument("--content-type", metavar="TYPE", help="default: guessed from the name")
    group.add_argument("--cache-control", metavar="VALUE")
    group.add_argument(
        "--metadata", type=_pair, action="append", default=[], metavar="K=V", help="repeatable"
    )
    group.add_argument(
        "--tag", type=_pair, action="append", default=[], metavar="K=V", help="repeatable"
    )
    group.add_argument("--storage-class", metavar="CLASS", help="STANDARD_IA, GLACIER...")
    group.add_argument("--sse", choices=sorted(SERVER_SIDE_ENCRYPTION))
    group.add_argument("--sse-kms-key-id", metavar="ID")
    group.add_argument(
        "--sse-c-key-file", metavar="PATH", help="a file holding a 32-byte SSE-C key"
    )
    group.add_argument(
        "--checksum-type",
        "--checksum",
        type=str.upper,
        choices=["COMPOSITE", "FULL_OBJECT"],
        help="the kind of whole-object checksum (default: COMPOSITE, FULL_OBJECT for CRC64NVME)",
    )


class _AppendFilter(argparse.Action):
    """--include and --exclude into one list, in command-line order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        filters: list[Filter] = [*getattr(namespace, self.dest, []), (self.const, values)]
        setattr(namespace, self.dest, filters)


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected K=V; got {text!r}")
    return name, value


def _default_resume_dir() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join("~", ".local", "state")
    return os.path.join(state, "asyncup", "resume")


def resume_dir_from(args: argparse.Namespace) -> str | None:
    """The journals' directory: None without --resume; ``ValueError`` for what cannot resume."""
    if args.resume_dir is not None and not args.resume:
        raise ValueError("--resume-dir needs --resume")
    if not args.resume:
        return None
    if args.src == STDIN:
        raise ValueError("--resume needs files: stdin cannot be read again after a crash")
    return os.path.expanduser(args.resume_dir or _default_resume_dir())


def journal_path(directory: str, item: Item) -> str:
    """Each file's journal: named after its source and destination, so that running the same
    command again finds it."""
    name = f"{os.path.abspath(item.source)}\0{item.bucket}\0{item.key}"
    return os.path.join(directory, hashlib.sha256(name.encode()).hexdigest()[:32] + ".resume")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}")
    return int(text)


def settings_from(args: argparse.Namespace) -> Settings:
    """The Settings the arguments ask for; ``ValueError`` (a usage error) when S3 or asyncup
    would refuse them."""
    fields = (
        *("part_size", "multipart_threshold", "concurrency", "queue_size", "max_attempts"),
        *("max_buffer_bytes", "retry_base_delay", "retry_max_delay", "abort_timeout"),
        "max_bandwidth",
        "request_timeout",
        "integrity",
    )
    options: dict[str, Any] = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    if args.checksum_algorithm is not None:
        options["checksum_algorithm"] = (
            None if args.checksum_algorithm == "NONE" else args.checksum_algorithm
        )
    config = TransferConfig(**options)
    extra_args = extra_args_from(args)
    route(extra_args, config.checksum_algorithm)  # raises what every upload would raise
    return Settings(
        config=config,
        extra_args=extra_args,
        connection=connection_from(args),
        jobs=args.jobs or config.concurrency,
        fail_fast=args.fail_fast,
        resume_dir=resume_dir_from(args),
    )


def extra_args_from(args: argparse.Namespace) -> dict[str, Any]:
    """The object attributes, in boto3's ExtraArgs names."""
    named = {
        "ACL": args.acl,
        "ContentType": args.content_type,
        "CacheControl": args.cache_control,
        "StorageClass": args.storage_class,
        "ServerSideEncryption": args.sse,
        "SSEKMSKeyId": args.sse_kms_key_id,
        "ChecksumType": args.checksum_type,
    }
    extra: dict[str, Any] = {name: value for name, value in named.items() if value is not None}
    if args.metadata:
        extra["Metadata"] = dict(args.metadata)
    if args.tag:
        extra["Tagging"] = dict(args.tag)
    if args.sse_c_key_file is not None:
        extra["SSECustomerKey"] = _read_sse_c_key(args.sse_c_key_file)
    return extra


def _read_sse_c_key(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            key = file.read(SSE_C_KEY_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"--sse-c-key-file: {exc.strerror or exc}: {path!r}") from None
    if len(key) != SSE_C_KEY_BYTES:
        raise ValueError(f"--sse-c-key-file must hold exactly {SSE_C_KEY_BYTES} bytes")
    return key
