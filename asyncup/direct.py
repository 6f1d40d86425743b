"""Direct uploads: clients without credentials (browsers, mobile apps) send the parts
straight to S3 on presigned URLs; the backend begins, signs, verifies and completes.

The backend never carries the bytes. Example (an endpoint per step; the handle is JSON)::

    async with asyncup.Uploader() as up:
        handle = await direct.begin(up, "bucket", "videos/a.mp4", size,
                                    extra_args={"ContentType": "video/mp4"})
        urls = await direct.sign_parts(up, handle, checksums={1: crc32_of_part_1, ...})
        # the client: PUT each part to its url with exactly its headers; keep each ETag
        result = await direct.complete(up, handle, [{"number": 1, "etag": ..., ...}, ...])

A browser reads the ETag of an answer only if the bucket's CORS rule exposes it
(``cors_configuration``). The protocol: ``asyncup._scaleout.direct``.
"""

from ._core.direct import (
    MAX_EXPIRES_IN,
    DirectUpload,
    PartURL,
    ReportedPart,
    cors_configuration,
)
from ._scaleout.direct import PartsRefusedError, abort, begin, complete, sign_parts

__all__ = [
    "MAX_EXPIRES_IN",
    "DirectUpload",
    "PartURL",
    "PartsRefusedError",
    "ReportedPart",
    "abort",
    "begin",
    "complete",
    "cors_configuration",
    "sign_parts",
]
