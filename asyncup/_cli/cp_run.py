"""``asyncup cp``, run: the arguments checked (``cp``), SRC planned (``cp_sources``), then one
small file without an event loop (``cp_one``) or everything through one Uploader
(``cp_uploads``); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import sys

from .common import run_loop
from .cp import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, settings_from
from .cp_sources import UsageError, parse_destination
from .cp_sources import plan as plan_items
from .render import make_reporter


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``asyncup cp``: returns the exit status (usage errors exit 2 through ``parser``)."""
    try:
        settings = settings_from(args)
        listing = plan_items(args.src, parse_destination(args.dst), args.filters)
    except (UsageError, ValueError) as exc:
        parser.error(str(exc))
    except OSError as exc:
        print(f"asyncup cp: {args.src}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    reporter = make_reporter(json_lines=args.json, quiet=args.quiet)
    for warning in listing.skipped:
        reporter.warn(f"skipped {warning}")
    if args.dry_run:
        for item in listing.items:
            reporter.would_upload(item)
        total = sum(item.size or 0 for item in listing.items if item.problem is None)
        reporter.summary(f"(dry run) {len(listing.items)} objects, {total} bytes; nothing sent")
        return EXIT_FAILED if any(item.problem for item in listing.items) else EXIT_OK
    try:
        from .cp_one import copy_alone

        done = copy_alone(listing, settings, reporter)  # one small file: no event loop
        if done is not None:
            return done
        from .cp_uploads import copy  # the event loop's way: one Uploader for every item

        return run_loop(lambda: copy(listing, settings, reporter))
    except KeyboardInterrupt:
        if settings.resume_dir is None:
            reporter.warn("interrupted; the uploads in flight were aborted")
        else:
            reporter.warn("interrupted; run the same command again to resume the uploads")
        return EXIT_INTERRUPTED
