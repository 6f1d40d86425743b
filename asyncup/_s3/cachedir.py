"""asyncup's entries in the user's cache directory (``$XDG_CACHE_HOME/asyncup``, else
``~/.cache/asyncup``): botocore's data parsed once (``models``), what a fast start needs
(``start``). Each is in ``marshal``'s format and written atomically; one that cannot be read
is made again, and without a usable directory each is done without.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import tempfile
from typing import Any


def entry(kind: str, about: str, suffix: str) -> str | None:
    """The path of the entry of ``kind`` named for ``about`` (everything its content depends
    on); None when there is no cache directory."""
    root = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(root):  # unset, or relative: ignored, as XDG says
        root = os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(root):  # no home directory either
        return None
    name = hashlib.sha256(about.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(root, "asyncup", kind, f"{name}{suffix}")


def read(path: str) -> Any:
    """The dict kept at ``path``, or None (none yet, not readable as marshal's, or in a
    place someone else could have written: see ``_private``)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as cached:
            folder = os.stat(os.path.dirname(path))
            if not (_private(os.fstat(cached.fileno())) and _private(folder)):
                return None
            data = marshal.load(cached)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _private(stat: os.stat_result) -> bool:
    """Whether a file or folder is the user's own, and no one else may write it: what an
    entry says (a store's endpoint, whether to check its certificate, botocore's models) is
    trusted as the user's own settings would be."""
    owner = os.getuid() if hasattr(os, "getuid") else stat.st_uid
    return stat.st_uid == owner and not stat.st_mode & 0o022


def write(path: str, data: Any) -> None:
    """Atomically (another process may be reading or writing it); failures ignored, and
    nothing written in a folder that is not private (``_private``)."""
    folder = os.path.dirname(path)
    with contextlib.suppress(OSError):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not _private(os.stat(folder)):
            return
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(marshal.dumps(data))
            os.replace(temporary, path)
        except OSError:
            os.unlink(temporary)
            raise
