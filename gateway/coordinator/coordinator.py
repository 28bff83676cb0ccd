"""The group coordinator: Kafka's classic group protocol, in the gateway's memory.

A group moves Empty -> PreparingRebalance -> CompletingRebalance -> Stable
and back to PreparingRebalance whenever a member comes, goes, dies or
changes its subscription; Dead once deleted. The rules follow Kafka's
classic group coordinator (``GroupMetadataManager``), error codes included:

- JoinGroup parks each request on a future until every known member has
  rejoined (or the rebalance timeout drops those that did not); then the
  generation advances, the protocol most members prefer among those all
  support is chosen, and the leader receives every member's metadata.
- SyncGroup parks followers until the leader sends the assignment, which is
  relayed to each member; members that never sync within the rebalance
  timeout are removed and the group rebalances again.
- Sessions expire on asyncio timers, rescheduled by every heartbeat, sync
  and commit: a member that dies without LeaveGroup is removed after its
  session timeout and the others are asked to rejoin.
- A group that starts empty waits ``initial_rebalance_delay_ms`` (extended
  while members keep arriving, up to the rebalance timeout) so that members
  starting together settle in one generation.
- Static members (group.instance.id) keep their place across restarts: a
  rejoin with the same instance ID and an unknown member ID replaces the old
  member ID, without a rebalance when the protocols are unchanged; the old
  ID is FENCED_INSTANCE_ID from then on.

- Membership is stored in Redis whenever a generation becomes Stable (before
  the members get their assignments) or the group becomes Empty, as Kafka
  stores group metadata in ``__consumer_offsets``; a group this gateway does
  not hold in memory is loaded from there on first use (:mod:`.membership`).
  After a gateway restart members therefore carry on with their generation,
  heartbeats and commits, without a rebalance, and their sessions start
  again. Committed offsets are in Redis too
  (:class:`~..storage.group_base.GroupStorage`).
- With several gateways on one Redis, a gateway coordinates a group while it
  holds the group's lease (:mod:`.ownership`), taken on the group's first
  request here; the others answer NOT_COORDINATOR. Membership stores and
  offset commits carry the lease's fencing token, so a gateway that lost
  the lease (paused past it) cannot write the group any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from ..logs import printable
from ..storage.base import StorageUnavailable
from ..storage.group_base import Fenced, GroupStorage
from . import membership
from .consumer_protocol import CONSUMER_PROTOCOL_TYPE, MalformedSubscription, subscribed_topics
from .group import Group, GroupState, JoinResult, Member, Protocols, SyncResult
from .ownership import Ownership

log = logging.getLogger(__name__)

# Group IDs known to have no stored membership are remembered so that
# offsets-only consumers (assign() and commit) cost no extra Redis read per
# commit; the set is dropped when it grows past this.
MAX_REMEMBERED_ABSENT = 100_000

EMPTY = GroupState.EMPTY
PREPARING = GroupState.PREPARING_REBALANCE
COMPLETING = GroupState.COMPLETING_REBALANCE
STABLE = GroupState.STABLE
DEAD = GroupState.DEAD


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    # Kafka's group.initial.rebalance.delay.ms, group.min.session.timeout.ms,
    # group.max.session.timeout.ms and its fixed new-member join timeout.
    initial_rebalance_delay_ms: int = 3000
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    new_member_join_timeout_ms: int = 300_000


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    # JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED and its ID.
    require_known_member_id: bool
    # JoinGroup v9+: a static leader rejoining a stable group is told to
    # skip the assignment rather than be demoted for the round.
    supports_skip_assignment: bool


@dataclass(frozen=True, slots=True)
class SyncRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None
    protocol_type: str | None
    protocol_name: str | None
    assignments: tuple[tuple[str, bytes], ...]


JoinOutcome = JoinResult | asyncio.Future[JoinResult]


def _resolve(future: asyncio.Future[JoinResult] | asyncio.Future[SyncResult] | None,
             result: JoinResult | SyncResult) -> None:
    # The waiting request may be gone (its connection closed and the task
    # was cancelled with its future).
    if future is not None and not future.done():
        future.set_result(result)  # type: ignore[arg-type]


class _Turns:
    """One turn at a time per group, in order of arrival (asyncio.Lock is first come, first served)."""

    def __init__(self) -> None:
        # group -> its lock and how many requests hold or wait for it
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, group_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(group_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[group_id]


class GroupCoordinator:
    def __init__(self, storage: GroupStorage, config: CoordinatorConfig | None = None,
                 ownership: Ownership | None = None) -> None:
        self.storage = storage
        self.config = config or CoordinatorConfig()
        # Which groups this gateway coordinates (several gateways on one
        # Redis); without it, this one coordinates every group, unfenced.
        self.ownership = ownership
        if ownership is not None:
            ownership.lost = self._lost
            ownership.keep = lambda group_id: group_id in self._groups
        self._groups: dict[str, Group] = {}
        self._arrivals = _Turns()
        self._absent: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    async def loaded(self, group_id: str) -> Group | None:
        """The group from memory, or else from its stored membership; None when neither.

        Raises StorageUnavailable when it has to ask Redis and Redis is away.
        """
        group = self._groups.get(group_id)
        if group is not None or group_id in self._absent:
            return group
        raw = await self.storage.load_membership(group_id)
        group = self._groups.get(group_id)
        if group is not None:
            return group  # another request loaded or created it while Redis answered
        if raw is None:
            if len(self._absent) >= MAX_REMEMBERED_ABSENT:
                self._absent.clear()
            self._absent.add(group_id)
            return None
        try:
            group = membership.decode(group_id, raw)
        except membership.UnreadableMembership as exc:
            log.error("group %s: stored membership unreadable (%s); starting the group afresh",
                      printable(group_id), exc)
            return None
        self._groups[group_id] = group
        for member in group.members.values():
            # Sessions start again: members that are gone expire as usual.
            self._expire_after(group, member, member.session_timeout_ms)
        log.info("group %s: loaded generation %d (%s, %d member(s)) from Redis", printable(group_id),
                 group.generation, group.state.value, len(group.members))
        return group

    def groups(self) -> list[Group]:
        return list(self._groups.values())

    async def _ownership_error(self, group_id: str) -> ErrorCode | None:
        """None while this gateway coordinates the group, taking its lease if no other
        gateway holds it; else NOT_COORDINATOR (COORDINATOR_NOT_AVAILABLE when Redis is away)."""
        ownership = self.ownership
        if ownership is None or ownership.token(group_id) is not None:
            return None
        # Whatever is in memory dates from before this gateway last held the
        # lease (or was loaded without it): the stored state is the truth.
        self._forget(group_id, "not coordinated here")
        try:
            token = await ownership.acquire(group_id)
        except StorageUnavailable:
            return ErrorCode.coordinator_not_available
        return ErrorCode.not_coordinator if token is None else None

    def _lost(self, group_id: str) -> None:
        """The group's lease is gone: another gateway coordinates it now."""
        self._forget(group_id, "its coordinator lease was lost")

    def _forget(self, group_id: str, why: str) -> None:
        """Drop what this gateway holds of a group, so it loads the stored state if the group comes back."""
        self._absent.discard(group_id)
        group = self._groups.pop(group_id, None)
        if group is not None:
            log.info("group %s: dropped from memory (%s)", printable(group_id), why)
            self._drop(group)

    def fence_token(self, group_id: str) -> int | None:
        """The fencing token this gateway's writes of the group carry (None: unfenced)."""
        return None if self.ownership is None else self.ownership.fence_token(group_id)

    async def holders(self, group_ids: Sequence[str]) -> list[int | None]:
        """The node ID holding each group's lease, else None (StorageUnavailable when Redis is away)."""
        if self.ownership is None:
            return [None] * len(group_ids)
        return await self.ownership.holders(group_ids)

    def _drop(self, group: Group) -> None:
        """Cancel a group's timers and answer its parked requests with NOT_COORDINATOR."""
        for timer in (group.join_timer, group.sync_timer, *group.pending_members.values()):
            self._cancel(timer)
        for member in group.members.values():
            self._cancel(member.expiry)
            _resolve(member.join_future, JoinResult(ErrorCode.not_coordinator, member.member_id))
            _resolve(member.sync_future, SyncResult(ErrorCode.not_coordinator))

    # -- JoinGroup ------------------------------------------------------------------

    async def join(self, request: JoinRequest) -> JoinResult:
        if not request.group_id:
            return JoinResult(ErrorCode.invalid_group_id, request.member_id)
        if not (self.config.min_session_timeout_ms <= request.session_timeout_ms
                <= self.config.max_session_timeout_ms):
            return JoinResult(ErrorCode.invalid_session_timeout, request.member_id)
        # Joins reach the group in their order of arrival, whatever Redis
        # round trips come first (the first member to join leads).
        async with self._arrivals.turn(request.group_id):
            if (error := await self._ownership_error(request.group_id)) is not None:
                return JoinResult(error, request.member_id)
            try:
                # A group cannot commit or be found again while Redis is away.
                await self.storage.ping()
                await self.loaded(request.group_id)
            except StorageUnavailable:
                return JoinResult(ErrorCode.coordinator_not_available, request.member_id)
            outcome = self._join(request)
        if isinstance(outcome, JoinResult):
            return outcome
        return await outcome

    def _join(self, request: JoinRequest) -> JoinOutcome:
        group = self._groups.get(request.group_id)
        if not request.member_id:
            if group is None:
                group = self._groups[request.group_id] = Group(request.group_id)
            return self._join_unknown_member(group, request)
        if group is None:
            return JoinResult(ErrorCode.unknown_member_id, request.member_id)
        return self._join_known_member(group, request)

    def _join_unknown_member(self, group: Group, request: JoinRequest) -> JoinOutcome:
        if group.is_(DEAD):
            return JoinResult(ErrorCode.coordinator_not_available)
        if not group.supports_protocols(request.protocol_type, request.protocols):
            return JoinResult(ErrorCode.inconsistent_group_protocol)
        member_id = f"{request.group_instance_id or request.client_id}-{uuid.uuid4()}"
        if request.group_instance_id is not None:
            existing = group.static_members.get(request.group_instance_id)
            if existing is not None:
                return self._replace_static_member(group, group.members[existing], member_id, request)
            return self._add_member(group, member_id, request)
        if request.require_known_member_id:
            # KIP-394: the member must come back with this ID, so that a
            # client retrying a timed-out join does not leave a ghost member.
            group.pending_members[member_id] = self._later(
                request.session_timeout_ms, self._expire_pending_member, group, member_id)
            return JoinResult(ErrorCode.member_id_required, member_id)
        return self._add_member(group, member_id, request)

    def _join_known_member(self, group: Group, request: JoinRequest) -> JoinOutcome:
        member_id = request.member_id
        if group.is_(DEAD):
            return JoinResult(ErrorCode.coordinator_not_available, member_id)
        if not group.supports_protocols(request.protocol_type, request.protocols):
            return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)
        if member_id in group.pending_members:
            group.pending_members.pop(member_id).cancel()
            return self._add_member(group, member_id, request)
        if group.is_static_member_fenced(request.group_instance_id, member_id):
            return JoinResult(ErrorCode.fenced_instance_id, member_id)
        member = group.members.get(member_id)
        if member is None or group.is_(EMPTY):
            return JoinResult(ErrorCode.unknown_member_id, member_id)
        if group.is_(COMPLETING) and member.matches(request.protocols):
            # A retried join: answer with the generation already formed.
            return self._join_result(group, member)
        if group.is_(STABLE) and member.matches(request.protocols) and not group.is_leader(member_id):
            # Nothing changed for a follower: no rebalance (Kafka does the same).
            return JoinResult(ErrorCode.none, member_id, group.generation, group.protocol_type,
                              group.protocol_name, group.leader_id or "")
        return self._update_member(group, member, request)

    def _add_member(self, group: Group, member_id: str, request: JoinRequest) -> JoinOutcome:
        member = Member(member_id, request.group_instance_id, request.client_id, request.client_host,
                        request.session_timeout_ms, request.rebalance_timeout_ms,
                        request.protocol_type, request.protocols, is_new=True)
        if group.is_(PREPARING) and group.initial_join:
            group.new_member_added = True
        group.add(member)
        future = member.join_future = asyncio.get_running_loop().create_future()
        # A new member cannot heartbeat before its first join completes, so
        # it gets the (long) new-member join timeout instead of its session.
        self._expire_after(group, member, self.config.new_member_join_timeout_ms)
        self._rebalance_or_complete_join(group)
        return future

    def _update_member(self, group: Group, member: Member, request: JoinRequest) -> JoinOutcome:
        member.protocols = request.protocols
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        _resolve(member.join_future, JoinResult(ErrorCode.rebalance_in_progress, member.member_id))
        future = member.join_future = asyncio.get_running_loop().create_future()
        self._rebalance_or_complete_join(group)
        return future

    def _replace_static_member(self, group: Group, member: Member, new_member_id: str,
                               request: JoinRequest) -> JoinOutcome:
        """A static member restarted: the new member ID takes the old one's place."""
        old_leader = group.leader_id or ""
        old_protocols = member.protocols
        old_member_id = group.replace_static_member(member, new_member_id)
        _resolve(member.join_future, JoinResult(ErrorCode.fenced_instance_id, old_member_id))
        _resolve(member.sync_future, SyncResult(ErrorCode.fenced_instance_id))
        member.join_future = member.sync_future = None
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.protocols = request.protocols
        self._expire_after(group, member, member.session_timeout_ms)
        log.info("group %s: static member %s replaced member %s by %s", printable(group.group_id),
                 printable(member.group_instance_id), printable(old_member_id), printable(new_member_id))
        if group.is_(STABLE) and group.select_protocol() == group.protocol_name \
                and old_protocols == request.protocols:
            self._store_in_background(group)  # the stored generation names the new member ID
            return self._rejoined_stable_static_member(group, member, old_leader, request)
        future = member.join_future = asyncio.get_running_loop().create_future()
        if group.is_(PREPARING):
            self._try_complete_join(group)
        else:
            # In CompletingRebalance the leader may be assigning to the old
            # member ID: start over, as Kafka does.
            self._prepare_rebalance(group)
        return future

    def _rejoined_stable_static_member(self, group: Group, member: Member, old_leader: str,
                                       request: JoinRequest) -> JoinResult:
        is_leader = group.is_leader(member.member_id)
        if request.supports_skip_assignment:
            return JoinResult(ErrorCode.none, member.member_id, group.generation, group.protocol_type,
                              group.protocol_name, group.leader_id or "",
                              group.joined_members() if is_leader else (), skip_assignment=is_leader)
        # Before v9 a leader would reassign with an empty view; it is told
        # the old leader ID, so it acts as a follower and syncs its assignment.
        return JoinResult(ErrorCode.none, member.member_id, group.generation, group.protocol_type,
                          group.protocol_name, old_leader)

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        is_leader = group.is_leader(member.member_id)
        return JoinResult(ErrorCode.none, member.member_id, group.generation, group.protocol_type,
                          group.protocol_name, group.leader_id or "",
                          group.joined_members() if is_leader else ())

    # -- rebalancing ------------------------------------------------------------------

    def _rebalance_or_complete_join(self, group: Group) -> None:
        if group.is_(STABLE, COMPLETING, EMPTY):
            self._prepare_rebalance(group)
        elif group.is_(PREPARING):
            self._try_complete_join(group)

    def _prepare_rebalance(self, group: Group) -> None:
        if group.is_(COMPLETING):
            self._fail_pending_syncs(group, ErrorCode.rebalance_in_progress)
        self._cancel(group.sync_timer)
        group.pending_sync.clear()
        self._cancel(group.join_timer)
        initial = group.is_(EMPTY)
        group.transition(PREPARING)
        group.initial_join = initial
        if initial:
            delay = self.config.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms - delay, 0)
            group.new_member_added = False
            group.join_timer = self._later(delay, self._initial_join_expired, group, remaining)
            return
        group.join_timer = self._later(group.rebalance_timeout_ms, self._complete_join, group)
        self._try_complete_join(group)

    def _initial_join_expired(self, group: Group, remaining_ms: int) -> None:
        if group.new_member_added and remaining_ms > 0:
            # Members are still arriving: wait once more, within the
            # rebalance timeout (Kafka's InitialDelayedJoin).
            delay = min(self.config.initial_rebalance_delay_ms, remaining_ms)
            group.new_member_added = False
            group.join_timer = self._later(delay, self._initial_join_expired, group,
                                           max(remaining_ms - delay, 0))
            return
        self._complete_join(group)

    def _try_complete_join(self, group: Group) -> None:
        if group.is_(PREPARING) and not group.initial_join and group.has_all_members_joined():
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        """End the join phase: drop dynamic members that did not rejoin, start the next generation.

        Static members (KIP-345) that did not rejoin stay, with their last
        protocols, as in Kafka's GroupMetadataManager.completeClassicGroupJoin:
        their session timeout, not the rebalance, decides whether they are gone.
        """
        self._cancel(group.join_timer)
        group.join_timer = None
        if not group.is_(PREPARING) or self._groups.get(group.group_id) is not group:
            return
        group.initial_join = False
        for member in [m for m in group.members.values()
                       if m.join_future is None and m.group_instance_id is None]:
            log.info("group %s: member %s did not rejoin in time", printable(group.group_id),
                     printable(member.member_id))
            self._remove(group, member)
        if group.members and not group.elect_leader_among_joined():
            # Only static members that have not rejoined are left: wait for
            # them, or for their sessions to expire (Kafka does the same).
            log.warning("group %s: no member rejoined; waiting another rebalance timeout",
                        printable(group.group_id))
            group.join_timer = self._later(group.rebalance_timeout_ms, self._complete_join, group)
            return
        group.generation += 1
        if not group.members:
            group.transition(EMPTY)
            group.protocol_name = None
            # Forgotten from memory once Redis holds the Empty generation.
            self._store_in_background(group)
            return
        group.protocol_name = group.select_protocol()
        group.transition(COMPLETING)
        log.info("group %s: generation %d with %d member(s), protocol %s", printable(group.group_id),
                 group.generation, len(group.members), printable(group.protocol_name))
        for member in group.members.values():
            _resolve(member.join_future, self._join_result(group, member))
            member.join_future = None
            member.is_new = False
            self._expire_after(group, member, member.session_timeout_ms)
        group.pending_sync = set(group.members)
        group.sync_timer = self._later(group.rebalance_timeout_ms, self._sync_expired, group,
                                       group.generation)

    def _sync_expired(self, group: Group, generation: int) -> None:
        """Members that never sent SyncGroup in time leave, and the rest rebalance."""
        if group.generation != generation or not group.is_(COMPLETING, STABLE) \
                or not group.pending_sync:
            return
        for member_id in list(group.pending_sync):
            member = group.members.get(member_id)
            if member is not None:
                log.info("group %s: member %s did not sync in time", printable(group.group_id),
                         printable(member_id))
                self._remove(group, member)
        self._prepare_rebalance(group)

    def _fail_pending_syncs(self, group: Group, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
            _resolve(member.sync_future, SyncResult(error))
            member.sync_future = None

    # -- SyncGroup ----------------------------------------------------------------------

    async def sync(self, request: SyncRequest) -> SyncResult:
        if (not_here := await self._ownership_error(request.group_id)) is not None:
            return SyncResult(not_here)
        try:
            group = await self.loaded(request.group_id)
        except StorageUnavailable:
            return SyncResult(ErrorCode.coordinator_not_available)
        error = self._check_sync(group, request)
        if error is not None:
            return error
        assert group is not None
        member = group.members[request.member_id]
        if group.is_(STABLE):
            group.pending_sync.discard(member.member_id)
            self._expire_after(group, member, member.session_timeout_ms)
            return SyncResult(ErrorCode.none, group.protocol_type, group.protocol_name, member.assignment)
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        _resolve(member.sync_future, SyncResult(ErrorCode.rebalance_in_progress))
        member.sync_future = future
        group.pending_sync.discard(member.member_id)
        if group.is_leader(member.member_id):
            await self._apply_assignment(group, request)
        return await future

    def _check_sync(self, group: Group | None, request: SyncRequest) -> SyncResult | None:
        def fail(code: ErrorCode) -> SyncResult:
            return SyncResult(code)

        if group is None:
            return fail(ErrorCode.unknown_member_id)
        if group.is_(DEAD):
            return fail(ErrorCode.coordinator_not_available)
        if group.is_static_member_fenced(request.group_instance_id, request.member_id):
            return fail(ErrorCode.fenced_instance_id)
        if request.member_id not in group.members:
            return fail(ErrorCode.unknown_member_id)
        if request.generation_id != group.generation:
            return fail(ErrorCode.illegal_generation)
        if (request.protocol_type is not None and request.protocol_type != group.protocol_type) or \
                (request.protocol_name is not None and request.protocol_name != group.protocol_name):
            return fail(ErrorCode.inconsistent_group_protocol)
        if group.is_(EMPTY):
            return fail(ErrorCode.unknown_member_id)
        if group.is_(PREPARING):
            return fail(ErrorCode.rebalance_in_progress)
        return None

    async def _apply_assignment(self, group: Group, request: SyncRequest) -> None:
        """The leader's assignment: store the group in Redis, then relay it to every member."""
        generation = group.generation
        assignments = dict(request.assignments)
        try:
            await self.storage.register_group(group.group_id, group.protocol_type or "")
            await self._store(group.group_id, generation, membership.encode(group, assignments))
            error = ErrorCode.none
        except StorageUnavailable:
            error = ErrorCode.coordinator_not_available
        except Fenced:
            # Another gateway coordinates the group now: dropping it answers
            # the parked syncs NOT_COORDINATOR.
            self._lost(group.group_id)
            return
        if group.generation != generation or not group.is_(COMPLETING):
            return  # a rebalance started meanwhile and answered the waiting syncs
        if error != ErrorCode.none:
            # As Kafka does when it cannot store the group: fail the round.
            self._fail_pending_syncs(group, error)
            self._prepare_rebalance(group)
            return
        for member in group.members.values():
            member.assignment = assignments.get(member.member_id, b"")
        group.transition(STABLE)
        for member in group.members.values():
            if member.sync_future is not None:
                _resolve(member.sync_future, SyncResult(ErrorCode.none, group.protocol_type,
                                                        group.protocol_name, member.assignment))
                member.sync_future = None
                self._expire_after(group, member, member.session_timeout_ms)

    # -- Heartbeat and LeaveGroup ------------------------------------------------------------

    async def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None,
                        generation_id: int) -> ErrorCode:
        if (error := await self._ownership_error(group_id)) is not None:
            return error
        try:
            group = await self.loaded(group_id)
        except StorageUnavailable:
            return ErrorCode.coordinator_not_available
        if group is None:
            return ErrorCode.unknown_member_id
        if group.is_(DEAD):
            return ErrorCode.coordinator_not_available
        if group.is_static_member_fenced(group_instance_id, member_id):
            return ErrorCode.fenced_instance_id
        member = group.members.get(member_id)
        if member is None or group.is_(EMPTY):
            return ErrorCode.unknown_member_id
        if generation_id != group.generation:
            return ErrorCode.illegal_generation
        self._expire_after(group, member, member.session_timeout_ms)
        if group.is_(PREPARING):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    async def leave(self, group_id: str,
                    members: Sequence[tuple[str, str | None]]) -> tuple[ErrorCode, list[ErrorCode]]:
        """Remove members given as (member ID, group instance ID): the top-level
        error and one per member. A static member may be named by instance ID alone."""
        if (error := await self._ownership_error(group_id)) is not None:
            return error, []
        try:
            group = await self.loaded(group_id)
        except StorageUnavailable:
            return ErrorCode.coordinator_not_available, []
        if group is None:
            return ErrorCode.none, [ErrorCode.unknown_member_id] * len(members)
        if group.is_(DEAD):
            return ErrorCode.coordinator_not_available, []
        return ErrorCode.none, [self._leave_one(group, m, i) for m, i in members]

    def _leave_one(self, group: Group, member_id: str, group_instance_id: str | None) -> ErrorCode:
        if not member_id and group_instance_id is not None:
            member_id = group.static_members.get(group_instance_id, "")
            if not member_id:
                return ErrorCode.unknown_member_id
        elif group.is_static_member_fenced(group_instance_id, member_id):
            return ErrorCode.fenced_instance_id
        if member_id in group.pending_members:
            group.pending_members.pop(member_id).cancel()
            self._try_complete_join(group)
            self._forget_if_idle(group)
            return ErrorCode.none
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        log.info("group %s: member %s left", printable(group.group_id), printable(member_id))
        self._remove_and_rebalance(group, member)
        return ErrorCode.none

    # -- sessions ----------------------------------------------------------------------

    def _expire_after(self, group: Group, member: Member, timeout_ms: int) -> None:
        self._cancel(member.expiry)
        member.expiry = self._later(timeout_ms, self._expire_member, group, member)

    def _expire_member(self, group: Group, member: Member) -> None:
        if group.members.get(member.member_id) is not member:
            return
        if not member.is_new and (member.join_future is not None or member.sync_future is not None):
            # Parked on a JoinGroup or SyncGroup: alive; the rebalance timeout
            # governs it until it is answered.
            self._expire_after(group, member, member.session_timeout_ms)
            return
        log.info("group %s: member %s expired (no heartbeat in %d ms)", printable(group.group_id),
                 printable(member.member_id), member.session_timeout_ms)
        self._remove_and_rebalance(group, member)

    def _expire_pending_member(self, group: Group, member_id: str) -> None:
        if group.pending_members.pop(member_id, None) is not None:
            self._try_complete_join(group)
            self._forget_if_idle(group)

    def _remove_and_rebalance(self, group: Group, member: Member) -> None:
        self._remove(group, member)
        if group.is_(STABLE, COMPLETING):
            self._prepare_rebalance(group)
        elif group.is_(PREPARING):
            self._try_complete_join(group)

    def _remove(self, group: Group, member: Member) -> None:
        self._cancel(member.expiry)
        _resolve(member.join_future, JoinResult(ErrorCode.unknown_member_id, member.member_id))
        _resolve(member.sync_future, SyncResult(ErrorCode.unknown_member_id))
        member.join_future = member.sync_future = None
        group.remove(member)

    def _forget_if_idle(self, group: Group) -> None:
        # An Empty group is fully described by Redis (its offsets and
        # registration); nothing of it needs to stay in memory.
        if group.is_(EMPTY) and not group.members and not group.pending_members \
                and self._groups.get(group.group_id) is group:
            self._cancel(group.join_timer)
            del self._groups[group.group_id]

    # -- storing membership ---------------------------------------------------------------------

    async def _store(self, group_id: str, generation: int, state: bytes) -> None:
        if not await self.storage.save_membership(group_id, generation, state, self.fence_token(group_id)):
            log.warning("group %s: Redis holds a later generation than %d; not stored", printable(group_id),
                        generation)
        self._absent.discard(group_id)

    def _store_in_background(self, group: Group) -> None:
        """Store the group's membership without holding up a timer or a LeaveGroup."""
        task = asyncio.ensure_future(self._store_then_forget(group, group.generation,
                                                             membership.encode(group)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _store_then_forget(self, group: Group, generation: int, state: bytes) -> None:
        try:
            await self._store(group.group_id, generation, state)
        except StorageUnavailable as exc:
            # A restart would then load the previous generation; its members
            # no longer heartbeat and expire after their session timeout.
            log.warning("group %s: generation %d not stored: %s", printable(group.group_id), generation, exc)
        except Fenced:
            log.warning("group %s: generation %d not stored: another gateway coordinates the group now",
                        printable(group.group_id), generation)
            self._lost(group.group_id)
        finally:
            self._forget_if_idle(group)

    # -- offsets, describe, delete ---------------------------------------------------------------

    async def validate_commit(self, group_id: str, member_id: str, group_instance_id: str | None,
                              generation_id: int) -> ErrorCode:
        """Whether this member may commit now (Kafka's classic-group rules)."""
        if (error := await self._ownership_error(group_id)) is not None:
            return error
        try:
            group = await self.loaded(group_id)
        except StorageUnavailable:
            return ErrorCode.coordinator_not_available
        if group is None or (group.is_(EMPTY) and not group.members):
            if generation_id < 0:
                return ErrorCode.none  # a commit from outside group management (admin, assign())
            return ErrorCode.illegal_generation if group is None else ErrorCode.unknown_member_id
        if group.is_(DEAD):
            return ErrorCode.coordinator_not_available
        if group.is_static_member_fenced(group_instance_id, member_id):
            return ErrorCode.fenced_instance_id
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if generation_id != group.generation:
            return ErrorCode.illegal_generation
        if group.is_(COMPLETING):
            return ErrorCode.rebalance_in_progress
        self._expire_after(group, member, member.session_timeout_ms)
        return ErrorCode.none

    def protocol_type(self, group_id: str) -> str | None:
        group = self._groups.get(group_id)
        return None if group is None else group.protocol_type

    async def delete_group(self, group_id: str) -> ErrorCode:
        try:
            group = await self.loaded(group_id)
        except StorageUnavailable:
            return ErrorCode.coordinator_not_available
        if group is not None and (group.members or group.pending_members):
            return ErrorCode.non_empty_group
        try:
            registered = await self.storage.group_protocol_type(group_id) is not None
            group = self._groups.get(group_id)
            if group is not None and (group.members or group.pending_members):
                return ErrorCode.non_empty_group  # a member joined while Redis answered
            if group is None and not registered:
                return ErrorCode.group_id_not_found
            if group is not None:
                group.transition(DEAD)
                self._cancel(group.join_timer)
                del self._groups[group_id]
            await self.storage.delete_group(group_id)
        except StorageUnavailable:
            return ErrorCode.coordinator_not_available
        log.info("group %s deleted", printable(group_id))
        return ErrorCode.none

    async def delete_offsets(self, group_id: str, partitions: Sequence[tuple[str, int]]
                             ) -> tuple[ErrorCode, dict[tuple[str, int], ErrorCode]]:
        """OffsetDelete: the top-level error and the partitions refused.

        An active consumer group keeps the offsets of topics it subscribes
        to (GROUP_SUBSCRIBED_TO_TOPIC); an active group of another protocol
        type keeps all of them (NON_EMPTY_GROUP), as in Kafka.
        """
        refused: dict[tuple[str, int], ErrorCode] = {}
        try:
            group = await self.loaded(group_id)
            if group is None or not group.members:
                if group is None and await self.storage.group_protocol_type(group_id) is None:
                    return ErrorCode.group_id_not_found, refused
            elif group.protocol_type == CONSUMER_PROTOCOL_TYPE:
                topics = self._subscribed_topics(group)
                refused = {p: ErrorCode.group_subscribed_to_topic for p in partitions if p[0] in topics}
            else:
                return ErrorCode.non_empty_group, refused
            await self.storage.delete_offsets(group_id, [p for p in partitions if p not in refused])
        except StorageUnavailable:
            return ErrorCode.coordinator_not_available, refused
        return ErrorCode.none, refused

    @staticmethod
    def _subscribed_topics(group: Group) -> set[str]:
        topics: set[str] = set()
        for member in group.members.values():
            metadata = member.metadata(group.protocol_name) if group.protocol_name else \
                (member.protocols[0][1] if member.protocols else b"")
            try:
                topics |= subscribed_topics(metadata)
            except MalformedSubscription:
                log.warning("group %s: member %s has unreadable subscription metadata",
                            printable(group.group_id), printable(member.member_id))
        return topics

    def close(self) -> None:
        """The gateway stops: answer every parked request so clients look for a coordinator again."""
        for group in self._groups.values():
            self._drop(group)
        self._groups.clear()

    async def flush(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) for memberships still being stored."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)

    # -- timers --------------------------------------------------------------------------

    @staticmethod
    def _later(delay_ms: int, callback: Callable[..., None], *args: object) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(delay_ms, 0) / 1000, callback, *args)

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
