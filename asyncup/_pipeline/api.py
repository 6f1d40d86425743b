"""asyncup.upload(): the one-shot entry point, a thin layer over Uploader."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from .._core.config import TransferConfig
from .._core.results import UploadResult
from .events import UploadEvent
from .job import ProgressCallback
from .uploader import Uploader


async def upload(
    source: object,
    bucket: str,
    key: str,
    *,
    client: Any = None,
    endpoint_url: str | None = None,
    config: TransferConfig | None = None,
    verify: bool | str | os.PathLike[str] | None = None,
    extra_args: Mapping[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
    on_event: Callable[[UploadEvent], object] | None = None,
    resume: str | os.PathLike[str] | None = None,
) -> UploadResult:
    """Upload ``source`` to ``s3://bucket/key``, multipart and concurrently when it is large.

    ``source`` may be bytes / bytearray / memoryview; a path (str or os.PathLike); a binary
    file object, seekable or not; an object with an awaitable ``read(n)`` (aiohttp's
    StreamReader, anyio's AsyncFile); or any ``AsyncIterable[bytes]``. Anything else raises
    ``TypeError``.

    ``client`` is an aiobotocore S3 client owned by the caller (never closed here); without
    one, a client is made from the default credential chain and ``endpoint_url``; it
    verifies TLS certificates unless ``verify=False``, and ``verify="ca.pem"`` trusts that
    CA bundle instead of the default one (boto3's ``verify``).
    ``extra_args`` takes boto3's ExtraArgs names (ContentType, Metadata, ACL, SSECustomerKey,
    ...); an unknown name raises ``ValueError`` before any request. ``on_progress(n)`` is
    called with the bytes newly uploaded (sync or async); the calls add up to the size.
    ``on_event`` receives an ``UploadEvent`` per part started and done, per retry, and at the
    end (pass an ``UploadEvents`` to iterate them while the upload runs).

    ``resume`` (a path source only) names a journal file that survives a crash: the upload
    records its parts there as S3 acknowledges them, and run again with the same ``resume``
    it sends only the parts S3 does not hold yet (checked with ListParts, and against the
    file, whose size, mtime and bytes already sent must not have changed:
    ``SourceChangedError`` otherwise). With ``resume``, a failed or cancelled upload is kept
    for the next attempt rather than aborted (``UploadError.resume_path`` says so); the
    journal is removed once the object is complete.

    Raises ``asyncup.UploadError`` (cause in ``__cause__``) when the upload fails; a failed or
    cancelled multipart upload is aborted first. Example::

        result = await asyncup.upload("video.mp4", "my-bucket", "videos/video.mp4",
                                      extra_args={"ContentType": "video/mp4"})
        print(result.etag, result.parts)
    """
    uploader = Uploader(client=client, endpoint_url=endpoint_url, config=config, verify=verify)
    async with uploader:
        return await uploader.upload(
            source,
            bucket,
            key,
            extra_args=extra_args,
            on_progress=on_progress,
            on_event=on_event,
            resume=resume,
        )
