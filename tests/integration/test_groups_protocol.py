"""The group APIs on the wire: versions, round trips and Kafka's error codes.

Client libraries hide most of these answers (they retry or rejoin), so the
coordinator's rules are checked here request by request, with the
project's codecs over a socket (see test_protocol.py).
"""

from __future__ import annotations

import datetime
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kio.schema.errors import ErrorCode

from tests.integration.groups_support import create_topic, produce_numbered, wait_until
from tests.integration.test_protocol import Wire, build, request_types
from tests.servers import GatewayProcess, RedisServer

FIND_COORDINATOR, JOIN, HEARTBEAT, LEAVE, SYNC, DESCRIBE, LIST, DELETE = 10, 11, 12, 13, 14, 15, 16, 42
OFFSET_COMMIT, OFFSET_FETCH, OFFSET_DELETE = 8, 9, 47


def ms(value: int) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=value)


def subscription(*topics: str) -> bytes:
    """ConsumerProtocolSubscription v0: the topics, no user data."""
    body = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        body += struct.pack(">h", len(topic)) + topic.encode()
    return body + struct.pack(">i", -1)


def join(group: str, member_id: str = "", *, version: int = 5, instance: str | None = None,
         protocols: tuple[tuple[str, bytes], ...] = (("range", b"meta"),), session: int = 10_000,
         protocol_type: str = "consumer", rebalance: int = 10_000) -> Any:
    types = request_types(JOIN, version)
    return build(types.JoinGroupRequest, group_id=group, session_timeout=ms(session),
                 rebalance_timeout=ms(rebalance), member_id=member_id, group_instance_id=instance,
                 protocol_type=protocol_type, reason=None,
                 protocols=tuple(build(types.JoinGroupRequestProtocol, name=n, metadata=m)
                                 for n, m in protocols))


def sync(group: str, member_id: str, generation: int, assignments: dict[str, bytes] | None = None, *,
         version: int = 3, instance: str | None = None) -> Any:
    types = request_types(SYNC, version)
    return build(types.SyncGroupRequest, group_id=group, generation_id=generation, member_id=member_id,
                 group_instance_id=instance, protocol_type="consumer", protocol_name="range",
                 assignments=tuple(build(types.SyncGroupRequestAssignment, member_id=m, assignment=a)
                                   for m, a in (assignments or {}).items()))


def heartbeat(group: str, member_id: str, generation: int, instance: str | None = None) -> Any:
    return build(request_types(HEARTBEAT, 4).HeartbeatRequest, group_id=group, member_id=member_id,
                 generation_id=generation, group_instance_id=instance)


def leave(group: str, *members: tuple[str, str | None]) -> Any:
    types = request_types(LEAVE, 4)
    return types.LeaveGroupRequest(group_id=group, members=tuple(
        types.MemberIdentity(member_id=m, group_instance_id=i) for m, i in members))


def describe(group: str, version: int = 5) -> Any:
    return build(request_types(DESCRIBE, version).DescribeGroupsRequest, groups=(group,),
                 include_authorized_operations=False)


def offset_commit(group: str, topic: str, offsets: dict[int, int], *, generation: int = -1,
                  member_id: str = "", instance: str | None = None, metadata: str | None = None) -> Any:
    types = request_types(OFFSET_COMMIT, 8)
    partitions = tuple(types.OffsetCommitRequestPartition(
        partition_index=p, committed_offset=o, committed_leader_epoch=-1, committed_metadata=metadata)
        for p, o in offsets.items())
    return types.OffsetCommitRequest(
        group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
        group_instance_id=instance,
        topics=(types.OffsetCommitRequestTopic(name=topic, partitions=partitions),))


def commit_errors(response: Any) -> list[ErrorCode]:
    return [p.error_code for t in response.topics for p in t.partitions]


