"""Consumer groups with real clients, each member a process of its own.

Every scenario runs with confluent-kafka (librdkafka), kafka-python and
aiokafka: three members over six partitions, a member crashing, a member
joining mid-stream, a static member restarting. Members commit each record
synchronously, so the committed offsets, the AdminClient's view and the
Redis consumer groups (XINFO GROUPS) can be compared with the log end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.integration.groups_support import (
    CLIENTS,
    MemberProcess,
    assert_group_at_log_end,
    consumed,
    create_topic,
    produce_numbered,
    wait_settled,
    wait_until,
)

PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000  # the broker's minimum, so crashes are noticed soon


class Members:
    """Starts members and makes sure none outlives its test."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str) -> None:
        self.client, self.bootstrap, self.topic, self.group = client, bootstrap, topic, group
        self.started: list[MemberProcess] = []

    def start(self, name: str, **options: object) -> MemberProcess:
        member = MemberProcess(self.client, self.bootstrap, self.topic, self.group, name,
                               **options).start()  # type: ignore[arg-type]
        self.started.append(member)
        return member

    def stop_all(self) -> None:
        for member in self.started:
            member.stop()


@pytest.fixture(params=CLIENTS)
def members(request: pytest.FixtureRequest, bootstrap: str, topic_name: str) -> Iterator[Members]:
    create_topic(bootstrap, topic_name, PARTITIONS)
    started = Members(request.param, bootstrap, topic_name, f"g-{uuid.uuid4().hex[:10]}")
    yield started
    started.stop_all()


def test_three_members_share_six_partitions_exactly_once(members: Members,
                                                         redis_client: redis.Redis) -> None:
    group = [members.start(f"m{i}") for i in range(3)]
    wait_settled(group, PARTITIONS)
    assert all(len(m.assignment()) == 2 for m in group)
    values = produce_numbered(members.bootstrap, members.topic, 0, 600, PARTITIONS)
    wait_until(lambda: sum(consumed(group).values()) >= len(values), 60, "every record to be consumed")
    counts = consumed(group)
    assert set(counts) == set(values)
    assert max(counts.values()) == 1, [v for v, n in counts.items() if n > 1][:10]
    for member in group:  # each record came from a partition the member owned
        assert {p for p, _, _ in member.records()} <= member.assignment()
    assert_group_at_log_end(members.bootstrap, redis_client, members.topic, PARTITIONS, members.group)


def test_killed_member_partitions_move_to_the_others(members: Members, redis_client: redis.Redis) -> None:
    group = [members.start(f"m{i}", session_timeout_ms=SESSION_TIMEOUT_MS) for i in range(3)]
    wait_settled(group, PARTITIONS)
    first = produce_numbered(members.bootstrap, members.topic, 0, 300, PARTITIONS)
    wait_until(lambda: sum(consumed(group).values()) >= len(first), 60, "the first half to be consumed")
    victim, survivors = group[0], group[1:]
    orphaned = victim.assignment()
    victim.kill()
    killed_at = time.monotonic()
    second = produce_numbered(members.bootstrap, members.topic, 300, 300, PARTITIONS)
    wait_settled(survivors, PARTITIONS, timeout=60)
    moved_after = time.monotonic() - killed_at
    assert orphaned <= set().union(*(m.assignment() for m in survivors))
    # The crash is noticed when the session expires, not at the rebalance
    # timeout (300 s by default in every client): a generous functional bound.
    assert moved_after < SESSION_TIMEOUT_MS / 1000 + 20
    wait_until(lambda: set(second) <= set(consumed(survivors)), 60, "the survivors to finish every record")
    assert set(consumed(group)) == set(first) | set(second)
    assert_group_at_log_end(members.bootstrap, redis_client, members.topic, PARTITIONS, members.group)


def test_member_joining_mid_stream_takes_partitions(members: Members, redis_client: redis.Redis) -> None:
    group = [members.start(f"m{i}") for i in range(2)]
    wait_settled(group, PARTITIONS)
    first = produce_numbered(members.bootstrap, members.topic, 0, 300, PARTITIONS)
    wait_until(lambda: len(consumed(group)) > 50, 60, "consumption to be under way")
    newcomer = members.start("m2")
    group.append(newcomer)
    second = produce_numbered(members.bootstrap, members.topic, 300, 300, PARTITIONS)
    wait_settled(group, PARTITIONS)
    third = produce_numbered(members.bootstrap, members.topic, 600, 300, PARTITIONS)
    everything = set(first) | set(second) | set(third)
    wait_until(lambda: set(consumed(group)) >= everything, 60, "every record to be consumed")
    assert newcomer.records(), "the new member consumed nothing"
    assert set(consumed(group)) == everything
    assert_group_at_log_end(members.bootstrap, redis_client, members.topic, PARTITIONS, members.group)


def test_static_member_restarts_without_rebalance(members: Members, redis_client: redis.Redis) -> None:
    options = {"session_timeout_ms": 30_000}
    a = members.start("a", instance_id="instance-a", **options)
    b = members.start("b", instance_id="instance-b", **options)
    wait_settled([a, b], PARTITIONS)
    a_partitions, b_changes = a.assignment(), b.assignment_changes()
    a.kill()
    restarted = members.start("a2", instance_id="instance-a", **options)
    wait_until(lambda: restarted.assignment() == a_partitions, 60,
               "the restarted instance to get its partitions back")
    values = produce_numbered(members.bootstrap, members.topic, 0, 120, PARTITIONS)
    wait_until(lambda: set(consumed([a, b, restarted])) >= set(values), 60, "every record to be consumed")
    # No rebalance: b was never asked to give up or take partitions.
    # (kafka-python reports an empty revocation before its first assignment.)
    assert b.assignment_changes() == b_changes
    assert not any(b.revocations())
    assert {p for p, _, _ in restarted.records()} <= a_partitions
    assert_group_at_log_end(members.bootstrap, redis_client, members.topic, PARTITIONS, members.group)


def test_cooperative_sticky_moves_only_what_it_must(bootstrap: str, topic_name: str,
                                                    redis_client: redis.Redis) -> None:
    create_topic(bootstrap, topic_name, PARTITIONS)
    members = Members("confluent", bootstrap, topic_name, f"g-{uuid.uuid4().hex[:10]}")
    try:
        group = [members.start(f"m{i}", strategy="cooperative-sticky") for i in range(2)]
        wait_settled(group, PARTITIONS)
        before = [m.assignment() for m in group]
        first = produce_numbered(bootstrap, topic_name, 0, 300, PARTITIONS)
        group.append(members.start("m2", strategy="cooperative-sticky"))
        wait_settled(group, PARTITIONS)
        # Incremental: the old members gave up only the partitions the
        # newcomer took and kept the rest throughout.
        for member, owned in zip(group[:2], before, strict=True):
            assert member.assignment() <= owned
            revoked = set().union(*member.revocations())
            assert revoked == owned - member.assignment()
        assert group[2].assignment() == set().union(*before) - group[0].assignment() - group[1].assignment()
        second = produce_numbered(bootstrap, topic_name, 300, 300, PARTITIONS)
        wait_until(lambda: set(consumed(group)) >= set(first) | set(second), 60, "every record")
        assert_group_at_log_end(bootstrap, redis_client, topic_name, PARTITIONS, members.group)
    finally:
        members.stop_all()
