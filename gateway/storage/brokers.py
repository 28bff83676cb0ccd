"""The broker registry on Redis: which gateways are alive, with leases.

Each gateway holds a lease on its node ID (``broker_lease.lua``): a
registration in ``kafka:{brokers}`` and an end time in
``kafka:{brokers}:leases``, both on Redis's clock. Renewing also answers
the live set, so a gateway learns the cluster in the same round trip that
keeps it in it. A gateway stopping cleanly removes itself
(``broker_leave.lua``); a killed one drops out when its lease ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..config import RESERVED_BROKER_MAX_ID
from . import keys
from .errors import call_once, classify
from .redis_cluster import StoreConnections
from .scripts import ScriptCall, function, run_calls

LEASE = function("broker_lease.lua")
LEAVE = function("broker_leave.lua")
# The most live brokers one renewal answers (bounds the reply).
MAX_BROKERS = 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    listener: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    node_id: int
    # One advertised address per listener name.
    endpoints: tuple[Endpoint, ...]
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseResult:
    """A renewal's answer: whether this gateway holds its node ID, and who is alive."""

    held: bool
    # When not held: ms until the other holder's lease ends.
    wait_ms: int
    live: tuple[BrokerRegistration, ...]


def _encode(registration: BrokerRegistration, instance: str) -> str:
    return json.dumps({"node_id": registration.node_id,
                       "endpoints": [[e.listener, e.host, e.port] for e in registration.endpoints],
                       "rack": registration.rack, "instance": instance})


def _decode(raw: Any) -> BrokerRegistration | None:
    try:
        value = json.loads(raw)
        endpoints = tuple(Endpoint(str(name), str(host), int(port))
                          for name, host, port in value["endpoints"])
        return BrokerRegistration(int(value["node_id"]), endpoints,
                                  None if value.get("rack") is None else str(value["rack"]))
    except (ValueError, KeyError, TypeError):
        return None  # not ours to read; a registration is only ever written by _encode


class RedisBrokerRegistry(StoreConnections):
    """Leases on node IDs, on a small connection pool of its own."""

    def __init__(self, url: str, *, timeout: float = 5.0, cluster: bool = False) -> None:
        super().__init__(url, cluster=cluster, max_connections=2, timeout=timeout)

    async def assign_node_id(self) -> int:
        """A node ID no gateway was assigned before (above RESERVED_BROKER_MAX_ID)."""
        counter = await call_once(lambda: self._redis.incr(keys.BROKER_ID_COUNTER))
        return RESERVED_BROKER_MAX_ID + int(counter)

    async def renew(self, registration: BrokerRegistration, instance: str, lease_ms: int) -> LeaseResult:
        call = ScriptCall(LEASE, [keys.BROKER_REGISTRATIONS, keys.BROKER_LEASES],
                          [registration.node_id, instance, _encode(registration, instance),
                           lease_ms, MAX_BROKERS])
        (reply,) = await call_once(lambda: run_calls(self._scripts, [call]))
        if isinstance(reply, Exception):
            raise classify(reply)
        held, wait_ms, *raw = reply
        live = tuple(sorted((r for r in map(_decode, raw) if r is not None), key=lambda r: r.node_id))
        return LeaseResult(bool(held), int(wait_ms), live)

    async def leave(self, node_id: int, instance: str) -> bool:
        call = ScriptCall(LEAVE, [keys.BROKER_REGISTRATIONS, keys.BROKER_LEASES], [node_id, instance])
        (reply,) = await call_once(lambda: run_calls(self._scripts, [call]))
        if isinstance(reply, Exception):
            raise classify(reply)
        return bool(reply)