def stable_member(wire: Wire, group: str, instance: str | None = None) -> tuple[str, int]:
    """Join (v5, so a dynamic member first gets MEMBER_ID_REQUIRED) and sync: (member ID, generation)."""
    member_id = ""
    if instance is None:
        first = wire.call(join(group))
        assert first.error_code == ErrorCode.member_id_required and first.member_id
        member_id = first.member_id
    joined = wire.call(join(group, member_id, instance=instance))
    assert joined.error_code == ErrorCode.none
    synced = wire.call(sync(group, joined.member_id, joined.generation_id, {joined.member_id: b"A"},
                            instance=instance))
    assert (synced.error_code, synced.assignment) == (ErrorCode.none, b"A")
    return joined.member_id, joined.generation_id


@pytest.fixture
def wire2(bootstrap: str) -> Iterator[Wire]:
    connection = Wire(bootstrap)
    yield connection
    connection.close()


@pytest.fixture
def wire(bootstrap: str) -> Iterator[Wire]:
    connection = Wire(bootstrap)
    yield connection
    connection.close()


@pytest.fixture
def group() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


# -- FindCoordinator ----------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 3])
def test_find_coordinator_names_this_gateway(wire: Wire, bootstrap: str, version: int) -> None:
    answer = wire.call(build(request_types(FIND_COORDINATOR, version).FindCoordinatorRequest,
                             key="any-group", key_type=0))
    assert (answer.error_code, f"{answer.host}:{answer.port}", answer.node_id) == (
        ErrorCode.none, bootstrap, 0)


def test_find_coordinator_batched_keys(wire: Wire, bootstrap: str) -> None:
    types = request_types(FIND_COORDINATOR, 6)
    answer = wire.call(types.FindCoordinatorRequest(key_type=0, coordinator_keys=("a", "b")))
    assert [(c.key, c.error_code, f"{c.host}:{c.port}") for c in answer.coordinators] == [
        ("a", ErrorCode.none, bootstrap), ("b", ErrorCode.none, bootstrap)]
    refused = wire.call(types.FindCoordinatorRequest(key_type=1, coordinator_keys=("txn",)))
    # The error transactional clients treat as fatal (not INVALID_REQUEST, which librdkafka retries).
    assert refused.coordinators[0].error_code == ErrorCode.transactional_id_authorization_failed
    assert "transactions are not served" in (refused.coordinators[0].error_message or "")
    share = wire.call(types.FindCoordinatorRequest(key_type=2, coordinator_keys=("g:t:0",)))
    assert share.coordinators[0].error_code == ErrorCode.invalid_request


# -- membership -----------------------------------------------------------------------------


def test_join_sync_heartbeat_describe_leave(wire: Wire, group: str) -> None:
    member_id, generation = stable_member(wire, group)
    assert generation == 1
    assert wire.call(heartbeat(group, member_id, generation)).error_code == ErrorCode.none
    assert wire.call(heartbeat(group, member_id, generation + 5)).error_code == ErrorCode.illegal_generation
    assert wire.call(heartbeat(group, "stranger", generation)).error_code == ErrorCode.unknown_member_id
    (described,) = wire.call(describe(group)).groups
    assert (described.group_state, described.protocol_type, described.protocol_data) == (
        "Stable", "consumer", "range")
    (member,) = described.members
    assert (member.member_id, member.member_metadata, member.member_assignment, member.client_id) == (
        member_id, b"meta", b"A", "protocol-test")
    left = wire.call(leave(group, (member_id, None)))
    assert (left.error_code, [m.error_code for m in left.members]) == (ErrorCode.none, [ErrorCode.none])
    (described,) = wire.call(describe(group)).groups
    assert (described.group_state, described.members) == ("Empty", ())


def test_join_v0_as_old_librdkafka_sends_it(wire: Wire, group: str) -> None:
    joined = wire.call(join(group, version=0))
    assert (joined.error_code, joined.generation_id, joined.leader) == (ErrorCode.none, 1, joined.member_id)
    assert [m.member_id for m in joined.members] == [joined.member_id]


