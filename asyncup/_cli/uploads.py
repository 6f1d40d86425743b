"""``asyncup uploads ls|abort s3://bucket[/prefix]``: find and abort unfinished uploads.

    ls     one line per upload (initiated, age, key, upload id), or JSON lines
    abort  the uploads older than --older-than: listed, confirmed on a terminal (or --yes),
           then aborted 8 at a time; --dry-run lists them and sends nothing else

The abort confirms exactly the uploads it shows: it lists once, asks, then aborts those.
Without --yes and without a terminal to ask on, it refuses before any request (exit 2).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .._core.config import TransferConfig
from .._pipeline import sweeper
from .._pipeline.sweeper import PendingUpload
from .._pipeline.uploader import Uploader
from .._s3.calls import S3
from .._s3.errors import summarize
from .common import Connection, add_connection_arguments, connection_from, open_uploader, run_loop
from .cp_sources import UsageError, parse_destination

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

T = TypeVar("T")


def parse_age(text: str) -> datetime.timedelta:
    """'30m', '12h', '1d', '2w', '1d12h' -> a timedelta."""
    compact = text.strip().lower()
    if not re.fullmatch(r"(\d+[smhdw])+", compact):
        raise argparse.ArgumentTypeError(f"not an age: {text!r} (try 30m, 12h, 1d, 2w)")
    seconds = sum(
        int(amount) * _AGE_UNITS[unit] for amount, unit in re.findall(r"(\d+)([smhdw])", compact)
    )
    return datetime.timedelta(seconds=seconds)


def format_age(age: datetime.timedelta) -> str:
    """The two largest units: '45s', '12m30s', '3h05m', '2d04h'."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def add_arguments(uploads: argparse.ArgumentParser) -> None:
    """The ``uploads`` subcommand and its own ``ls`` and ``abort``."""
    actions = uploads.add_subparsers(dest="action", required=True)
    ls = actions.add_parser(
        "ls",
        help="list the unfinished multipart uploads",
        description="One line per unfinished multipart upload under s3://bucket[/prefix]:"
        " initiated (UTC), age, key, upload id.",
    )
    ls.add_argument("url", metavar="s3://bucket[/prefix]")
    ls.add_argument("--json", action="store_true", help="one JSON line per upload")
    add_connection_arguments(ls)
    abort = actions.add_parser(
        "abort",
        help="abort the unfinished multipart uploads older than --older-than",
        description="Aborts the unfinished multipart uploads under s3://bucket[/prefix]"
        " initiated more than --older-than ago, after listing them and asking (unless --yes)."
        " Exit status: 0 ok, 1 an abort failed, 2 usage.",
    )
    abort.add_argument("url", metavar="s3://bucket[/prefix]")
    abort.add_argument(
        "--older-than",
        type=parse_age,
        required=True,
        metavar="AGE",
        help="30m, 12h, 1d, 2w (units s, m, h, d, w; combined as 1d12h)",
    )
    abort.add_argument("--dry-run", action="store_true", help="list what would be aborted")
    abort.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    abort.add_argument("--json", action="store_true", help="one JSON line per upload")
    add_connection_arguments(abort)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``asyncup uploads``: returns the exit status (usage errors exit 2 through ``parser``)."""
    try:
        where = parse_destination(args.url)
    except UsageError:
        parser.error(f"expected s3://bucket or s3://bucket/prefix; got {args.url!r}")
    connection = connection_from(args)
    try:
        if args.action == "ls":
            return _ls(connection, where.bucket, where.key, json_lines=args.json)
        return _abort(args, connection, where.bucket, where.key)
    except KeyboardInterrupt:
        print("asyncup uploads: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _with_s3(connection: Connection, what: str, action: Callable[[S3], Awaitable[T]]) -> T | None:
    """Run ``action`` with the S3 of the command's Uploader; None (reported) if it failed."""
    outcome: list[T] = []

    async def main() -> int:
        try:
            async with open_uploader(connection, TransferConfig()) as uploader:
                outcome.append(await action(_s3_of(uploader)))
        except Exception as exc:  # no credentials, no such bucket, access denied...
            print(f"asyncup uploads: cannot {what}: {summarize(exc)}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK

    return outcome[0] if run_loop(main) == EXIT_OK else None


def _s3_of(uploader: Uploader) -> S3:
    return S3(uploader.client, uploader.config)


def _ls(connection: Connection, bucket: str, prefix: str, *, json_lines: bool) -> int:
    now = datetime.datetime.now(datetime.UTC)

    async def list_and_print(s3: S3) -> int:
        count = 0
        async for upload in sweeper.list_uploads(s3, bucket, prefix):
            print(_render(upload, now, json_lines=json_lines), flush=True)
            count += 1
        return count

    count = _with_s3(connection, f"list s3://{bucket}/{prefix}", list_and_print)
    if count is None:
        return EXIT_FAILED
    if not json_lines:
        print(f"{count} unfinished upload{'' if count == 1 else 's'}", file=sys.stderr)
    return EXIT_OK


def _abort(args: argparse.Namespace, connection: Connection, bucket: str, prefix: str) -> int:
    if not (args.yes or args.dry_run) and not sys.stdin.isatty():
        print(
            "asyncup uploads abort: stdin is not a terminal to confirm on; pass --yes"
            " (or --dry-run to see what would be aborted)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    now = datetime.datetime.now(datetime.UTC)
    before = sweeper.cutoff(args.older_than, now)

    async def stale(s3: S3) -> list[PendingUpload]:
        return await sweeper.stale_uploads(s3, bucket, prefix, before)

    uploads = _with_s3(connection, f"list s3://{bucket}/{prefix}", stale)
    if uploads is None:
        return EXIT_FAILED
    if not uploads:
        print(f"no unfinished uploads initiated before {_iso(before)}", file=sys.stderr)
        return EXIT_OK
    if args.dry_run or not args.yes:
        for upload in uploads:
            print(_render(upload, now, json_lines=args.json, status="would abort"), flush=True)
    if args.dry_run:
        print(f"(dry run) {len(uploads)} uploads would be aborted; none was", file=sys.stderr)
        return EXIT_OK
    if not args.yes and not _confirm(f"Abort these {len(uploads)} uploads? [y/N] "):
        print("nothing aborted", file=sys.stderr)
        return EXIT_OK

    async def abort(s3: S3) -> list[sweeper.AbortOutcome]:
        return await sweeper.abort_each(s3, uploads)

    outcomes = _with_s3(connection, "abort", abort)
    if outcomes is None:
        return EXIT_FAILED
    for upload, error in outcomes:
        status = "aborted" if error is None else "failed"
        print(_render(upload, now, json_lines=args.json, status=status, error=error), flush=True)
    failed = sum(error is not None for _, error in outcomes)
    print(f"{len(outcomes) - failed} aborted, {failed} failed", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _confirm(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _render(
    upload: PendingUpload,
    now: datetime.datetime,
    *,
    json_lines: bool,
    status: str | None = None,
    error: Exception | None = None,
) -> str:
    """A line for ``ls`` (no status) or for ``abort`` (would abort, aborted, failed)."""
    age = now - upload.initiated
    if json_lines:
        record: dict[str, object] = {
            "bucket": upload.bucket,
            "key": upload.key,
            "upload_id": upload.upload_id,
            "initiated": _iso(upload.initiated),
            "age_seconds": int(age.total_seconds()),
            "storage_class": upload.storage_class,
            "initiator": upload.initiator,
            "owner": upload.owner,
        }
        if status is not None:
            record["status"] = status.replace(" ", "_")
            record["error"] = None if error is None else summarize(error)
        return json.dumps(record)
    line = f"{_iso(upload.initiated)}  {format_age(age):>7}  {upload.key}  {upload.upload_id}"
    if status is None:
        return line
    return f"{status}: {line}" + ("" if error is None else f": {summarize(error)}")
