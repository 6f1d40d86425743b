"""What each host of an upload fed by many hosts sets up before it sends or completes.

Its ``Job`` (the Uploader's client, budget and pacer, on the handle's upload), its request
arguments (the handle's, plus the SSE-C key resolved on this host and checked against the
MD5 the upload was created with), the check that its file is the one the upload began
with, and the coordinator's shielded CreateMultipartUpload.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from typing import Any

import anyio.to_thread

from .._concurrency.shield import shielded
from .._core.errors import SourceChangedError
from .._core.handle import SSE_CUSTOMER_KEY_ENV, ParallelUpload
from .._core.params import RoutedArgs, route
from .._pipeline import multipart
from .._pipeline.failures import failure, root_cause
from .._pipeline.job import Job
from .._pipeline.uploader import Uploader


def host_job(up: Uploader, bucket: str, key: str, upload_id: str | None, args: RoutedArgs) -> Job:
    return up._job(bucket, key, args, upload_id=upload_id)


def host_args(handle: ParallelUpload, sse_customer_key: str | bytes | None) -> RoutedArgs:
    """The arguments of this host's requests: the handle's, plus the SSE-C key resolved
    here (never from the handle), checked against the MD5 the upload was created with."""
    extra: dict[str, Any] = dict(handle.request_args)
    if handle.checksum_algorithm is not None:
        extra["ChecksumType"] = handle.checksum_type
    if handle.sse_customer_key_md5 is not None:
        key = sse_customer_key if sse_customer_key is not None else _key_from_environment()
        if key is None:
            raise ValueError(
                "this upload is encrypted with SSE-C: give this host its key"
                f" (sse_customer_key=, or the {SSE_CUSTOMER_KEY_ENV} environment variable);"
                " it never travels with the handle"
            )
        if _key_md5(key) != handle.sse_customer_key_md5:
            raise ValueError("this host's SSE-C key is not the one the upload was created with")
        extra["SSECustomerKey"] = key
        extra["SSECustomerKeyMD5"] = handle.sse_customer_key_md5  # so route() reads base64 too
    elif sse_customer_key is not None:
        raise ValueError("sse_customer_key given, but the upload was not created with SSE-C")
    return route(extra, handle.checksum_algorithm)


def _key_from_environment() -> str | None:
    return os.environ.get(SSE_CUSTOMER_KEY_ENV) or None


def _key_md5(key: str | bytes) -> str | None:
    """The MD5 S3 expects for an SSE-C key given raw (32 bytes) or base64-encoded."""
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) != 32:
        try:
            raw = base64.b64decode(raw, validate=True)
        except ValueError:
            return None
    return base64.b64encode(hashlib.md5(raw, usedforsecurity=False).digest()).decode()


def stat_file(path: str) -> tuple[int, int]:
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file: parts are read from its byte ranges")
    return info.st_size, info.st_mtime_ns


async def check_source(job: Job, handle: ParallelUpload) -> None:
    try:
        now = await anyio.to_thread.run_sync(stat_file, handle.path)
    except OSError as exc:
        raise failure(job, exc) from root_cause(exc)
    if now != (handle.size, handle.mtime_ns):
        raise SourceChangedError(
            f"{handle.path} is not the file the upload began with (size, mtime_ns"
            f" {handle.size}, {handle.mtime_ns} -> {now[0]}, {now[1]})",
            bucket=handle.bucket,
            key=handle.key,
            upload_id=handle.upload_id,
        )


async def create_upload(up: Uploader, job: Job) -> str:
    """CreateMultipartUpload for ``job``, shielded; its upload id. Cancelled meanwhile, the
    upload it created is aborted and the cancellation raised."""
    create = {"Bucket": job.bucket, "Key": job.key, **job.args.create}
    try:
        response, cancel = await shielded(
            lambda: job.s3.call("create_multipart_upload", create), up.config.abort_timeout
        )
    except Exception as exc:
        raise failure(job, exc) from root_cause(exc)
    job.upload_id = str(response["UploadId"])
    if cancel is not None:
        await multipart.abort(job)
        raise cancel
    return job.upload_id