def test_second_member_rebalances_the_group(wire: Wire, wire2: Wire, group: str) -> None:
    first, generation = stable_member(wire, group)
    pending = wire2.send(join(group, version=3))  # v3: no member-id round trip
    wait_until(lambda: wire.call(describe(group)).groups[0].group_state == "PreparingRebalance", 10,
               "the join to reach the coordinator")
    assert wire.call(heartbeat(group, first, generation)).error_code == ErrorCode.rebalance_in_progress
    rejoined = wire.call(join(group, first))
    _, second = wire2.receive(JOIN, 3)
    assert second.error_code == ErrorCode.none
    assert rejoined.generation_id == second.generation_id == generation + 1
    assert rejoined.leader == first  # the longest-standing member stays leader
    assert {m.member_id for m in rejoined.members} == {first, second.member_id}
    assert second.members == ()
    assert pending
    wire2.send(sync(group, second.member_id, second.generation_id))  # parked until the leader syncs
    led = wire.call(sync(group, first, rejoined.generation_id, {first: b"one", second.member_id: b"two"}))
    _, followed = wire2.receive(SYNC, 3)
    assert (led.assignment, followed.assignment) == (b"one", b"two")


def test_join_errors(wire: Wire, wire2: Wire, group: str) -> None:
    stable_member(wire, group)
    other_type = wire2.call(join(group, version=3, protocol_type="connect"))
    assert other_type.error_code == ErrorCode.inconsistent_group_protocol
    other_protocol = wire2.call(join(group, version=3, protocols=(("roundrobin", b""),)))
    assert other_protocol.error_code == ErrorCode.inconsistent_group_protocol
    too_short = wire2.call(join(f"{group}-x", version=3, session=1000))
    assert too_short.error_code == ErrorCode.invalid_session_timeout
    unknown = wire2.call(join(group, "never-issued", version=3))
    assert unknown.error_code == ErrorCode.unknown_member_id


def test_sync_errors(wire: Wire, group: str) -> None:
    member_id, generation = stable_member(wire, group)
    assert wire.call(sync(group, member_id, generation + 1)).error_code == ErrorCode.illegal_generation
    assert wire.call(sync(group, "stranger", generation)).error_code == ErrorCode.unknown_member_id
    assert wire.call(sync(f"{group}-none", member_id, 1)).error_code == ErrorCode.unknown_member_id


def test_static_member_replaced_without_rebalance(wire: Wire, wire2: Wire, group: str, bootstrap: str,
                                                  topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 1)
    old_id, generation = stable_member(wire, group, instance="instance-1")
    # The same instance restarts: unknown member ID, same instance ID and protocols.
    rejoined = wire2.call(join(group, instance="instance-1"))
    assert rejoined.error_code == ErrorCode.none
    assert rejoined.member_id != old_id and rejoined.generation_id == generation
    # Before v9 the replaced leader is told the old leader ID, so it follows.
    assert rejoined.leader == old_id and rejoined.members == ()
    synced = wire2.call(sync(group, rejoined.member_id, rejoined.generation_id, instance="instance-1"))
    assert (synced.error_code, synced.assignment) == (ErrorCode.none, b"A")
    beat = wire2.call(heartbeat(group, rejoined.member_id, generation, "instance-1"))
    assert beat.error_code == ErrorCode.none
    assert wire.call(heartbeat(group, old_id, generation, "instance-1")).error_code == \
        ErrorCode.fenced_instance_id
    fenced = wire.call(offset_commit(group, topic_name, {0: 0}, generation=generation, member_id=old_id,
                                     instance="instance-1"))
    assert commit_errors(fenced) == [ErrorCode.fenced_instance_id]
    left = wire2.call(leave(group, ("", "instance-1")))  # by instance ID alone, as the admin client does
    assert [m.error_code for m in left.members] == [ErrorCode.none]


def joined(connection: Wire) -> Any:
    return connection.receive(JOIN, 5)[1]


QUICK_REBALANCE_MS = 3_000  # how long a join phase waits for members that do not rejoin


