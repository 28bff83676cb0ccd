"""The group coordinator: Kafka's classic consumer-group protocol in memory.

Membership, generations and rebalances live here (lost on restart, as the
issue allows: members rejoin); committed offsets and the group registry
live in Redis behind :class:`~..storage.group_base.GroupStorage`.
"""

from .coordinator import CoordinatorConfig, GroupCoordinator, JoinRequest, SyncRequest
from .group import Group, GroupState, JoinedMember, JoinResult, Member, SyncResult

__all__ = [
    "CoordinatorConfig",
    "Group",
    "GroupCoordinator",
    "GroupState",
    "JoinRequest",
    "JoinResult",
    "JoinedMember",
    "Member",
    "SyncRequest",
    "SyncResult",
]
