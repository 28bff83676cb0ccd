"""The gateway's authorizer: the ACLs of Redis cached in memory, and the decisions made on them.

A decision costs no Redis round trip: it reads the snapshot in memory. The
snapshot follows Redis by its version counter (storage/acls.py): every
--acl-refresh-ms the gateway reads the version and, when it moved, the set.
A change made through this gateway is read back at once; one made through
another gateway is enforced here within --acl-refresh-ms (plus one Redis
round trip). While Redis cannot be asked the last snapshot stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from ..storage import StorageUnavailable
from ..storage.acls import AclStore
from .acls import (
    EMPTY,
    AclBinding,
    AclSet,
    Operation,
    Policy,
    ResourceType,
    decide,
    decide_any,
)

log = logging.getLogger(__name__)


class Authorizer:
    def __init__(self, policy: Policy, store: AclStore, refresh_ms: int) -> None:
        self.policy = policy
        self.store = store
        self.acls: AclSet = EMPTY
        self._refresh_s = refresh_ms / 1000
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    async def start(self) -> None:
        """Read the ACLs before the first connection, then follow them."""
        if not self.enabled:
            return
        while True:
            try:
                self.acls = await self.store.load()
                break
            except StorageUnavailable as exc:
                log.warning("waiting for Redis to read the ACLs: %s", exc)
                await asyncio.sleep(1.0)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.store.close()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except StorageUnavailable as exc:
                log.warning("ACLs not refreshed (the last ones read stay in force): %s", exc)

    async def refresh(self) -> None:
        """Read the ACLs again if their version moved."""
        if await self.store.version() != self.acls.version:
            self.acls = await self.store.load()

    async def create(self, bindings: Sequence[AclBinding]) -> None:
        await self.store.create(bindings)
        await self._read_back()

    async def delete(self, bindings: Sequence[AclBinding]) -> list[bool]:
        removed = await self.store.delete(bindings)
        await self._read_back()
        return removed

    async def _read_back(self) -> None:
        """Enforce a change made here at once; if Redis cannot say now, the next refresh will."""
        try:
            self.acls = await self.store.load()
        except StorageUnavailable as exc:
            log.warning("ACLs changed but not read back (the next refresh will): %s", exc)

    def allows(self, principal: str, host: str, operation: Operation, resource_type: ResourceType,
               name: str) -> bool:
        return decide(self.policy, self.acls, principal, host, operation, resource_type, name)

    def allows_any(self, principal: str, host: str, operation: Operation,
                   resource_type: ResourceType) -> bool:
        return decide_any(self.policy, self.acls, principal, host, operation, resource_type)