def two_static_members(wire: Wire, wire2: Wire, group: str, session: int = 10_000) -> tuple[Any, Any]:
    """static-a (the leader) and static-b, Stable in generation 1: their JoinGroup responses."""
    for connection, name in ((wire, "a"), (wire2, "b")):
        connection.send(join(group, instance=f"static-{name}", rebalance=QUICK_REBALANCE_MS, session=session,
                             protocols=(("range", name.encode()),)))
    a, b = joined(wire), joined(wire2)
    assert a.generation_id == b.generation_id == 1 and a.leader == a.member_id
    wire.send(sync(group, a.member_id, 1, {a.member_id: b"A", b.member_id: b"B"}, instance="static-a"))
    wire2.send(sync(group, b.member_id, 1, instance="static-b"))
    assert wire.receive(SYNC, 3)[1].assignment == b"A"
    assert wire2.receive(SYNC, 3)[1].assignment == b"B"
    return a, b


def test_static_member_that_did_not_rejoin_stays_in_the_next_generation(
        wire: Wire, wire2: Wire, bootstrap: str, group: str) -> None:
    """KIP-345: a rebalance drops only dynamic members that did not rejoin (Kafka's completeClassicGroupJoin).

    Static members keep their place until their session expires, so a
    static consumer that is briefly away (a rolling restart) is not
    reassigned away. Before the fix static-b was dropped from generation 2.
    """
    quick = QUICK_REBALANCE_MS
    a, b = two_static_members(wire, wire2, group)

    # A dynamic member joins; static-a rejoins, static-b does not.
    wire3 = Wire(bootstrap)
    try:
        dynamic_id = wire3.call(join(group, rebalance=quick)).member_id
        wire3.send(join(group, dynamic_id, rebalance=quick))
        wire.send(join(group, a.member_id, instance="static-a", rebalance=quick,
                       protocols=(("range", b"a"),)))
        leader_view, dynamic = joined(wire), joined(wire3)
        assert leader_view.generation_id == dynamic.generation_id == 2
        members = {m.member_id: (m.group_instance_id, m.metadata) for m in leader_view.members}
        assert members == {a.member_id: ("static-a", b"a"), b.member_id: ("static-b", b"b"),
                           dynamic_id: (None, b"meta")}
        wire.send(sync(group, a.member_id, 2, {a.member_id: b"A2", b.member_id: b"B2", dynamic_id: b"D2"},
                       instance="static-a"))
        wire3.send(sync(group, dynamic_id, 2))
        assert wire.receive(SYNC, 3)[1].assignment == b"A2"
        assert wire3.receive(SYNC, 3)[1].assignment == b"D2"
        # static-b comes back with its member ID and gets generation 2 and its assignment, no rebalance.
        assert wire2.call(heartbeat(group, b.member_id, 1, "static-b")).error_code == \
            ErrorCode.illegal_generation
        back = wire2.call(join(group, b.member_id, instance="static-b", rebalance=quick,
                               protocols=(("range", b"b"),)))
        assert (back.error_code, back.generation_id) == (ErrorCode.none, 2)
        synced = wire2.call(sync(group, b.member_id, 2, instance="static-b"))
        assert (synced.error_code, synced.assignment) == (ErrorCode.none, b"B2")
    finally:
        wire3.close()


