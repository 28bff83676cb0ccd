"""Kafka ACLs in Redis, so every gateway on the Redis enforces the same ones.

Two keys under one hash tag (one slot on a Redis Cluster, so a change is
one MULTI): ``kafka:{acls}``, a hash whose fields are the bindings
(AclBinding.encode) and whose values are empty, and
``kafka:{acls}:version``, a counter every change increments in the same
MULTI. Gateways keep the whole set in memory and ask only for the version
(one GET per --acl-refresh-ms), reading the set again when it moved; the
snapshot is read with GET and HGETALL in one MULTI, so it always matches
its version. The set is capped at MAX_ACLS bindings, so that read stays
bounded (about 10 ms at the cap).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..security.acls import AclBinding, AclSet
from .errors import call_once
from .redis_cluster import redis_client

ACLS = "kafka:{acls}"
ACLS_VERSION = "kafka:{acls}:version"
# Bindings the cluster may hold; CreateAcls beyond it is refused.
MAX_ACLS = 100_000


class TooManyAcls(Exception):
    """Creating these would hold more than MAX_ACLS bindings."""


class AclStore(Protocol):
    async def version(self) -> int: ...

    async def load(self) -> AclSet: ...

    async def create(self, bindings: Sequence[AclBinding]) -> None: ...

    async def delete(self, bindings: Sequence[AclBinding]) -> list[bool]:
        """Remove the bindings; for each, whether it was there (so removed by this call)."""
        ...

    async def close(self) -> None: ...


class RedisAclStore:
    """Implements :class:`AclStore`, on a small connection pool of its own."""

    def __init__(self, url: str, *, timeout: float = 5.0, max_connections: int = 2,
                 cluster: bool = False) -> None:
        self._redis = redis_client(url, cluster=cluster, max_connections=max_connections,
                                   timeout=timeout)

    async def close(self) -> None:
        await self._redis.aclose()

    async def version(self) -> int:
        raw = await call_once(lambda: self._redis.get(ACLS_VERSION))
        return int(raw or 0)

    async def load(self) -> AclSet:
        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(ACLS_VERSION)
                pipe.hgetall(ACLS)
                return await pipe.execute()  # type: ignore[no-any-return]
        raw_version, fields = await call_once(read)
        return AclSet.of(int(raw_version or 0), (AclBinding.decode(name) for name in fields))

    async def create(self, bindings: Sequence[AclBinding]) -> None:
        if not bindings:
            return
        # Checked before the MULTI: gateways creating at the same instant may
        # pass the cap by what one request holds, never by more.
        held = await call_once(lambda: self._redis.hlen(ACLS))  # type: ignore[misc]
        if held + len(bindings) > MAX_ACLS:
            raise TooManyAcls(f"the cluster holds {held} ACLs; at most {MAX_ACLS}")

        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(ACLS, mapping={binding.encode(): "" for binding in bindings})
                pipe.incr(ACLS_VERSION)
                await pipe.execute()
        await call_once(write)

    async def delete(self, bindings: Sequence[AclBinding]) -> list[bool]:
        if not bindings:
            return []

        async def write() -> list[Any]:
            async with self._redis.pipeline(transaction=True) as pipe:
                for binding in bindings:
                    pipe.hdel(ACLS, binding.encode())
                pipe.incr(ACLS_VERSION)
                return await pipe.execute()  # type: ignore[no-any-return]
        replies = await call_once(write)
        return [bool(removed) for removed in replies[:-1]]
