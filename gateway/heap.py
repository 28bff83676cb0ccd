"""Giving memory back to the operating system after a crowd of connections leaves.

Measured (docs/operations.md): 9,000 connections took a gateway from 66 to
233 MiB RSS, and after they closed it stayed at 177 MiB although every
Python object they used was freed. glibc's malloc keeps freed heap pages
(socket buffers, StreamReader buffers, libuv handles) for reuse and returns
them only from the top of the heap; ``malloc_trim`` returns every free page.
What remains after it is CPython's own allocator holding arenas that a few
long-lived objects keep partly used, which the gateway cannot release.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from collections.abc import Callable

# Trim once the open connections have fallen to half their peak and by at
# least this many: a handful of trims for any crowd, never one per close.
MIN_DROP = 256
TRIM_DELAY = 1.0


def _malloc_trim() -> Callable[[], None] | None:
    """glibc's malloc_trim(0), or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class HeapTrimmer:
    """Calls malloc_trim when many connections have closed since the peak."""

    def __init__(self) -> None:
        self._trim = _malloc_trim()
        self._peak = 0
        self._scheduled: asyncio.TimerHandle | None = None

    def opened(self, open_now: int) -> None:
        self._peak = max(self._peak, open_now)

    def closed(self, open_now: int) -> None:
        if self._trim is None:
            return
        if self._peak - open_now >= MIN_DROP and open_now <= self._peak // 2:
            self._peak = open_now
            if self._scheduled is None:
                # A moment later: the closed transports' buffers and libuv
                # handles are freed in callbacks after the connection ends.
                self._scheduled = asyncio.get_running_loop().call_later(TRIM_DELAY, self._run)

    def _run(self) -> None:
        self._scheduled = None
        assert self._trim is not None
        # Closed connections leave reference cycles (cancelled tasks and
        # their exceptions) that only the cyclic GC frees; collect them
        # first so their memory is free when trimmed. Both are bounded:
        # the startup heap is frozen (server.py), and the trim walks
        # glibc's free lists once.
        gc.collect()
        self._trim()

    def cancel(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
