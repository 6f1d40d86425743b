"""The one exception the caller sees.

Whatever fails inside an upload (a part, a request, the source, a lost answer) becomes one
``UploadError``, or a kind of it (``IntegrityError``, ``SourceChangedError``), that says what
is known: the part, S3's error code, whether the multipart upload was aborted or kept for a
resume, and whether an earlier write whose answer was lost may have landed. Its
``__cause__`` is the original error.
"""

from __future__ import annotations

import logging

from .._core.errors import (
    BadResponseError,
    IntegrityError,
    PartError,
    SourceChangedError,
    SourceReadError,
    SourceSizeError,
    StaleSourceError,
    UnverifiedError,
    UploadError,
)
from .._core.retry import CORRUPTION_CODES
from .._s3.errors import error_code, summarize
from .job import Job

log = logging.getLogger("asyncup")


def root_cause(exc: BaseException) -> BaseException:
    if isinstance(exc, PartError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, SourceReadError) and exc.__cause__ is not None:
        exc = exc.__cause__  # the source's own error
    return exc


def kept_error(job: Job, kind: type[UploadError], exc: BaseException) -> UploadError:
    """A resumable upload refused or failed before any part was sent: kept as it was."""
    error = kind(
        summarize(exc) if not isinstance(exc, StaleSourceError) else str(exc),
        bucket=job.bucket,
        key=job.key,
        upload_id=job.upload_id,
        code=error_code(exc),
        resume_path=job.resume_path,
    )
    error.__cause__ = exc
    return error


def failure(
    job: Job, exc: BaseException, aborted: bool | None = None, *, kept: bool = False
) -> UploadError:
    """The UploadError the caller sees for ``exc``."""
    part_number = exc.part_number if isinstance(exc, PartError) else None
    cause = root_cause(exc)
    kind: type[UploadError] = UploadError
    if isinstance(cause, SourceSizeError):
        kind = SourceChangedError
        part_number = cause.part_number or part_number
    elif (
        isinstance(cause, BadResponseError | UnverifiedError)
        or error_code(cause) in CORRUPTION_CODES
    ):
        kind = IntegrityError
    message = summarize(cause)
    if job.unconfirmed is not None:
        message += (
            f"; an earlier {job.unconfirmed} may have succeeded with its answer lost:"
            " an object may exist at the key, and it could not be confirmed as this upload's"
        )
    elif job.corrupt is not None:
        message += {
            "deleted": "; the object it stored (not the bytes sent) was deleted",
            "left": "; the object it stored (not the bytes sent) could not be deleted: it is"
            " corrupt",
            "replaced": "; the object it stored has since been replaced by another writer",
        }[job.corrupt]
    elif job.unsent is not None:
        message += (
            f"; no attempt of {job.unsent} reached the server (no connection could be made):"
            " nothing was written"
        )
    error = kind(
        message,
        bucket=job.bucket,
        key=job.key,
        upload_id=job.upload_id,
        part_number=part_number,
        code=error_code(cause),
        abort_succeeded=aborted,
        resume_path=job.resume_path if kept else None,
    )
    error.__cause__ = cause
    return error
