"""The cluster of gateways on one Redis: membership, the live set, leadership.

Every gateway registers in Redis under its node ID (``--node-id``, or one
assigned from Redis) and renews a lease (``--broker-lease-ms``) several
times per lease; each renewal also answers the live gateways, which this
gateway keeps as its view until the next one, so Metadata costs no Redis
round trip. A gateway stopping cleanly leaves at once; a killed one drops
out when its lease ends.

Every gateway derives the same answers from the same live set: the
controller is the live gateway with the lowest node ID, and a topic's
partitions are dealt round-robin over the live node IDs in order, starting
at a place given by the topic's name (CRC-32, the same in every process),
so one topic's partitions spread over all gateways and different topics
start on different ones. FindCoordinator names the live gateway holding a
group's coordinator lease (coordinator/ownership.py) and, when none does,
the one the CRC-32 of the group ID picks the same way, which takes the lease
on the group's first request.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import zlib

from .context import Broker
from .storage import StorageUnavailable
from .storage.brokers import BrokerRegistration, Endpoint, LeaseResult, RedisBrokerRegistry

log = logging.getLogger(__name__)

# The view is refreshed at least this often (ms), however long the lease:
# a gateway that left shows in others' Metadata for at most about this long.
MAX_REFRESH_MS = 1000


class Cluster:
    """This gateway's lease in the broker registry and its view of the live gateways."""

    def __init__(self, registry: RedisBrokerRegistry, lease_ms: int) -> None:
        self.registry = registry
        self.lease_ms = lease_ms
        # One per start: a restarted gateway is a new instance of its node ID.
        self.instance = uuid.uuid4().hex
        self.me: BrokerRegistration | None = None
        self._live: tuple[BrokerRegistration, ...] = ()
        self._renewing: asyncio.Task[None] | None = None
        self._leaving = False
        self._handing_over = False
        self._unavailable = False

    @property
    def refresh_ms(self) -> int:
        return max(1, min(self.lease_ms // 3, MAX_REFRESH_MS))

    async def join(self, node_id: int | None, endpoints: tuple[Endpoint, ...], rack: str | None) -> int:
        """Register (waiting while another instance holds the node ID); this gateway's node ID."""
        if node_id is None:
            node_id = await self.registry.assign_node_id()
        self.me = BrokerRegistration(node_id, endpoints, rack)
        while not (result := await self._renew_once()).held:
            log.warning("node ID %d is registered by another live gateway; waiting %d ms for its "
                        "lease to end", node_id, result.wait_ms)
            await asyncio.sleep(max(result.wait_ms, self.refresh_ms) / 1000)
        self._renewing = asyncio.create_task(self._renew_forever())
        return node_id

    async def _renew_once(self) -> LeaseResult:
        assert self.me is not None
        result = await self.registry.renew(self.me, self.instance, self.lease_ms)
        self._live = result.live
        return result

    async def _renew_forever(self) -> None:
        while not self._leaving:
            await asyncio.sleep(self.refresh_ms / 1000)
            try:
                result = await self._renew_once()
            except StorageUnavailable as exc:
                # Keep the last view: the others are probably alive too.
                if not self._unavailable:
                    log.warning("cannot renew the broker lease, Redis unavailable: %s", exc)
                self._unavailable = True
                continue
            except Exception:  # keep renewing; the next interval tries again
                log.exception("broker lease renewal failed")
                continue
            if self._unavailable:
                log.info("broker lease renewed again")
            self._unavailable = False
            if not result.held:
                assert self.me is not None
                log.error("node ID %d was taken by another gateway after this one's lease ended "
                          "(paused or cut off from Redis for over %d ms)", self.me.node_id,
                          self.lease_ms)

    async def hand_over(self) -> bool:
        """Leave the registry and, when other gateways are live, lead nothing from now on.

        Kafka's controlled shutdown: leadership moves before the broker goes,
        and the clients still sending to it are told NOT_LEADER_OR_FOLLOWER
        (or NOT_COORDINATOR), which they retry after a metadata refresh,
        rather than meet a closed socket. True when there is someone to hand
        over to; then the caller keeps serving for ``handover_ms``.
        """
        await self.leave()
        self._handing_over = self.me is not None and len(self.members()) > 1
        return self._handing_over

    @property
    def handing_over(self) -> bool:
        """Whether this gateway has left and its partitions and groups are the others' now."""
        return self._handing_over

    @property
    def handover_ms(self) -> int:
        """How long a stopping gateway keeps answering: until every other gateway has renewed
        (and so no longer names it), and then a second for clients to refresh their metadata."""
        return self.refresh_ms + 1000

    async def leave(self) -> None:
        """Stop renewing and leave the registry at once (a clean stop)."""
        # The flag as well as the cancellation: a cancellation that meets
        # redis-py's own timeout inside a renewal can be swallowed (seen: a
        # renewal in flight when shutdown began completed, and the loop went
        # on renewing while leave() waited for it for ever).
        self._leaving = True
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.wait({self._renewing}, timeout=self.lease_ms / 1000)
        if self.me is not None:
            try:
                await self.registry.leave(self.me.node_id, self.instance)
            except StorageUnavailable as exc:
                log.warning("could not leave the broker registry (the lease ends by itself): %s", exc)

    async def close(self) -> None:
        await self.registry.close()

    def members(self) -> tuple[BrokerRegistration, ...]:
        """The live gateways by node ID; this one among them unless it is handing over."""
        assert self.me is not None
        me = self.me
        others = tuple(member for member in self._live if member.node_id != me.node_id)
        if self._handing_over:
            return tuple(sorted(others, key=lambda member: member.node_id))
        return tuple(sorted((*others, me), key=lambda member: member.node_id))

    def brokers(self, asked: Broker) -> tuple[Broker, ...]:
        """The live gateways as the clients of ``asked``'s listener reach them.

        A gateway without that listener is left out, as Kafka leaves out
        brokers without the listener a request came in on.
        """
        return tuple(broker for member in self.members()
                     if (broker := _on_listener(member, asked)) is not None)

    def controller_id(self) -> int:
        return self.members()[0].node_id

    def is_controller(self) -> bool:
        """Whether this gateway runs the cluster's background work (retention, producer expiry)."""
        assert self.me is not None
        return self.controller_id() == self.me.node_id

    def coordinator(self, group: str, asked: Broker, holder: int | None = None) -> Broker | None:
        """The gateway FindCoordinator names for a group (None: it has no such listener)."""
        return _on_listener(self._coordinator(group, holder), asked)

    def coordinates(self, group: str, holder: int | None = None) -> bool:
        """Whether this gateway is the one FindCoordinator names for the group."""
        assert self.me is not None
        return self._coordinator(group, holder).node_id == self.me.node_id

    def _coordinator(self, group: str, holder: int | None) -> BrokerRegistration:
        """``holder``, the node ID holding the group's lease, while it is live, else the preferred one."""
        members = self.members()
        holding = [member for member in members if member.node_id == holder]
        return holding[0] if holding else members[zlib.crc32(group.encode()) % len(members)]

    def leader(self, topic: str, partition: int) -> int:
        """The node ID leading the partition, as every gateway with this view computes it."""
        members = self.members()
        return members[(zlib.crc32(topic.encode()) + partition) % len(members)].node_id


def _on_listener(member: BrokerRegistration, asked: Broker) -> Broker | None:
    for endpoint in member.endpoints:
        if endpoint.listener == asked.listener:
            return Broker(member.node_id, endpoint.host, endpoint.port, asked.cluster_id,
                          member.rack, asked.listener)
    return None
