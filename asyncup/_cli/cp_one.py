"""``asyncup cp`` of one small file without an event loop (issue 17).

A new process that copies one file below the multipart threshold (and below the fast start's
1 MiB) to a bucket the fast start's record knows, with static keys in the environment, writes
it from the main thread (``_s3.oneshot``): no event loop, anyio, Uploader or botocore's
client side is loaded, which is most of what such a command cost above Python's own start.

    the file -> read whole (its size as listed) -> checksum, MD5 (``_core.checksums``)
             -> PutObject, the parameters the Uploader would send (``_core.verify``, ``Routes``)
             -> the answer checked as the Uploader checks it (``check_write``, ``verified_by``)
             -> the UploadResult, the lines and the exit status the Uploader's would give

Anything else hands the file to the Uploader (``cp_uploads``), which uploads it as it would
have from the start; a DEBUG log says why. That is: a setting this does not take (a profile,
--resume, --max-bandwidth, --max-attempts 1, --no-verify-ssl, a parameter ``wire`` cannot
say, ``integrity="require"`` where the ETag is not an MD5: the Uploader sends such an
object as a one-part upload, checked before it exists), no record or keys, a file that is
not as listed, and any failure, error answer, or answer that disowns the bytes sent or
cannot vouch for them where ``integrity="require"``. The Uploader then sends the object
again, as its retry would (the same bytes to the same key; a conditional write, which a
second send could refuse, is not among cp's flags), with all of its own attempts: this
first one is not counted among ``--max-attempts``, and is not followed by a back-off.
"""

from __future__ import annotations

import logging
import os
import stat
import time

from .._core.checksums import digest_part
from .._core.params import Routes
from .._core.plan import use_multipart
from .._core.results import UploadResult
from .._core.retry import request_deadline
from .._core.verify import (
    check_write,
    known_to_verify,
    md5_wanted,
    put_params,
    unverifiable,
    verified_by,
    written,
)
from .._core.wire import THRESHOLD
from .._s3 import oneshot, record
from .cp import EXIT_OK, Settings
from .cp_sources import STDIN, Listing
from .render import Outcome, Reporter, Summary

log = logging.getLogger("asyncup")


class _Declined(Exception):
    """Not this way: the Uploader uploads the file (the words say why)."""


def copy_alone(listing: Listing, settings: Settings, reporter: Reporter) -> int | None:
    """Upload the listing's one small file from this thread; its exit status, or None when
    the Uploader is to upload it (nothing was reported then)."""
    started = time.monotonic()
    try:
        result = _put(listing, settings)
    except (_Declined, oneshot.Declined) as exc:
        log.debug("cp: the event loop's way (%s)", exc)
        return None
    except Exception as exc:  # (an error the Uploader will meet again, retry, or report)
        log.debug("cp: the event loop's way (%s: %s)", type(exc).__name__, exc)
        return None
    item = listing.items[0]
    seconds = time.monotonic() - started
    with reporter:
        reporter.begin(listing.items)
        reporter.start(item)
        if reporter.follows:
            reporter.advance(item, result.size)
        reporter.finish(Outcome(item, seconds, result=result))
    summary = Summary(files=1, bytes=result.size, seconds=seconds, failures=0, not_uploaded=0)
    reporter.summary(str(summary))  # (after the bars are gone, as ``cp_uploads`` says it)
    return EXIT_OK


def _put(listing: Listing, settings: Settings) -> UploadResult:
    """The one write, or ``_Declined`` / the failure that hands it to the Uploader."""
    config, connection = settings.config, settings.connection
    if len(listing.items) != 1:
        raise _Declined(f"{len(listing.items)} items")
    item = listing.items[0]
    size = item.size
    if item.problem is not None or item.source == STDIN or size is None:
        raise _Declined("not a file")
    if use_multipart(size, config.multipart_threshold) or size >= THRESHOLD:
        raise _Declined("a file of its size")
    if os.environ.get("ASYNCUP_LEAN", "1") == "0":
        raise _Declined("ASYNCUP_LEAN=0")
    if connection.profile is not None or connection.verify is False:
        raise _Declined("a profile, or --no-verify-ssl")
    if settings.resume_dir is not None or config.max_bandwidth is not None:
        raise _Declined("--resume or --max-bandwidth")
    if config.max_attempts == 1:
        raise _Declined("--max-attempts 1")  # (a write that failed here would go again)
    keys = record.environment_keys()
    if keys is None:
        raise _Declined("no static keys in the environment")
    found = record.find(
        connection.endpoint_url, connection.region, connection.verify, config.concurrency
    )
    known = found[1] if found is not None else None
    if known is None:
        raise _Declined("no record")
    at = known.endpoints.get(item.bucket)
    tls = None
    if at is not None and at.scheme == "https" and known.tls is not None:
        tls = record.tls_context(known.tls)
    routes = Routes(settings.extra_args, config.checksum_algorithm)
    args = routes.for_path(item.source)
    algorithm, integrity = args.checksum_algorithm, config.integrity
    if integrity == "require" and not args.etag_is_md5 and size:
        # The Uploader checks such a write before the object exists: a one-part upload.
        raise _Declined("integrity='require' where the ETag is not an MD5")
    # What the Uploader learns of a new client's store before its first write.
    by_store = algorithm is not None and integrity != "off" and known_to_verify(known.endpoint_url)
    body = _read(item.source, size)
    digest = digest_part(body, algorithm, md5=md5_wanted(args, integrity, by_store))
    params = put_params(item.bucket, item.key, body, args, digest)
    deadline = request_deadline(config.request_timeout, size, sharing=config.concurrency)
    response = oneshot.put_object(known, keys, params, tls, deadline)
    verified = check_write(args, response, digest, "the object")
    by = verified_by(verified, by_store)
    reason = None if by is not None else unverifiable(args, response, integrity)
    if reason is not None and integrity == "require":
        raise _Declined("a write that could not be verified, where it must be")
    return written(args, response, verified, bucket=item.bucket, key=item.key, size=size,
                   parts=1, upload_id=None, verified_by=by, unverified_reason=reason)  # fmt: skip


def _read(path: str, size: int) -> bytes:
    """The whole file, which must still be the regular file of ``size`` bytes listed."""
    with open(path, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            raise _Declined("the file changed since it was listed")
        body = file.read(size + 1)
    if len(body) != size:
        raise _Declined("the file changed while it was read")
    return body
