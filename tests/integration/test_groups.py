"""Committed offsets are Redis consumer groups; admin tools; restarts.

A commit of offset N for group G leaves the Redis consumer group G on the
partition's stream at the entry of offset N-1 with entries-read N, so
Redis-native XREADGROUP readers continue exactly where Kafka left off, and
what they read and acknowledge is what Kafka clients see as committed.
The scenarios with group members (three over six partitions, crashes,
joins, static members, cooperative-sticky) are in test_group_members.py.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.integration.groups_support import (
    MemberProcess,
    committed_offsets,
    consumed,
    create_topic,
    produce_numbered,
    wait_settled,
    wait_until,
)
from tests.servers import GatewayProcess, RedisServer

KCAT = shutil.which("kcat")


def stream(topic: str, partition: int = 0) -> str:
    return f"kafka:{{{topic}:{partition}}}"


def entry_ids(redis_client: redis.Redis, topic: str, partition: int = 0) -> list[bytes]:
    return [entry_id for entry_id, _ in redis_client.xrange(stream(topic, partition))]


def redis_group(redis_client: redis.Redis, topic: str, group: str, partition: int = 0) -> dict | None:
    for info in redis_client.xinfo_groups(stream(topic, partition)):
        if info["name"].decode() == group:
            return info  # type: ignore[no-any-return]
    return None


def commit(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    """Commit explicit offsets as a client outside group management does (generation -1)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, offsets)
    admin.alter_consumer_group_offsets([request])[group].result(timeout=30)


def fetch(bootstrap: str, group: str, topic: str, partitions: int = 1) -> list[TopicPartition]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    return list(admin.list_consumer_group_offsets([request])[group].result(timeout=30).topic_partitions)


@pytest.fixture
def group_id() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def ten_records(bootstrap: str, topic_name: str) -> list[str]:
    create_topic(bootstrap, topic_name, 1)
    return produce_numbered(bootstrap, topic_name, 0, 10, 1)


# -- the mapping -------------------------------------------------------------------------


def test_commit_sets_the_redis_group_at_entry_n_minus_1(bootstrap: str, topic_name: str, group_id: str,
                                                      ten_records: list[str],
                                                      redis_client: redis.Redis) -> None:
    ids = entry_ids(redis_client, topic_name)
    commit(bootstrap, group_id, [TopicPartition(topic_name, 0, 4, metadata="checkpoint-4")])
    info = redis_group(redis_client, topic_name, group_id)
    assert info is not None
    assert (info["last-delivered-id"], info["entries-read"], info["lag"]) == (ids[3], 4, 6)
    (fetched,) = fetch(bootstrap, group_id, topic_name)
    assert (fetched.offset, fetched.metadata) == (4, "checkpoint-4")

    commit(bootstrap, group_id, [TopicPartition(topic_name, 0, 0)])
    info = redis_group(redis_client, topic_name, group_id)
    assert info is not None
    assert (info["last-delivered-id"], info["entries-read"], info["lag"]) == (b"0-0", 0, 10)

    commit(bootstrap, group_id, [TopicPartition(topic_name, 0, 10)])
    info = redis_group(redis_client, topic_name, group_id)
    assert info is not None
    assert (info["last-delivered-id"], info["entries-read"], info["lag"]) == (ids[9], 10, 0)


def test_commit_below_the_log_start_points_at_0_0(bootstrap: str, topic_name: str, group_id: str,
                                                 ten_records: list[str], redis_client: redis.Redis) -> None:
    redis_client.xtrim(stream(topic_name), maxlen=5, approximate=False)  # log start offset 5
    commit(bootstrap, group_id, [TopicPartition(topic_name, 0, 3)])
    info = redis_group(redis_client, topic_name, group_id)
    assert info is not None
    assert (info["last-delivered-id"], info["entries-read"]) == (b"0-0", 3)
    assert fetch(bootstrap, group_id, topic_name)[0].offset == 3


def test_xreadgroup_continues_after_a_kafka_commit(bootstrap: str, topic_name: str, group_id: str,
                                                   ten_records: list[str], redis_client: redis.Redis) -> None:
    commit(bootstrap, group_id, [TopicPartition(topic_name, 0, 6)])
    reply = redis_client.xreadgroup(group_id, "worker", {stream(topic_name): ">"}, count=100)
    entries = reply[0][1]
    assert [fields[b"value"].decode() for _, fields in entries] == ten_records[6:]