def test_a_join_phase_no_member_rejoined_waits_for_them(wire: Wire, wire2: Wire, bootstrap: str,
                                                         group: str) -> None:
    """Only static members that have not rejoined left: Kafka waits another rebalance timeout.

    It neither starts a generation nobody is told of nor drops them; their
    sessions (30 s here) decide.
    """
    a, _ = two_static_members(wire, wire2, group, session=30_000)
    newcomer, other = Wire(bootstrap), Wire(bootstrap)
    try:
        dynamic_id = newcomer.call(join(group, rebalance=QUICK_REBALANCE_MS)).member_id
        newcomer.send(join(group, dynamic_id, rebalance=QUICK_REBALANCE_MS))  # starts a rebalance
        wait_until(lambda: other.call(describe(group)).groups[0].group_state == "PreparingRebalance", 10,
                   "the newcomer's join to start a rebalance")
        left = other.call(leave(group, (dynamic_id, None)))
        assert [m.error_code for m in left.members] == [ErrorCode.none]
        assert joined(newcomer).error_code == ErrorCode.unknown_member_id
        time.sleep(QUICK_REBALANCE_MS / 1000 + 1)  # past the first rebalance timeout
        described = other.call(describe(group)).groups[0]
        assert described.group_state == "PreparingRebalance", described
        again = wire.call(join(group, a.member_id, instance="static-a", rebalance=QUICK_REBALANCE_MS,
                               session=30_000, protocols=(("range", b"a"),)))
        assert (again.error_code, again.generation_id, len(again.members)) == (ErrorCode.none, 2, 2)
    finally:
        newcomer.close()
        other.close()


def test_static_leader_rejoining_with_v9_skips_assignment(wire: Wire, wire2: Wire, group: str) -> None:
    old_id, generation = stable_member(wire, group, instance="instance-9")
    rejoined = wire2.call(join(group, version=9, instance="instance-9"))
    assert (rejoined.error_code, rejoined.skip_assignment, rejoined.leader) == (
        ErrorCode.none, True, rejoined.member_id)
    assert [m.group_instance_id for m in rejoined.members] == ["instance-9"]
    assert rejoined.generation_id == generation and old_id != rejoined.member_id


# -- offsets ---------------------------------------------------------------------------------------


def test_commit_checks_membership(wire: Wire, bootstrap: str, group: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 2)
    member_id, generation = stable_member(wire, group)
    ok = wire.call(offset_commit(group, topic_name, {0: 0, 1: 0}, generation=generation, member_id=member_id))
    assert commit_errors(ok) == [ErrorCode.none] * 2
    stale = wire.call(offset_commit(group, topic_name, {0: 0}, generation=generation - 1,
                                    member_id=member_id))
    assert commit_errors(stale) == [ErrorCode.illegal_generation]
    outsider = wire.call(offset_commit(group, topic_name, {0: 0}))
    assert commit_errors(outsider) == [ErrorCode.unknown_member_id]
    unknown_partition = wire.call(offset_commit(group, topic_name, {7: 0}, generation=generation,
                                                member_id=member_id))
    assert commit_errors(unknown_partition) == [ErrorCode.unknown_topic_or_partition]
    too_big = wire.call(offset_commit(group, topic_name, {0: 0}, generation=generation, member_id=member_id,
                                      metadata="x" * 4097))
    assert commit_errors(too_big) == [ErrorCode.offset_metadata_too_large]


def test_offset_fetch_several_groups_and_all_partitions(wire: Wire, bootstrap: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 3)
    produce_numbered(bootstrap, topic_name, 0, 30, 3)
    one, two = f"g1-{uuid.uuid4().hex[:8]}", f"g2-{uuid.uuid4().hex[:8]}"
    assert commit_errors(wire.call(offset_commit(one, topic_name, {0: 4, 2: 1}, metadata="one"))) == [
        ErrorCode.none] * 2
    assert commit_errors(wire.call(offset_commit(two, topic_name, {1: 9}))) == [ErrorCode.none]
    types = request_types(OFFSET_FETCH, 8)
    asked = types.OffsetFetchRequest(require_stable=False, groups=(
        types.OffsetFetchRequestGroup(group_id=one, topics=(
            types.OffsetFetchRequestTopics(name=topic_name, partition_indexes=(0, 1, 2)),
            types.OffsetFetchRequestTopics(name="no-such-topic", partition_indexes=(0,)))),
        types.OffsetFetchRequestGroup(group_id=two, topics=None),
    ))
    first, second = wire.call(asked).groups
    assert [(p.partition_index, p.committed_offset, p.metadata) for p in first.topics[0].partitions] == [
        (0, 4, "one"), (1, -1, ""), (2, 1, "one")]
    assert [p.committed_offset for p in first.topics[1].partitions] == [-1]
    everything = [(t.name, [(p.partition_index, p.committed_offset) for p in t.partitions])
                  for t in second.topics]
    assert everything == [(topic_name, [(1, 9)])]
    # v1 (one group, named partitions) reads the same state.
    v1 = request_types(OFFSET_FETCH, 1)
    old = wire.call(v1.OffsetFetchRequest(group_id=one, topics=(
        v1.OffsetFetchRequestTopic(name=topic_name, partition_indexes=(0,)),)))
    assert old.topics[0].partitions[0].committed_offset == 4


