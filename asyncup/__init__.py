"""asyncup: fast, fault-safe concurrent uploads to Amazon S3 from asyncio programs.

    result = await asyncup.upload("big.bin", "my-bucket", "big.bin")

See ``upload``, ``Uploader`` and ``TransferConfig``.
"""

from ._api import upload
from ._config import TransferConfig
from ._errors import AsyncupError, IntegrityError, SourceChangedError, UploadError
from ._events import UploadEvent, UploadEvents
from ._many import UploadSummary
from ._result import UploadResult
from ._sweeper import PendingUpload
from ._uploader import Uploader

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
