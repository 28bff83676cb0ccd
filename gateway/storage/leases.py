"""Coordinators' leases on Redis: one holder per key, with a fencing token.

A lease lives in fields ``lease:*`` of the hash that holds the state it
guards (for a group, ``kafka:group:<group>``), so the scripts that write
that state check the token in the same Redis Cluster slot. The fencing token
rises each time the lease passes to another holder and is never reused, even
after the lease ends or is released (``lua/lease_acquire.lua``). Renewals and
releases of many keys go in pipelined batches of at most ``BATCH`` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import call_once, classify
from .redis_cluster import StoreConnections
from .scripts import ScriptCall, function, run_calls

ACQUIRE = function("lease_acquire.lua")
RENEW = function("lease_renew.lua")
RELEASE = function("lease_release.lua")
# The most calls one pipeline carries: a gateway may hold thousands of leases.
BATCH = 500


@dataclass(frozen=True, slots=True)
class Holder:
    """Who takes or holds leases: a gateway's node ID and its instance (one per start)."""

    node_id: int
    instance: str


@dataclass(frozen=True, slots=True)
class Acquired:
    """The lease is this holder's, with this fencing token."""

    token: int


@dataclass(frozen=True, slots=True)
class HeldElsewhere:
    """Another holder's lease runs for ``wait_ms`` more."""

    node_id: int
    wait_ms: int


@dataclass(frozen=True, slots=True)
class HeldLease:
    key: str
    token: int


class RedisLeaseStore(StoreConnections):
    """Acquire, renew, release and look up leases, on a small connection pool of its own."""

    def __init__(self, url: str, *, timeout: float = 5.0, cluster: bool = False) -> None:
        super().__init__(url, cluster=cluster, max_connections=2, timeout=timeout)

    async def acquire(self, key: str, holder: Holder, lease_ms: int) -> Acquired | HeldElsewhere:
        (reply,) = await self._run([ScriptCall(ACQUIRE, [key], [holder.node_id, holder.instance, lease_ms])])
        if reply[0] == 1:
            return Acquired(int(reply[1]))
        return HeldElsewhere(int(reply[1]), int(reply[2]))

    async def renew(self, leases: Sequence[HeldLease], holder: Holder, lease_ms: int) -> list[bool]:
        """Whether each lease is still this holder's (and now runs ``lease_ms`` more)."""
        replies = await self._batched([
            ScriptCall(RENEW, [lease.key], [holder.instance, lease.token, lease_ms]) for lease in leases])
        return [reply == 1 for reply in replies]

    async def release(self, keys: Sequence[str], holder: Holder) -> None:
        await self._batched([ScriptCall(RELEASE, [key], [holder.instance]) for key in keys])

    async def holders(self, keys: Sequence[str]) -> list[int | None]:
        """Each key's last holder's node ID, None when released or never taken.

        Its lease may have ended: callers name the holder only while it is a
        live gateway (it then keeps its token when asked again). Plain reads,
        no function: FindCoordinator keeps answering while Redis cannot load
        the function library (writes paused, as in a stall).
        """
        nodes: list[int | None] = []
        for start in range(0, len(keys), BATCH):
            replies = await call_once(lambda: self._hgets(keys[start:start + BATCH], "lease:node"))  # noqa: B023
            nodes.extend(None if reply is None else int(reply) for reply in replies)
        return nodes

    async def _hgets(self, keys: Sequence[str], field: str) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, field)
        return list(await pipe.execute())

    async def _batched(self, calls: Sequence[ScriptCall]) -> list[Any]:
        replies: list[Any] = []
        for start in range(0, len(calls), BATCH):
            replies.extend(await self._run(calls[start:start + BATCH]))
        return replies

    async def _run(self, calls: Sequence[ScriptCall]) -> list[Any]:
        replies = await call_once(lambda: run_calls(self._scripts, calls))
        for reply in replies:
            if isinstance(reply, Exception):
                raise classify(reply)
        return replies
