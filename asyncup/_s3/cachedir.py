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
    """The dict kept at ``path``, or None (none yet, or not readable as marshal's)."""
    try:
        with open(path, "rb") as cached:
            data = marshal.load(cached)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def write(path: str, data: Any) -> None:
    """Atomically (another process may be reading or writing it); failures ignored."""
    folder = os.path.dirname(path)
    with contextlib.suppress(OSError):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(marshal.dumps(data))
            os.replace(temporary, path)
        except OSError:
            os.unlink(temporary)
            raise
