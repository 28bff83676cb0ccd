"""One classic consumer group as the coordinator keeps it in memory.

Plain state and the rules that need no clock: members, static members,
protocol selection. Timers and pending requests are handled by
:mod:`.coordinator`, which owns every change of state.
"""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode

Protocols = tuple[tuple[str, bytes], ...]


class GroupState(enum.Enum):
    # The names are Kafka's: ListGroups, DescribeGroups and the admin tools
    # show and filter by them.
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class JoinedMember:
    """A member as the leader sees it in its JoinGroup response."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[JoinedMember, ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(eq=False, slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    # Set while the member's JoinGroup or SyncGroup request waits for the
    # rebalance to reach the point where it can be answered.
    join_future: asyncio.Future[JoinResult] | None = None
    sync_future: asyncio.Future[SyncResult] | None = None
    # Joined but not yet through a completed join phase: it has no session
    # to expire yet, only the new-member join timeout.
    is_new: bool = False
    expiry: asyncio.TimerHandle | None = None

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def matches(self, protocols: Protocols) -> bool:
        return self.protocols == protocols

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among the candidates."""
        return next(name for name, _ in self.protocols if name in candidates)


@dataclass(eq=False, slots=True)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    previous_state: GroupState = GroupState.EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    # Insertion order matters: a new leader is the longest-standing member.
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance ID -> member ID
    # Member IDs handed out with MEMBER_ID_REQUIRED whose holders have not
    # joined with them yet, each with its expiry.
    pending_members: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    # Members of this generation that have not sent SyncGroup yet.
    pending_sync: set[str] = field(default_factory=set)
    # A member joined during the initial rebalance delay: wait once more.
    new_member_added: bool = False
    join_timer: asyncio.TimerHandle | None = None
    initial_join: bool = False
    sync_timer: asyncio.TimerHandle | None = None

    def is_(self, *states: GroupState) -> bool:
        return self.state in states

    def transition(self, state: GroupState) -> None:
        self.previous_state, self.state = self.state, state

    @property
    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def is_static_member_fenced(self, group_instance_id: str | None, member_id: str) -> bool:
        """The instance ID now belongs to another member ID: this one was replaced."""
        if group_instance_id is None:
            return False
        current = self.static_members.get(group_instance_id)
        return current is not None and current != member_id

    def add(self, member: Member) -> None:
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        if self.leader_id is None:
            self.leader_id = member.member_id

    def remove(self, member: Member) -> None:
        self.members.pop(member.member_id, None)
        if member.group_instance_id is not None and \
                self.static_members.get(member.group_instance_id) == member.member_id:
            del self.static_members[member.group_instance_id]
        self.pending_sync.discard(member.member_id)
        if self.is_leader(member.member_id):
            self.leader_id = next(iter(self.members), None)

    def replace_static_member(self, member: Member, new_member_id: str) -> str:
        """Give a static member a new member ID (a restarted instance); returns the old ID."""
        old_id = member.member_id
        del self.members[old_id]
        member.member_id = new_member_id
        self.members[new_member_id] = member
        assert member.group_instance_id is not None
        self.static_members[member.group_instance_id] = new_member_id
        if self.is_leader(old_id):
            self.leader_id = new_member_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_member_id)
        return old_id

    def elect_leader_among_joined(self) -> bool:
        """Keep a leader that rejoined, otherwise take the first member that did; False if none did."""
        leader = self.members.get(self.leader_id or "")
        if leader is not None and leader.join_future is not None:
            return True
        joined = [m.member_id for m in self.members.values() if m.join_future is not None]
        if joined:
            self.leader_id = joined[0]
        return bool(joined)

    def has_all_members_joined(self) -> bool:
        return not self.pending_members and all(
            m.join_future is not None for m in self.members.values())

    def candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        members = list(self.members.values())
        if not members:
            return set()
        candidates = {name for name, _ in members[0].protocols}
        for member in members[1:]:
            candidates &= {name for name, _ in member.protocols}
        return candidates

    def supports_protocols(self, protocol_type: str, protocols: Protocols) -> bool:
        """Whether a member with these protocols can join (Kafka's rule)."""
        if not self.members:
            return bool(protocol_type) and bool(protocols)
        names = {name for name, _ in protocols}
        return protocol_type == self.protocol_type and bool(names & self.candidate_protocols())

    def select_protocol(self) -> str:
        """The candidate protocol most members prefer (ties: the first member's order)."""
        candidates = self.candidate_protocols()
        votes = Counter(member.vote(candidates) for member in self.members.values())
        first = next(iter(self.members.values()))
        order = [name for name, _ in first.protocols if name in candidates]
        return max(order, key=lambda name: (votes[name], -order.index(name)))

    def joined_members(self) -> tuple[JoinedMember, ...]:
        return tuple(JoinedMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                     for m in self.members.values())