def test_native_reads_become_the_committed_offset(bootstrap: str, topic_name: str, group_id: str,
                                                  ten_records: list[str], redis_client: redis.Redis) -> None:
    commit(bootstrap, group_id, [TopicPartition(topic_name, 0, 2, metadata="from kafka")])
    reply = redis_client.xreadgroup(group_id, "worker", {stream(topic_name): ">"}, count=3)
    read_ids = [entry_id for entry_id, _ in reply[0][1]]
    redis_client.xack(stream(topic_name), group_id, *read_ids)
    (fetched,) = fetch(bootstrap, group_id, topic_name)
    # The metadata belonged to offset 2; the native readers moved on (librdkafka shows "" as None).
    assert (fetched.offset, fetched.metadata) == (5, None)


def test_native_group_at_an_explicit_id_reads_as_an_offset(bootstrap: str, topic_name: str, group_id: str,
                                                           ten_records: list[str],
                                                           redis_client: redis.Redis) -> None:
    ids = entry_ids(redis_client, topic_name)
    # Created natively without ENTRIESREAD: Redis does not know how far it
    # is, so the gateway works it out from last-delivered-id.
    redis_client.xgroup_create(stream(topic_name), group_id, id=ids[4])
    assert redis_group(redis_client, topic_name, group_id)["entries-read"] is None  # type: ignore[index]
    assert fetch(bootstrap, group_id, topic_name)[0].offset == 5


def test_kafka_consumer_continues_where_native_readers_stopped(bootstrap: str, topic_name: str,
                                                               group_id: str, ten_records: list[str],
                                                               redis_client: redis.Redis) -> None:
    redis_client.xgroup_create(stream(topic_name), group_id, id="0", mkstream=True)
    redis_client.xreadgroup(group_id, "worker", {stream(topic_name): ">"}, count=7)
    member = MemberProcess("confluent", bootstrap, topic_name, group_id, "after-native").start()
    try:
        wait_until(lambda: len(member.records()) >= 3, 60, "the Kafka consumer to read the rest")
        assert [value for _, _, value in member.records()] == ten_records[7:]
    finally:
        member.stop()


# -- admin tools ---------------------------------------------------------------------------


def test_admin_client_alters_and_lists_offsets(bootstrap: str, topic_name: str, group_id: str,
                                               redis_client: redis.Redis) -> None:
    create_topic(bootstrap, topic_name, 3)
    produce_numbered(bootstrap, topic_name, 0, 30, 3)
    commit(bootstrap, group_id, [TopicPartition(topic_name, 0, 1), TopicPartition(topic_name, 1, 10),
                                 TopicPartition(topic_name, 2, 0, metadata="m2")])
    assert committed_offsets(bootstrap, group_id, topic_name, 3) == {0: 1, 1: 10, 2: 0}
    # All partitions (no partitions named): what the group committed on.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)])[group_id]
    found = {(tp.topic, tp.partition): (tp.offset, tp.metadata or "")
             for tp in listed.result(timeout=30).topic_partitions}
    assert found == {(topic_name, 0): (1, ""), (topic_name, 1): (10, ""), (topic_name, 2): (0, "m2")}


def test_admin_client_describes_lists_and_deletes_groups(bootstrap: str, topic_name: str, group_id: str,
                                                         redis_client: redis.Redis) -> None:
    create_topic(bootstrap, topic_name, 2)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    member = MemberProcess("confluent", bootstrap, topic_name, group_id, "described").start()
    try:
        wait_settled([member], 2)
        produce_numbered(bootstrap, topic_name, 0, 4, 2)
        wait_until(lambda: len(member.records()) == 4, 60, "the records to be consumed")
        description = admin.describe_consumer_groups([group_id])[group_id].result(timeout=30)
        assert description.state == ConsumerGroupState.STABLE
        assert description.partition_assignor == "range"
        (described,) = description.members
        assert described.client_id == "described"
        assert {tp.partition for tp in described.assignment.topic_partitions} == {0, 1}
        listed = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(timeout=30)
        assert group_id in {g.group_id for g in listed.valid}
        with pytest.raises(KafkaException) as refused:
            admin.delete_consumer_groups([group_id])[group_id].result(timeout=30)
        assert "NON_EMPTY_GROUP" in str(refused.value)
    finally:
        member.stop()
    wait_until(lambda: admin.describe_consumer_groups([group_id])[group_id].result(timeout=30).state
               == ConsumerGroupState.EMPTY, 30, "the group to be empty")
    listed = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(timeout=30)
    assert group_id in {g.group_id for g in listed.valid}
    assert redis_group(redis_client, topic_name, group_id) is not None
    admin.delete_consumer_groups([group_id])[group_id].result(timeout=30)
    # Deleting the Kafka group removed its Redis consumer groups.
    assert all(redis_group(redis_client, topic_name, group_id, p) is None for p in range(2))
    assert group_id not in {g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid}
    with pytest.raises(KafkaException) as missing:
        admin.delete_consumer_groups([group_id])[group_id].result(timeout=30)
    assert "GROUP_ID_NOT_FOUND" in str(missing.value)