@pytest.mark.parametrize("offset", [2**53 + 1, 2**63 - 1])
def test_commits_above_2_53_read_back_exactly(wire: Wire, bootstrap: str, group: str, topic_name: str,
                                              redis_client: redis.Redis, offset: int) -> None:
    """Kafka offsets are 64-bit; Lua numbers are doubles, exact only up to 2^53 (#19)."""
    create_topic(bootstrap, topic_name, 1)
    produce_numbered(bootstrap, topic_name, 0, 3, 1)
    assert commit_errors(wire.call(offset_commit(group, topic_name, {0: offset}, metadata="m"))) == [
        ErrorCode.none]
    types = request_types(OFFSET_FETCH, 8)
    fetched = wire.call(types.OffsetFetchRequest(require_stable=False, groups=(
        types.OffsetFetchRequestGroup(group_id=group, topics=(
            types.OffsetFetchRequestTopics(name=topic_name, partition_indexes=(0,)),)),)))
    partition = fetched.groups[0].topics[0].partitions[0]
    assert (partition.committed_offset, partition.metadata) == (offset, "m")
    # The Redis group holds it exactly too (past the log end: at the last entry).
    (info,) = redis_client.xinfo_groups(f"kafka:{{{topic_name}:0}}")
    assert info["entries-read"] == offset


def test_offset_delete(wire: Wire, wire2: Wire, bootstrap: str, group: str, topic_name: str,
                       redis_client: redis.Redis) -> None:
    create_topic(bootstrap, topic_name, 1)
    other = f"{topic_name}-other"
    create_topic(bootstrap, other, 1)
    for topic in (topic_name, other):
        assert commit_errors(wire.call(offset_commit(group, topic, {0: 0}))) == [ErrorCode.none]
    # An active member subscribed to topic_name keeps its offsets; the other topic's may go.
    joined = wire2.call(join(group, version=3, protocols=(("range", subscription(topic_name)),)))
    types = request_types(OFFSET_DELETE, 0)
    request = types.OffsetDeleteRequest(group_id=group, topics=tuple(
        types.OffsetDeleteRequestTopic(name=t,
                                       partitions=(types.OffsetDeleteRequestPartition(partition_index=0),))
        for t in (topic_name, other)))
    answer = wire.call(request)
    assert answer.error_code == ErrorCode.none
    assert [t.partitions[0].error_code for t in answer.topics] == [
        ErrorCode.group_subscribed_to_topic, ErrorCode.none]
    assert [g["name"] for g in redis_client.xinfo_groups(f"kafka:{{{other}:0}}")] == []
    assert [g["name"] for g in redis_client.xinfo_groups(f"kafka:{{{topic_name}:0}}")] == [group.encode()]
    wire2.call(leave(group, (joined.member_id, None)))
    missing = wire.call(types.OffsetDeleteRequest(group_id=f"{group}-none", topics=()))
    assert missing.error_code == ErrorCode.group_id_not_found


# -- administration ----------------------------------------------------------------------------------


def test_describe_unknown_group(wire: Wire) -> None:
    (old,) = wire.call(describe("no-such-group", version=5)).groups
    assert (old.error_code, old.group_state) == (ErrorCode.none, "Dead")
    (new,) = wire.call(describe("no-such-group", version=6)).groups
    assert (new.error_code, new.group_state) == (ErrorCode.group_id_not_found, "Dead")


