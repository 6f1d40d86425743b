"""The exceptions asyncup raises, and the ones it raises inside itself.

    AsyncupError                 root of everything asyncup raises itself
    ├── UploadError              an upload failed; it was aborted (see ``abort_succeeded``)
    │   ├── IntegrityError       the bytes S3 acknowledged are not the bytes that were sent
    │   ├── SourceChangedError   the source changed while it was being read (its size), or
    │   │                        since a resumable upload began (size, mtime, bytes sent)
    │   ├── PartsError           asyncup.parallel: some parts of upload_parts failed
    │   └── MissingPartsError    asyncup.parallel: complete found parts S3 does not hold
    │                            (both in ``_scaleout.protocol``: they carry part results)
    ├── BadResponseError        inside: an answer that cannot be right (an ETag missing)
    ├── PartError               inside: one part failed for good (its ``__cause__``)
    ├── SourceSizeError         inside: the source held more or fewer bytes than planned
    ├── UnverifiedError         inside: integrity='require', and a write nothing can verify
    ├── SourceReadError         inside: a stream's read failed (its ``__cause__``)
    └── StreamTooLongError       a stream outgrew what 10,000 parts can carry
    ShortSourceError (OSError)   inside: a file ended inside the range being read or sent
    StaleSourceError             inside: the file is not the one a journal's parts came from
    ValueError / TypeError       bad arguments, before any request: ObjectTooLargeError
                                 (``plan``), JournalError (``records``), UsageError (the CLI)

The ones marked "inside" never reach the caller: ``_pipeline.failures`` turns each into the
one ``UploadError`` the caller sees (its ``__cause__`` the original).

Bad arguments raise ``ValueError`` / ``TypeError`` before any request is sent. Cancellation
is never converted: a cancelled upload is aborted and the cancellation propagates.
``UploadError.__cause__`` is the underlying exception (a botocore ``ClientError``, a
connection error, or the source's own exception).
"""

from __future__ import annotations


class AsyncupError(Exception):
    """Root of the exceptions raised by asyncup."""


class UploadError(AsyncupError):
    """An upload failed. Unless ``abort_succeeded`` is False, nothing of it is left in S3,
    with one exception the message names: a write whose answer was lost on the way (the
    server may have done it) that the object at the key could not confirm as this upload's
    ("an object may exist at the key").

    Attributes:
        bucket, key: the destination.
        upload_id: the multipart upload id, or None for a single PutObject.
        part_number: the part that failed for good, when a part did.
        code: the S3 error code (``"NoSuchBucket"``, ``"AccessDenied"``...), when S3 sent one.
        abort_succeeded: True if the multipart upload was aborted and confirmed gone,
            False if aborting failed (an orphan may be left), None if there was nothing to
            abort, or if the upload was kept to be resumed.
        resume_path: the resume journal, when the upload was kept so that running it again
            with ``resume=`` the same path goes on where it stopped.
    """

    def __init__(
        self,
        message: str,
        *,
        bucket: str,
        key: str,
        upload_id: str | None = None,
        part_number: int | None = None,
        code: str | None = None,
        abort_succeeded: bool | None = None,
        resume_path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.part_number = part_number
        self.code = code
        self.abort_succeeded = abort_succeeded
        self.resume_path = resume_path

    def __str__(self) -> str:
        where = f"s3://{self.bucket}/{self.key}"
        if self.part_number is not None:
            where += f" (part {self.part_number})"
        text = f"upload to {where} failed: {self.message}"
        if self.abort_succeeded is True:
            text += "; the multipart upload was aborted"
        elif self.abort_succeeded is False:
            text += f"; aborting multipart upload {self.upload_id} failed, it may be left behind"
        if self.resume_path is not None:
            text += (
                f"; multipart upload {self.upload_id} was kept: upload again with"
                f" resume={self.resume_path!r} to go on where it stopped"
            )
        return text


class IntegrityError(UploadError):
    """S3 acknowledged bytes that differ from what asyncup sent (checksum or ETag mismatch)."""


class SourceChangedError(UploadError):
    """The source returned fewer or more bytes than planned: it changed while being read; or
    a resumed upload found the file changed since the parts recorded were sent."""


class PartError(AsyncupError):
    """Part ``part_number`` failed for good; ``__cause__`` says why."""

    def __init__(self, part_number: int) -> None:
        super().__init__(f"part {part_number} failed")
        self.part_number = part_number


class SourceSizeError(AsyncupError):
    """The source did not hold the number of bytes planned for it."""

    def __init__(self, message: str, part_number: int | None) -> None:
        super().__init__(message)
        self.part_number = part_number


class StreamTooLongError(AsyncupError):
    """A stream of unknown length outgrew what 10,000 parts can carry."""


class StaleSourceError(Exception):
    """The file is not the one the journal's parts were read from."""


class ShortSourceError(OSError):
    """The file ended inside the range being read or sent: it shrank."""


class SourceReadError(AsyncupError):
    """A caller's stream failed to read (``__cause__``: its own error, which the caller sees
    as the ``UploadError``'s cause)."""


class UnverifiedError(AsyncupError):
    """``integrity="require"``: a write's bytes could not be verified by the store nor by
    asyncup (the caller sees an ``IntegrityError``; the upload is aborted)."""


class BadResponseError(AsyncupError):
    """S3 answered a request in a way that cannot be right (an ETag missing or wrong)."""
