"""Consumer-group membership and administration (the classic group protocol).

FindCoordinator (key 10) v0-v6: the live gateway holding the group's
coordinator lease, read from Redis (coordinator/ownership.py), or when none
does the one computed from the live set the same way on every gateway
(gateway/cluster.py); the batched coordinator_keys of v4+ are looked up in
one pipeline and answered one by one. While Redis is
unreachable the answer is COORDINATOR_NOT_AVAILABLE (retriable). Only group
keys are served: a transaction coordinator gets
TRANSACTIONAL_ID_AUTHORIZATION_FAILED with the message that transactions are
not served (fatal to librdkafka's and Java's transactional producers, which
would otherwise retry until their timeout; see handlers/producers.py), and
share coordinators INVALID_REQUEST (no share groups yet).
JoinGroup (key 11) v0-v9: the member-id-required round trip from v4,
static members (group.instance.id) from v5, skip_assignment for a rejoining
static leader from v9. v0 is listed for librdkafka < 2.11 (it gates its
GSSAPI support on it). Session timeouts outside 6000-1800000 ms get
INVALID_SESSION_TIMEOUT, as with Kafka's broker defaults.
SyncGroup (key 14) v0-v5, Heartbeat (key 12) v0-v4, LeaveGroup (key 13)
v0-v5 (batched members by member ID or instance ID from v3).
DescribeGroups (key 15) v0-v6: members with metadata and assignment while
Stable (Kafka shows them only then); an unknown group is Dead, with
GROUP_ID_NOT_FOUND from v6; authorized operations when asked.
ListGroups (key 16) v0-v5: the groups this gateway coordinates, in memory or registered in Redis
(those are Empty); states filter from v4, types filter from v5 (every group
is "classic").
DeleteGroups (key 42) v0-v2: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, or the
group's Redis consumer groups and registration removed.

ACLs (as KafkaApis): FindCoordinator needs DESCRIBE on the group (or the
transactional ID); JoinGroup, SyncGroup, Heartbeat and LeaveGroup READ on
the group, else GROUP_AUTHORIZATION_FAILED; DescribeGroups DESCRIBE on
each group; DeleteGroups DELETE on each; ListGroups lists every group to
DESCRIBE on the cluster, else the groups the principal may DESCRIBE.

The rules themselves are in gateway/coordinator; this module translates.
Gaps: the KIP-848 consumer protocol (ConsumerGroupHeartbeat) is not served.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import Broker, RequestContext
from ..coordinator import Group, GroupState, JoinRequest, SyncRequest
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..storage import StorageUnavailable
from ._build import NO_THROTTLE, make, response_types
from .producers import TRANSACTIONS_NOT_SERVED, refuse_transactions

GROUP_KEY, TRANSACTION_KEY = 0, 1
CLASSIC = "classic"
SHARE = "share"  # a share group's protocol and group type, as Kafka lists it


AUTHORIZATION_MESSAGES = {
    ErrorCode.group_authorization_failed: "Group authorization failed.",
    ErrorCode.transactional_id_authorization_failed: "Transactional Id authorization failed.",
}


def _may(context: RequestContext, operation: Operation, group_id: str) -> bool:
    return context.authorize(operation, ResourceType.GROUP, group_id)


def _millis(value: datetime.timedelta) -> int:
    return int(value.total_seconds() * 1000)


def _client_host(context: RequestContext) -> str:
    # Kafka shows the client's address as InetAddress.toString() does.
    return "/" + context.peer.rsplit(":", 1)[0]


# -- FindCoordinator ------------------------------------------------------------------


async def _holders(context: RequestContext, key_type: int, keys: list[str]
                   ) -> tuple[ErrorCode, str | None, list[int | None]]:
    """The error for the whole request, and each group's lease holder (None: no live lease)."""
    if key_type == TRANSACTION_KEY:
        return refuse_transactions(context, "a transaction coordinator"), TRANSACTIONS_NOT_SERVED, []
    if key_type != GROUP_KEY:
        return ErrorCode.invalid_request, f"This gateway does not serve coordinator type {key_type}.", []
    try:
        return ErrorCode.none, None, await context.coordinator.holders(keys)
    except StorageUnavailable as exc:
        return ErrorCode.coordinator_not_available, f"Redis unavailable: {exc}", []


