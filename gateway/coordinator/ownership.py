"""Coordinator ownership: which gateway coordinates a key (a group; later a
transactional ID or a share group), as a lease in Redis with a fencing token.

A gateway takes a key's lease on the key's first request when no other
gateway's lease runs (``storage/leases.py``), and renews every lease it
holds every third of the lease (at most every second), in pipelined batches.
Ownership is sticky: a gateway joining the cluster takes no lease from
another, so groups do not move (and rebalance) when the cluster grows; a
lease moves only when its holder stops (it releases its leases), dies or is
cut off from Redis (the lease ends), or drops an idle key.

Each lease carries a fencing token, which rises whenever the lease changes
holder; the writes of the state the lease guards carry the token, and Redis
refuses a token lower than the latest (``save_membership.lua``,
``commit_offset.lua``). So a gateway paused past its lease cannot write
after another took the key over, whatever it still believes.

This gateway also keeps each lease's end on its own monotonic clock, counted
from when the renewal was sent (so never later than Redis's): past it, the
lease is taken as lost before any request is served (the owner's ``lost``
callback drops what it held of the key), and the key must be acquired again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..logs import printable
from ..storage.base import StorageUnavailable
from ..storage.leases import Acquired, HeldLease, Holder, RedisLeaseStore

log = logging.getLogger(__name__)

# Renewals at least this often (ms), however long the lease.
MAX_REFRESH_MS = 1000
# A key unused this long (s) and not kept by its owner (a group not in
# memory) is released rather than renewed for ever.
IDLE_RELEASE_S = 30.0


@dataclass(slots=True)
class _Lease:
    token: int
    # time.monotonic() past which the lease is taken as lost.
    deadline: float
    used: float


class Ownership:
    """This gateway's leases on the keys of one kind of coordinator."""

    def __init__(self, store: RedisLeaseStore, key_of: Callable[[str], str], lease_ms: int) -> None:
        self.store = store
        # The Redis hash holding a key's lease (beside the state it guards).
        self._key_of = key_of
        self.lease_ms = lease_ms
        self._holder: Holder | None = None
        self._held: dict[str, _Lease] = {}
        # One acquisition per key at a time: requests that arrive meanwhile
        # wait for it and go on in their order of arrival (the first to join
        # a group leads it).
        self._acquiring: dict[str, asyncio.Task[int | None]] = {}
        # Called with a key whose lease this gateway lost.
        self.lost: Callable[[str], None] = lambda key: None
        # Whether a key is still in use by the owner (not released when idle).
        self.keep: Callable[[str], bool] = lambda key: False
        self._renewing: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def refresh_ms(self) -> int:
        return max(1, min(self.lease_ms // 3, MAX_REFRESH_MS))

    def start(self, holder: Holder) -> None:
        """Take leases as ``holder`` (this gateway's node ID and instance) from now on."""
        self._holder = holder
        self._renewing = asyncio.create_task(self._renew_forever())

    def token(self, key: str) -> int | None:
        """The fencing token while this gateway holds the key's lease, else None."""
        lease = self._held.get(key)
        if lease is None or self._stopping:
            return None
        now = time.monotonic()
        if now >= lease.deadline:
            log.warning("lease on %s ended before it was renewed (paused or cut off from Redis)",
                        printable(key))
            self._lose(key)
            return None
        lease.used = now
        return lease.token

    def fence_token(self, key: str) -> int:
        """The token a write of the key's state carries: Redis decides whether it is still
        the latest. -1 when this gateway holds no lease on the key: below every token,
        even none (0), so a gateway that does not coordinate a group never writes it
        (one that loaded it for DescribeGroups and saw its members' sessions end)."""
        lease = self._held.get(key)
        return -1 if lease is None else lease.token

    async def acquire(self, key: str) -> int | None:
        """Take the key's lease unless another gateway's runs: its token, or None.

        Raises StorageUnavailable when Redis cannot be asked.
        """
        if self._stopping or self._holder is None:
            return None
        task = self._acquiring.get(key)
        if task is None:
            task = self._acquiring[key] = asyncio.ensure_future(self._acquire(key, self._holder))
            task.add_done_callback(lambda _: self._acquiring.pop(key, None))
        # Shielded: one waiter's cancellation (its connection closed) leaves the others theirs.
        return await asyncio.shield(task)

    async def _acquire(self, key: str, holder: Holder) -> int | None:
        sent = time.monotonic()
        result = await self.store.acquire(self._key_of(key), holder, self.lease_ms)
        if not isinstance(result, Acquired) or self._stopping:
            return None
        held = self._held.get(key)
        if held is None or held.token != result.token:
            self._held[key] = _Lease(result.token, sent + self.lease_ms / 1000, sent)
            log.info("coordinating %s (fencing token %d)", printable(key), result.token)
        return result.token

    async def holders(self, keys: Sequence[str]) -> list[int | None]:
        """The node ID that last took each key's lease and has not released it, else None."""
        return await self.store.holders([self._key_of(key) for key in keys])

    def _lose(self, key: str) -> None:
        if self._held.pop(key, None) is not None:
            self.lost(key)

    async def _renew_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.refresh_ms / 1000)
            try:
                await self.renew_once()
            except StorageUnavailable as exc:
                # Leases whose end passes meanwhile are lost on their next use.
                log.warning("cannot renew coordinator leases, Redis unavailable: %s", exc)
            except Exception:  # keep renewing; the next interval tries again
                log.exception("coordinator lease renewal failed")

    async def renew_once(self) -> None:
        """Renew every lease held (releasing idle ones); lose those another took."""
        assert self._holder is not None
        now = time.monotonic()
        idle = [key for key, lease in self._held.items()
                if now - lease.used > IDLE_RELEASE_S and not self.keep(key)]
        if idle:
            for key in idle:
                del self._held[key]
            await self.store.release([self._key_of(key) for key in idle], self._holder)
        leases = list(self._held.items())
        if not leases:
            return
        sent = time.monotonic()
        renewed = await self.store.renew([HeldLease(self._key_of(key), lease.token) for key, lease in leases],
                                         self._holder, self.lease_ms)
        for (key, lease), still_held in zip(leases, renewed, strict=True):
            if self._held.get(key) is not lease:
                continue  # lost and taken again meanwhile: the newer lease stands
            if still_held:
                lease.deadline = sent + self.lease_ms / 1000
            else:
                log.warning("lease on %s taken by another gateway (token %d superseded)",
                            printable(key), lease.token)
                self._lose(key)

    async def stop(self) -> None:
        """Stop renewing and release every lease (a clean stop): others take them at once.

        No request is served for a key after this, but writes already under
        way (a last LeaveGroup's Empty store) keep their tokens: they land
        unless another gateway took the key meanwhile.
        """
        self._stopping = True
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.wait({self._renewing}, timeout=self.lease_ms / 1000)
        keys = list(self._held)
        if keys and self._holder is not None:
            try:
                await self.store.release([self._key_of(key) for key in keys], self._holder)
            except StorageUnavailable as exc:
                log.warning("could not release coordinator leases (they end by themselves): %s", exc)
