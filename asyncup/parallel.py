"""One multipart upload fed by many hosts, on no engine in particular.

The coordinator creates the upload and gets a handle (it pickles and round-trips JSON, and
holds no credential and no SSE-C key); any host sends parts; the coordinator completes
after checking each part against what ListParts says S3 kept. The protocol and its theory
of operation: ``asyncup._scaleout.protocol``. Example (one process standing in for many)::

    async with asyncup.Uploader() as up:
        handle = await parallel.begin(up, "/shared/big.bin", "bucket", "big.bin")
        results = await parallel.upload_parts(up, handle, range(1, handle.part_count + 1))
        result = await parallel.complete(up, handle, results)
"""

from ._core.handle import SSE_CUSTOMER_KEY_ENV, ParallelUpload, PartResult
from ._scaleout.manifest import Manifest, Resumed, resume
from ._scaleout.protocol import MissingPartsError, PartsError, abort, begin, complete, upload_parts
from ._scaleout.spread import plan

__all__ = [
    "SSE_CUSTOMER_KEY_ENV",
    "Manifest",
    "MissingPartsError",
    "ParallelUpload",
    "PartResult",
    "PartsError",
    "Resumed",
    "abort",
    "begin",
    "complete",
    "plan",
    "resume",
    "upload_parts",
]