def test_list_groups_filters_by_state(wire: Wire, wire2: Wire, bootstrap: str, group: str,
                                      topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 1)
    stable_member(wire, group)
    empty = f"{group}-empty"
    wire2.call(offset_commit(empty, topic_name, {0: 0}))
    types = request_types(LIST, 5)

    def listed(*states: str) -> dict[str, tuple[str, str]]:
        answer = wire2.call(types.ListGroupsRequest(states_filter=states, types_filter=()))
        return {g.group_id: (g.group_state, g.group_type) for g in answer.groups}

    assert listed("Stable")[group] == ("Stable", "classic")
    assert empty not in listed("Stable")
    assert listed("empty")[empty] == ("Empty", "classic")  # Kafka matches states case-insensitively
    assert {group, empty} <= set(listed())
    v0 = wire2.call(request_types(LIST, 0).ListGroupsRequest())
    assert group in {g.group_id for g in v0.groups}


def test_delete_groups(wire: Wire, wire2: Wire, bootstrap: str, group: str, topic_name: str,
                       redis_client: redis.Redis) -> None:
    create_topic(bootstrap, topic_name, 1)
    stable_member(wire, group)
    empty = f"{group}-empty"
    wire2.call(offset_commit(empty, topic_name, {0: 0}))
    types = request_types(DELETE, 2)
    answer = wire2.call(types.DeleteGroupsRequest(groups_names=(group, empty, f"{group}-none")))
    assert [r.error_code for r in answer.results] == [
        ErrorCode.non_empty_group, ErrorCode.none, ErrorCode.group_id_not_found]
    assert redis_client.xinfo_groups(f"kafka:{{{topic_name}:0}}") == []


# -- Redis away ----------------------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_membership_survives_a_gateway_restart(own_redis: RedisServer, tmp_path: Path, group: str,
                                               topic_name: str) -> None:
    # A Redis of its own: on the session one, the session gateway might be
    # the group's coordinator.
    redis_client = own_redis.client()
    gateway = GatewayProcess(own_redis.url, log_path=tmp_path / "gateway.log").start()
    wire = Wire(gateway.bootstrap)
    try:
        create_topic(gateway.bootstrap, topic_name, 1)
        member_id, generation = stable_member(wire, group)
        wire.close()
        gateway.stop()
        gateway.start()
        wire = Wire(gateway.bootstrap)
        # The new process knows the member, its generation and its assignment
        # from Redis: no UNKNOWN_MEMBER_ID, so no rejoin and no rebalance.
        assert wire.call(heartbeat(group, member_id, generation)).error_code == ErrorCode.none
        committed = wire.call(offset_commit(group, topic_name, {0: 0}, generation=generation,
                                            member_id=member_id))
        assert commit_errors(committed) == [ErrorCode.none]
        (described,) = wire.call(describe(group)).groups
        assert (described.group_state, [(m.member_id, m.member_metadata, m.member_assignment)
                                        for m in described.members]) == (
            "Stable", [(member_id, b"meta", b"A")])
        assert wire.call(heartbeat(group, member_id, generation - 1)).error_code == \
            ErrorCode.illegal_generation
        # Leaving empties the group in a new generation, which is stored too.
        assert wire.call(leave(group, (member_id, None))).members[0].error_code == ErrorCode.none
        wire.close()
        gateway.stop()
        assert int(redis_client.hget(f"kafka:group:{group}", "generation")) == generation + 1
        gateway.start()
        wire = Wire(gateway.bootstrap)
        (described,) = wire.call(describe(group)).groups
        assert (described.group_state, described.members) == ("Empty", ())
        assert wire.call(heartbeat(group, member_id, generation)).error_code == ErrorCode.unknown_member_id
        _, next_generation = stable_member(wire, group)
        assert next_generation == generation + 2
    finally:
        wire.close()
        gateway.stop()


