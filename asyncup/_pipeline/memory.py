"""Freed memory given back to the system when an Uploader's part buffers are all returned.

Part buffers are mappings of their own and go back to the system as soon as they are freed.
What stays is glibc malloc's main heap: the chunks a web server reads its clients' bodies
into are allocated and freed on the event loop's thread, and malloc keeps the freed pages
for later (80-90 MiB after a burst of 120 streaming clients through the aiohttp recipe,
measured: benchmarks/RESULTS.md). ``malloc_trim`` returns them; it walks the heap (a few ms
after such a burst), so it runs in a worker thread, and only once enough buffer bytes went
through since the last time. Elsewhere than on glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
from collections.abc import Callable

import anyio
import anyio.to_thread

# Part-buffer bytes handed back to the budget since the last trim before the next one is
# worth its thread hop: a trim after every small object would cost each one ~0.1-0.3 ms.
TRIM_AFTER = 64 * 1024 * 1024


@functools.cache
def trimmer() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where there is no such function."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return functools.partial(trim, 0)


async def give_back() -> None:
    """Return malloc's free heap pages to the system, in a thread (ctypes lets go of the GIL
    for the call), shielded: it takes milliseconds and must not be cut off halfway."""
    trim = trimmer()
    if trim is not None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(trim)
