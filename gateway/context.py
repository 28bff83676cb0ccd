"""What a handler gets besides its request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kafka_redis_gateway.protocol.messages import RequestHeader

from .config import Config
from .storage import Storage

if TYPE_CHECKING:
    from .cluster import Cluster
    from .coordinator import GroupCoordinator
    from .dispatch import Router
    from .security.sasl import Session
    from .storage.credentials import CredentialStore


@dataclass(frozen=True, slots=True)
class Broker:
    """The gateway's identity in the Kafka cluster it presents."""

    node_id: int
    host: str
    port: int
    cluster_id: str
    rack: str | None = None
    # The listener this address is advertised on: clients of a listener are
    # told every broker's address on the same listener, as Kafka does.
    listener: str = "PLAINTEXT"


@dataclass(frozen=True, slots=True)
class RequestContext:
    header: RequestHeader
    config: Config
    storage: Storage
    broker: Broker
    router: Router
    peer: str
    # Consumer groups: membership in memory, offsets in Redis.
    coordinator: GroupCoordinator
    # The live gateways of the cluster and who leads what.
    cluster: Cluster
    # The connection's principal and SASL state (security/sasl.py).
    session: Session
    # SCRAM users, in Redis.
    credentials: CredentialStore

    @property
    def api_version(self) -> int:
        return self.header.api_version
