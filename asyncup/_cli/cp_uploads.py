"""``asyncup cp``'s uploads on the event loop: every item through one Uploader, ``--jobs`` at a
time, each one's Outcome to the Reporter, then the summary.
"""

from __future__ import annotations

import contextlib
import sys
import time
from functools import partial

from .._core.errors import UploadError
from .._core.params import Routes
from .._pipeline.many import for_each
from .._pipeline.uploader import Uploader, upload_routed
from .common import open_uploader
from .cp import EXIT_FAILED, EXIT_OK, Settings, journal_path
from .cp_sources import STDIN, Item, Listing
from .cp_stdin import StdinChunks
from .render import Outcome, Reporter, Summary


async def copy(listing: Listing, settings: Settings, reporter: Reporter) -> int:
    """Upload every item through one Uploader, ``settings.jobs`` at a time."""
    outcomes: list[Outcome] = []
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        try:
            uploader = await stack.enter_async_context(
                open_uploader(settings.connection, settings.config, fast_start=True)
            )
        except Exception as exc:  # no credentials, no such profile...: nothing can go
            reporter.warn(f"cannot connect: {exc}")
            return EXIT_FAILED
        stack.enter_context(reporter)
        reporter.begin(listing.items)
        routes = Routes(settings.extra_args, settings.config.checksum_algorithm)  # once for all

        async def upload_one(item: Item) -> None:
            outcome = await upload_item(uploader, routes, item, settings, reporter)
            outcomes.append(outcome)
            reporter.finish(outcome)
            if not outcome.ok and settings.fail_fast:
                raise _FailFast

        with contextlib.suppress(_FailFast):  # the uploads in flight are cancelled (aborted)
            in_flight = min(settings.jobs, len(listing.items))
            await for_each(listing.items, upload_one, in_flight=in_flight)
    failures = sum(not outcome.ok for outcome in outcomes)
    uploaded = [o.result.size for o in outcomes if o.result is not None]
    summary = Summary(
        files=len(uploaded),
        bytes=sum(uploaded),
        seconds=time.monotonic() - started,
        failures=failures,
        not_uploaded=len(listing.items) - len(outcomes),
    )
    reporter.summary(str(summary))
    return EXIT_FAILED if failures or summary.not_uploaded else EXIT_OK


class _FailFast(Exception):
    """--fail-fast: an object failed, the others stop."""


async def upload_item(
    uploader: Uploader, routes: Routes, item: Item, settings: Settings, reporter: Reporter
) -> Outcome:
    """Upload one item; any failure (but cancellation) becomes the Outcome's error."""
    if item.problem is not None:
        return Outcome(item, 0.0, error=item.problem)
    reporter.start(item)
    started = time.monotonic()
    source: object = item.source
    resume = None
    if item.source == STDIN:
        source = sys.stdin.buffer if item.size is not None else StdinChunks()
    elif settings.resume_dir is not None:
        resume = journal_path(settings.resume_dir, item)
    try:
        result = await upload_routed(
            uploader,
            routes,
            source,
            item.bucket,
            item.key,
            resume=resume,
            on_progress=partial(reporter.advance, item) if reporter.follows else None,
            on_event=reporter.event if reporter.follows else None,
        )
    except Exception as exc:
        return Outcome(item, time.monotonic() - started, error=_describe(exc))
    return Outcome(item, time.monotonic() - started, result=result)


def _describe(exc: Exception) -> str:
    """The error without the destination (the line names it already)."""
    error = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if isinstance(error, OSError):
        return f"{type(error).__name__}: {error.strerror or error}"
    if not isinstance(exc, UploadError):
        return f"{type(exc).__name__}: {exc}"
    text = exc.message if exc.part_number is None else f"part {exc.part_number}: {exc.message}"
    if exc.abort_succeeded is False:
        text += f"; aborting multipart upload {exc.upload_id} failed, it may be left behind"
    if exc.resume_path is not None:
        text += "; kept: run the same command again to resume it"
    return text