# -- restarts --------------------------------------------------------------------------------


@pytest.fixture
def own_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway of this test's own, which it may restart (on the same port).

    On a Redis of its own: on the session one it would be one of a cluster,
    and a restart would move groups between gateways.
    """
    redis_server = RedisServer(tmp_path / "redis").start()
    process = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log").start()
    yield process
    process.stop()
    redis_server.stop()


def test_members_resume_from_commits_across_a_gateway_restart(own_gateway: GatewayProcess, topic_name: str,
                                                              group_id: str) -> None:
    bootstrap = own_gateway.bootstrap
    create_topic(bootstrap, topic_name, 3)
    # Sessions longer than the restart takes on a busy machine: a member
    # whose heartbeats fail for a whole session gives up its assignment itself.
    group = [MemberProcess("confluent", bootstrap, topic_name, group_id, f"m{i}",
                           session_timeout_ms=30_000).start() for i in range(2)]
    try:
        wait_settled(group, 3)
        first = produce_numbered(bootstrap, topic_name, 0, 150, 3)
        wait_until(lambda: set(consumed(group)) >= set(first), 60, "the first records")
        committed = committed_offsets(bootstrap, group_id, topic_name, 3)
        assignments = [(m.assignment(), m.assignment_changes()) for m in group]
        own_gateway.stop()
        own_gateway.start()
        # The commits and the membership are in Redis.
        assert committed_offsets(bootstrap, group_id, topic_name, 3) == committed
        second = produce_numbered(bootstrap, topic_name, 150, 150, 3)
        wait_until(lambda: set(consumed(group)) >= set(first) | set(second), 90,
                   "the members to rejoin and read on")
        assert set(consumed(group)) == set(first) | set(second)
        assert max(consumed(group).values()) == 1, "a record was read twice after the restart"
        # The new gateway process carried on with the stored generation: no rebalance.
        assert [(m.assignment(), m.assignment_changes()) for m in group] == assignments
    finally:
        for member in group:
            member.stop()


def test_commit_metadata_survives_a_gateway_restart(own_gateway: GatewayProcess, topic_name: str,
                                                    group_id: str) -> None:
    bootstrap = own_gateway.bootstrap
    create_topic(bootstrap, topic_name, 2)
    produce_numbered(bootstrap, topic_name, 0, 20, 2)
    commit(bootstrap, group_id, [TopicPartition(topic_name, 0, 7, metadata="seven"),
                                 TopicPartition(topic_name, 1, 3, metadata="three")])
    own_gateway.stop()
    own_gateway.start()
    assert [(tp.offset, tp.metadata) for tp in fetch(bootstrap, group_id, topic_name, 2)] == [
        (7, "seven"), (3, "three")]
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: a dropped client drops its futures
    description = admin.describe_consumer_groups([group_id])[group_id].result(timeout=30)
    assert description.state == ConsumerGroupState.EMPTY


# -- kcat -----------------------------------------------------------------------------------


@pytest.mark.skipif(KCAT is None, reason="kcat is not on PATH")
def test_kcat_balanced_consumer(bootstrap: str, topic_name: str, group_id: str) -> None:
    """librdkafka 2.0 (Debian's kcat) as a group member: FindCoordinator and JoinGroup v0 listed."""
    assert KCAT is not None
    create_topic(bootstrap, topic_name, 2)
    values = produce_numbered(bootstrap, topic_name, 0, 20, 2)
    done = subprocess.run([KCAT, "-b", bootstrap, "-G", group_id, "-q", "-e", "-f", "%s\\n",
                           "-X", "auto.offset.reset=earliest", topic_name],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(values)
    wait_until(lambda: committed_offsets(bootstrap, group_id, topic_name, 2) == {0: 10, 1: 10}, 30,
               "kcat's commits")
