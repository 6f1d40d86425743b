"""asyncup on a Dask cluster: one multipart upload fed by every worker, and many files.

``pip install 'asyncup[dask]'``. Both functions are coordinators, awaited in the caller's
asyncio program with a ``distributed.Client`` (asynchronous or not); the work runs as
``async def`` tasks on the workers' event loops, through asyncup's own client, retries and
checksums on each worker (``asyncup.parallel``). Blocking reads and hashing run in worker
threads, so a worker's loop keeps answering heartbeats.

    upload_parallel   Create -> batches of parts, one task each (a task holds a worker's
                      slot, so it sends its parts concurrently) -> Complete. A batch whose
                      parts fail is sent again on another worker; a worker that dies has its
                      batch rescheduled by Dask. A batch that fails for good, or the caller's
                      cancellation, stops the senders (a stop signal every task watches) and
                      aborts the upload -- unless a manifest is kept: then the upload stays,
                      and running the same call again takes over from the manifest.
    upload_many       files in batches (the scheduler handles thousands of tasks a second,
                      not millions), each task one Uploader for its batch, under a request
                      rate shared by all the tasks that can run at once.

What travels to the workers: the handle, part numbers or file paths, and the S3 settings
(endpoint, region, TransferConfig): never credentials (each worker has its own chain) nor
an SSE-C key (each worker reads it from the environment variable ``sse_customer_key_env``
names).
"""

from __future__ import annotations

try:
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("asyncup.dask needs Dask: pip install 'asyncup[dask]'") from exc

from ._scaleout.dask_files import ClusterSummary, upload_many
from ._scaleout.dask_parts import upload_parallel

__all__ = ["ClusterSummary", "upload_many", "upload_parallel"]
