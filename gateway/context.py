"""What a handler gets besides its request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kafka_redis_gateway.protocol.messages import RequestHeader

from .config import Config
from .security.acls import CLUSTER_NAME, NOT_REQUESTED, SUPPORTED_OPERATIONS, Operation, ResourceType
from .storage import Storage

if TYPE_CHECKING:
    from .cluster import Cluster
    from .coordinator import GroupCoordinator
    from .coordinator.ownership import Ownership
    from .coordinator.share import ShareGroups
    from .dispatch import Router
    from .security.authorizer import Authorizer
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
    # The ACLs, cached from Redis (security/authorizer.py).
    authorizer: Authorizer
    # Share groups (KIP-932): their state in Redis, this gateway's share sessions.
    shares: ShareGroups
    # The transactional IDs this gateway coordinates (leases, coordinator/ownership.py).
    transactions: Ownership

    @property
    def api_version(self) -> int:
        return self.header.api_version

    # -- authorization: every handler asks here, as KafkaApis asks its authHelper --

    @property
    def host(self) -> str:
        """The client's address without its port (what an ACL's host names)."""
        return self.peer.rsplit(":", 1)[0].strip("[]")

    def authorize(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        return self.authorizer.allows(self.session.principal, self.host, operation, resource_type, name)

    def authorize_cluster(self, operation: Operation) -> bool:
        return self.authorize(operation, ResourceType.CLUSTER, CLUSTER_NAME)

    def may_create_topic(self, name: str) -> bool:
        """CREATE on the cluster or on the topic, as Kafka asks before creating one."""
        return (self.authorize_cluster(Operation.CREATE)
                or self.authorize(Operation.CREATE, ResourceType.TOPIC, name))

    def authorize_any(self, operation: Operation, resource_type: ResourceType) -> bool:
        """May the principal do operation on at least one resource of the type (authorizeByResourceType)?"""
        return self.authorizer.allows_any(self.session.principal, self.host, operation, resource_type)

    def authorized_operations(self, resource_type: ResourceType, name: str, requested: bool = True) -> int:
        """Kafka's authorized-operations bit field for the resource; NOT_REQUESTED unless asked."""
        if not requested:
            return NOT_REQUESTED
        bits = 0
        for operation in SUPPORTED_OPERATIONS[resource_type]:
            if self.authorize(operation, resource_type, name):
                bits |= 1 << int(operation)
        return bits
