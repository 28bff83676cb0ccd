"""One budget for the request bytes all connections hold (--max-buffered-request-bytes).

Kafka's ``queued.max.request.bytes``, which Kafka leaves unbounded by
default: without it, a few clients that each announce a 100 MiB frame and
send most of it make the gateway buffer all of them at once.

A connection reserves a frame's announced size after reading its size
prefix and before reading its body, and gives it back once the request is
answered (or the connection ends): read-ahead requests waiting their turn
count too. A frame that does not fit waits, and its connection stops
reading, so TCP holds the client back; it is not closed.

Waiting is first come, first served, so a large frame is not passed over
for ever by a stream of smaller ones; every frame is at most
``--max-request-size``, which the budget must be at least, so the first in
line fits once the bytes before it are given back. They are given back
within bounded time: a partial frame within ``--request-read-timeout-ms``
(its connection is then closed), a request in hand when it is answered.
So that clients sending partial large frames cannot hold up everyone's
small requests for that long, a reserve on top of the budget (1/16 of it,
at most 4 MiB) serves only frames of up to 64 KiB (ApiVersions, Metadata,
heartbeats, fetch requests, small produces), which take it when the budget
is full or others wait in line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from . import metrics

SMALL_FRAME = 64 * 1024
_MAX_RESERVE = 4 * 1024 * 1024


class Grant:
    """Bytes reserved for one frame, given back with ``RequestMemory.release``."""

    __slots__ = ("from_reserve", "size")

    def __init__(self, size: int, from_reserve: bool) -> None:
        self.size = size
        self.from_reserve = from_reserve


class RequestMemory:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # The reserve comes on top of the capacity, so any frame up to the
        # capacity fits the shared part once it is free.
        self._reserve = min(capacity // 16, _MAX_RESERVE)
        self._shared = capacity
        # Bytes granted from the shared part, and from the small frames' reserve.
        self._shared_used = 0
        self._reserve_used = 0
        self._waiting: deque[tuple[int, asyncio.Future[Grant]]] = deque()

    @property
    def used(self) -> int:
        return self._shared_used + self._reserve_used

    def try_acquire(self, size: int) -> Grant | None:
        """The bytes at once, or None when the frame must wait in line."""
        if not self._waiting and self._shared_used + size <= self._shared:
            return self._grant(size, from_reserve=False)
        if size <= SMALL_FRAME and self._reserve_used + size <= self._reserve:
            return self._grant(size, from_reserve=True)
        return None

    async def acquire(self, size: int) -> Grant:
        """Reserve ``size`` bytes (at most the capacity), waiting in line while they do not fit."""
        grant = self.try_acquire(size)
        if grant is not None:
            return grant
        waiter: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        self._waiting.append((size, waiter))
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # granted as the waiter was cancelled
            else:
                with contextlib.suppress(ValueError):  # _serve_waiting may have dropped it
                    self._waiting.remove((size, waiter))
                self._serve_waiting()  # the next in line may fit now
            raise

    def release(self, grant: Grant) -> None:
        if grant.from_reserve:
            self._reserve_used -= grant.size
        else:
            self._shared_used -= grant.size
        metrics.BUFFERED_REQUEST_BYTES.dec(grant.size)
        self._serve_waiting()

    def _grant(self, size: int, from_reserve: bool) -> Grant:
        if from_reserve:
            self._reserve_used += size
        else:
            self._shared_used += size
        metrics.BUFFERED_REQUEST_BYTES.inc(size)
        return Grant(size, from_reserve)

    def _serve_waiting(self) -> None:
        while self._waiting:
            size, waiter = self._waiting[0]
            if waiter.done():  # cancelled; its task has not run its cleanup yet
                self._waiting.popleft()
                continue
            if self._shared_used + size > self._shared:
                small = size <= SMALL_FRAME and self._reserve_used + size <= self._reserve
                if not small:
                    return
                self._waiting.popleft()
                waiter.set_result(self._grant(size, from_reserve=True))
                continue
            self._waiting.popleft()
            waiter.set_result(self._grant(size, from_reserve=False))
