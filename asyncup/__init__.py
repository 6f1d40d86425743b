"""asyncup: fast, fault-safe concurrent uploads to Amazon S3 from asyncio programs.

    result = await asyncup.upload("big.bin", "my-bucket", "big.bin")

See ``upload``, ``Uploader`` and ``TransferConfig``.

``import asyncup`` loads the pure core only (the configuration, the results, the errors);
the pipeline, and botocore, aiobotocore and aiohttp with it, load on first use of a name
that needs them (``upload``, ``Uploader``...): a program or a command that never uploads
does not pay for them.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._core.config import TransferConfig
from ._core.errors import AsyncupError, IntegrityError, SourceChangedError, UploadError
from ._core.results import UploadResult

if _TYPE_CHECKING:
    from ._pipeline.api import upload
    from ._pipeline.events import UploadEvent, UploadEvents
    from ._pipeline.many import UploadSummary
    from ._pipeline.sweeper import PendingUpload
    from ._pipeline.uploader import Uploader

_ON_FIRST_USE = {
    "upload": "._pipeline.api",
    "UploadEvent": "._pipeline.events",
    "UploadEvents": "._pipeline.events",
    "UploadSummary": "._pipeline.many",
    "PendingUpload": "._pipeline.sweeper",
    "Uploader": "._pipeline.uploader",
}


def __getattr__(name: str) -> _Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'asyncup' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: later uses find it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
