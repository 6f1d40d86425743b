"""asyncup: fast, fault-safe concurrent uploads to Amazon S3 from asyncio programs.

    result = await asyncup.upload("big.bin", "my-bucket", "big.bin")

See ``upload``, ``Uploader`` and ``TransferConfig``.
"""

from ._core.config import TransferConfig
from ._core.errors import AsyncupError, IntegrityError, SourceChangedError, UploadError
from ._core.results import UploadResult
from ._pipeline.api import upload
from ._pipeline.events import UploadEvent, UploadEvents
from ._pipeline.many import UploadSummary
from ._pipeline.sweeper import PendingUpload
from ._pipeline.uploader import Uploader

__all__ = [
    "AsyncupError",
    "IntegrityError",
    "PendingUpload",
    "SourceChangedError",
    "TransferConfig",
    "UploadError",
    "UploadEvent",
    "UploadEvents",
    "UploadResult",
    "UploadSummary",
    "Uploader",
    "upload",
]