def test_coordinator_not_available_while_redis_is_down(own_redis: RedisServer, tmp_path: Path) -> None:
    gateway = GatewayProcess(own_redis.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--redis-timeout", "1"]).start()
    try:
        create_topic(gateway.bootstrap, "t", 1)
        wire = Wire(gateway.bootstrap)
        find = build(request_types(FIND_COORDINATOR, 3).FindCoordinatorRequest, key="g", key_type=0)
        own_redis.stop()
        assert wire.call(find).error_code == ErrorCode.coordinator_not_available
        assert wire.call(join("g", version=3)).error_code == ErrorCode.coordinator_not_available
        unavailable = wire.call(offset_commit("g", "t", {0: 0}))
        assert commit_errors(unavailable) == [ErrorCode.coordinator_not_available]
        own_redis.start()
        assert wire.call(find).error_code == ErrorCode.none
        assert commit_errors(wire.call(offset_commit("g", "t", {0: 0}))) == [ErrorCode.none]
        wire.close()
    finally:
        gateway.stop()


# Run in a child process: librdkafka's crash (SIGSEGV) must not take pytest down.
LIST_GROUP_OFFSETS = """
import sys
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

admin = AdminClient({"bootstrap.servers": sys.argv[1]})
request = ConsumerGroupTopicPartitions(sys.argv[2], [TopicPartition(sys.argv[3], 0)])
future = admin.list_consumer_group_offsets([request], request_timeout=10)[sys.argv[2]]
try:
    print("offset", future.result().topic_partitions[0].offset)
except KafkaException as exc:
    print("error", exc.args[0].name())
"""


def list_group_offsets(bootstrap: str, group: str, topic: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LIST_GROUP_OFFSETS, bootstrap, group, topic],
                          capture_output=True, text=True, timeout=60)


def test_offset_fetch_while_redis_cannot_be_read(own_redis: RedisServer, tmp_path: Path) -> None:
    """COORDINATOR_LOAD_IN_PROGRESS for the group: Kafka's COORDINATOR_NOT_AVAILABLE crashes librdkafka.

    librdkafka's AdminClient answers a group-level COORDINATOR_NOT_AVAILABLE
    by asking its (absent) consumer-group handle to find the coordinator:
    SIGSEGV in list_consumer_group_offsets (#19). Redis's functions are
    flushed and writes paused, so FindCoordinator's PING still succeeds
    while the offsets read (the function is missing, and the FUNCTION LOAD
    the pause holds) times out, as in a Redis stall.
    """
    gateway = GatewayProcess(own_redis.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--redis-timeout", "1"]).start()
    client = own_redis.client()
    wire = Wire(gateway.bootstrap)
    try:
        create_topic(gateway.bootstrap, "t", 1)
        assert commit_errors(wire.call(offset_commit("g", "t", {0: 7}))) == [ErrorCode.none]
        client.function_flush()
        client.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        types = request_types(OFFSET_FETCH, 8)
        (answer,) = wire.call(types.OffsetFetchRequest(require_stable=False, groups=(
            types.OffsetFetchRequestGroup(group_id="g", topics=(
                types.OffsetFetchRequestTopics(name="t", partition_indexes=(0,)),)),))).groups
        assert (answer.error_code, answer.topics) == (ErrorCode.coordinator_load_in_progress, ())
        unavailable = list_group_offsets(gateway.bootstrap, "g", "t")
        assert unavailable.returncode == 0, unavailable  # not -11 (SIGSEGV)
        assert unavailable.stdout.strip() == "error COORDINATOR_LOAD_IN_PROGRESS"
        client.execute_command("CLIENT", "UNPAUSE")
        recovered = list_group_offsets(gateway.bootstrap, "g", "t")
        assert (recovered.returncode, recovered.stdout.strip()) == (0, "offset 7")
    finally:
        wire.close()
        client.close()
        gateway.stop()