def _key_refused(context: RequestContext, key_type: int, key: str) -> ErrorCode | None:
    """DESCRIBE on the group or transactional ID the key names, as KafkaApis asks."""
    if key_type == GROUP_KEY and not _may(context, Operation.DESCRIBE, key):
        return ErrorCode.group_authorization_failed
    if key_type == TRANSACTION_KEY and not context.authorize(
            Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, key):
        return ErrorCode.transactional_id_authorization_failed
    return None


def _coordinator(context: RequestContext, key_type: int, key: str, checked: tuple[ErrorCode, str | None],
                 holder: int | None) -> tuple[ErrorCode, str | None, Broker | None]:
    """The gateway coordinating a group, on the listener the request came in on."""
    refused = _key_refused(context, key_type, key)
    if refused is not None:
        # With Kafka's message for the code, as Kafka answers.
        return refused, AUTHORIZATION_MESSAGES[refused], None
    code, message = checked
    if code != ErrorCode.none:
        return code, message, None
    broker = context.cluster.coordinator(key, context.broker, holder)
    if broker is None:
        # Kafka's answer when the coordinator has no endpoint on this listener.
        return (ErrorCode.coordinator_not_available,
                f"The coordinator has no {context.broker.listener} listener.", None)
    return code, message, broker


async def handle_find_coordinator(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    key_type = getattr(request, "key_type", GROUP_KEY)
    keys = [request.key] if context.api_version < 4 else list(request.coordinator_keys)
    code, message, holders = await _holders(context, key_type, keys)
    checked = (code, message)
    if context.api_version < 4:
        code, message, broker = _coordinator(context, key_type, request.key, checked,
                                             holders[0] if holders else None)
        return make(types.FindCoordinatorResponse, throttle_time=NO_THROTTLE, error_code=code,
                    error_message=message, node_id=broker.node_id if broker else -1,
                    host=broker.host if broker else "", port=broker.port if broker else -1)
    coordinators = []
    for index, key in enumerate(keys):
        code, message, broker = _coordinator(context, key_type, key, checked,
                                             holders[index] if holders else None)
        coordinators.append(make(
            types.Coordinator, key=key, node_id=broker.node_id if broker else -1,
            host=broker.host if broker else "", port=broker.port if broker else -1,
            error_code=code, error_message=message))
    return make(types.FindCoordinatorResponse, throttle_time=NO_THROTTLE, coordinators=tuple(coordinators))


# -- JoinGroup, SyncGroup, Heartbeat, LeaveGroup -------------------------------------------


async def handle_join_group(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    version = context.api_version
    if not _may(context, Operation.READ, request.group_id):
        return make(types.JoinGroupResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.group_authorization_failed, generation_id=-1,
                    protocol_type=None, protocol_name=None if version >= 7 else "", leader="",
                    skip_assignment=False, member_id="", members=())
    session_timeout = _millis(request.session_timeout)
    result = await context.coordinator.join(JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        client_id=context.header.client_id or "",
        client_host=_client_host(context),
        session_timeout_ms=session_timeout,
        # v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms=_millis(request.rebalance_timeout) if version >= 1 else session_timeout,
        protocol_type=request.protocol_type,
        protocols=tuple((p.name, p.metadata) for p in request.protocols),
        require_known_member_id=version >= 4,
        supports_skip_assignment=version >= 9,
    ))
    members = tuple(
        make(types.JoinGroupResponseMember, member_id=m.member_id,
             group_instance_id=m.group_instance_id, metadata=m.metadata)
        for m in result.members
    )
    return make(
        types.JoinGroupResponse, throttle_time=NO_THROTTLE, error_code=result.error,
        generation_id=result.generation_id, protocol_type=result.protocol_type,
        # Nullable from v7; before that Kafka sends "" for none.
        protocol_name=result.protocol_name if version >= 7 else result.protocol_name or "",
        leader=result.leader, skip_assignment=result.skip_assignment, member_id=result.member_id,
        members=members,
    )


async def handle_sync_group(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    if not _may(context, Operation.READ, request.group_id):
        return make(types.SyncGroupResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.group_authorization_failed, protocol_type=None,
                    protocol_name=None, assignment=b"")
    result = await context.coordinator.sync(SyncRequest(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
        assignments=tuple((a.member_id, a.assignment) for a in request.assignments),
    ))
    return make(types.SyncGroupResponse, throttle_time=NO_THROTTLE, error_code=result.error,
                protocol_type=result.protocol_type, protocol_name=result.protocol_name,
                assignment=result.assignment)


async def handle_heartbeat(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    if not _may(context, Operation.READ, request.group_id):
        return make(types.HeartbeatResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.group_authorization_failed)
    code = await context.coordinator.heartbeat(request.group_id, request.member_id,
                                         getattr(request, "group_instance_id", None),
                                         request.generation_id)
    return make(types.HeartbeatResponse, throttle_time=NO_THROTTLE, error_code=code)


async def handle_leave_group(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    if not _may(context, Operation.READ, request.group_id):
        return make(types.LeaveGroupResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.group_authorization_failed, members=())
    if context.api_version < 3:
        top, errors = await context.coordinator.leave(request.group_id, [(request.member_id, None)])
        # One member, whose error is the response's.
        code = top if top != ErrorCode.none or not errors else errors[0]
        return make(types.LeaveGroupResponse, throttle_time=NO_THROTTLE, error_code=code)
    leaving = [(m.member_id, m.group_instance_id) for m in request.members]
    top, errors = await context.coordinator.leave(request.group_id, leaving)
    members = tuple(
        make(types.MemberResponse, member_id=member_id, group_instance_id=instance_id, error_code=code)
        for (member_id, instance_id), code in zip(leaving, errors, strict=False)
    )
    return make(types.LeaveGroupResponse, throttle_time=NO_THROTTLE, error_code=top, members=members)


# -- DescribeGroups, ListGroups, DeleteGroups ------------------------------------------------


def _describe_members(types: Any, group: Group) -> tuple[Any, ...]:
    stable = group.is_(GroupState.STABLE)
    return tuple(
        make(types.DescribedGroupMember, member_id=m.member_id, group_instance_id=m.group_instance_id,
             client_id=m.client_id, client_host=m.client_host,
             member_metadata=m.metadata(group.protocol_name) if stable else b"",
             member_assignment=m.assignment if stable else b"")
        for m in group.members.values()
    )


async def _coordinated_here(context: RequestContext, group_id: str) -> bool:
    """Whether FindCoordinator names this gateway for the group. Another gateway's
    group is not described here (Kafka answers NOT_COORDINATOR): loading it would
    start its members' session timers on a gateway that does not run it."""
    (holder,) = await context.coordinator.holders([group_id])
    return context.cluster.coordinates(group_id, holder)


async def _describe_one(context: RequestContext, types: Any, group_id: str, asks_operations: bool) -> Any:
    def described(code: ErrorCode, state: str, protocol_type: str = "", protocol: str = "",
                  members: tuple[Any, ...] = (), message: str | None = None) -> Any:
        operations = context.authorized_operations(ResourceType.GROUP, group_id,
                                                   asks_operations and code == ErrorCode.none)
        return make(types.DescribedGroup, error_code=code, error_message=message, group_id=group_id,
                    group_state=state, protocol_type=protocol_type, protocol_data=protocol,
                    members=members, authorized_operations=operations)

    if not _may(context, Operation.DESCRIBE, group_id):
        return described(ErrorCode.group_authorization_failed, "")
    try:
        if not await _coordinated_here(context, group_id):
            return described(ErrorCode.not_coordinator, "",
                             message="This gateway is not the group's coordinator.")
        group = await context.coordinator.loaded(group_id)
        if group is not None:
            stable = group.is_(GroupState.STABLE)
            return described(ErrorCode.none, group.state.value, group.protocol_type or "",
                             (group.protocol_name or "") if stable else "", _describe_members(types, group))
        protocol_type = await context.coordinator.storage.group_protocol_type(group_id)
    except StorageUnavailable as exc:
        return described(ErrorCode.coordinator_not_available, "", message=f"Redis unavailable: {exc}")
    if protocol_type is not None:
        return described(ErrorCode.none, GroupState.EMPTY.value, protocol_type)
    if context.api_version >= 6:
        return described(ErrorCode.group_id_not_found, GroupState.DEAD.value,
                         message=f"Group {group_id} not found.")
    return described(ErrorCode.none, GroupState.DEAD.value)


async def handle_describe_groups(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    asks_operations = bool(getattr(request, "include_authorized_operations", False))
    groups = tuple([await _describe_one(context, types, group_id, asks_operations)
                    for group_id in request.groups])
    return make(types.DescribeGroupsResponse, throttle_time=NO_THROTTLE, groups=groups)


async def _all_groups(context: RequestContext) -> dict[str, tuple[str, str]]:
    """group ID -> (protocol type, state) of the groups this gateway coordinates: in memory,
    or registered in Redis (Empty).

    As each Kafka broker lists only its own groups: clients send ListGroups
    to every broker and merge the answers, so a group listed by a gateway
    that does not run it would show twice, or as Empty while it is Stable.
    """
    registered = await context.coordinator.storage.groups()
    found = {group_id: (protocol_type, GroupState.EMPTY.value)
             for group_id, protocol_type in registered.items()}
    for group in context.coordinator.groups():
        if not group.is_(GroupState.DEAD):
            protocol_type = group.protocol_type or registered.get(group.group_id, "")
            found[group.group_id] = (protocol_type, group.state.value)
    holders = await context.coordinator.holders(list(found))
    return {group_id: listed for (group_id, listed), holder in zip(found.items(), holders, strict=True)
            if context.cluster.coordinates(group_id, holder)}


def _wanted(request: Any, state: str, group_type: str = CLASSIC) -> bool:
    states = {s.lower() for s in getattr(request, "states_filter", ()) or ()}
    types_filter = {t.lower() for t in getattr(request, "types_filter", ()) or ()}
    return (not states or state.lower() in states) and (not types_filter or group_type in types_filter)


async def _share_groups(context: RequestContext) -> dict[str, str]:
    """group ID -> state of the share groups this gateway is named coordinator of."""
    found = {}
    for group_id in await context.shares.storage.groups():
        if context.cluster.coordinates(group_id):
            state = await context.shares.storage.describe(group_id)
            found[group_id] = "Stable" if state is not None and state.members else "Empty"
    return found


async def handle_list_groups(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    try:
        found = await _all_groups(context)
        shares = await _share_groups(context)
    except StorageUnavailable:
        return make(types.ListGroupsResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.coordinator_not_available, groups=())
    # As KafkaApis: DESCRIBE on the cluster lists every group, else those the principal may DESCRIBE.
    everything = context.authorize_cluster(Operation.DESCRIBE)
    groups = tuple(
        make(types.ListedGroup, group_id=group_id, protocol_type=protocol_type, group_state=state,
             group_type=CLASSIC)
        for group_id, (protocol_type, state) in sorted(found.items())
        if _wanted(request, state) and (everything or _may(context, Operation.DESCRIBE, group_id))
    ) + tuple(
        make(types.ListedGroup, group_id=group_id, protocol_type=SHARE, group_state=state, group_type=SHARE)
        for group_id, state in sorted(shares.items())
        if group_id not in found and _wanted(request, state, SHARE)
        and (everything or _may(context, Operation.DESCRIBE, group_id))
    )
    return make(types.ListGroupsResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none,
                groups=groups)


async def handle_delete_groups(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    results = tuple([
        make(types.DeletableGroupResult, group_id=group_id,
             error_code=await _delete_group(context, group_id)
             if _may(context, Operation.DELETE, group_id) else ErrorCode.group_authorization_failed)
        for group_id in request.groups_names
    ])
    return make(types.DeleteGroupsResponse, throttle_time=NO_THROTTLE, results=results)


async def _delete_group(context: RequestContext, group_id: str) -> ErrorCode:
    """A share group's state in Redis (NON_EMPTY_GROUP while it has members, as Kafka),
    else the classic group."""
    try:
        if group_id not in await context.shares.storage.groups():
            return await context.coordinator.delete_group(group_id)
        state = await context.shares.storage.describe(group_id)
        if state is not None and state.members:
            return ErrorCode.non_empty_group
        await context.shares.storage.delete(group_id)
    except StorageUnavailable:
        return ErrorCode.coordinator_not_available
    return ErrorCode.none


ROUTES = (
    Route(10, 0, 6, handle_find_coordinator, Access.AUTHORIZED),
    Route(11, 0, 9, handle_join_group, Access.AUTHORIZED),
    Route(12, 0, 4, handle_heartbeat, Access.AUTHORIZED),
    Route(13, 0, 5, handle_leave_group, Access.AUTHORIZED),
    Route(14, 0, 5, handle_sync_group, Access.AUTHORIZED),
    Route(15, 0, 6, handle_describe_groups, Access.AUTHORIZED),
    Route(16, 0, 5, handle_list_groups, Access.AUTHORIZED),
    Route(42, 0, 2, handle_delete_groups, Access.AUTHORIZED),
)
