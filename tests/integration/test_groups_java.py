"""kafka-consumer-groups.sh (Kafka's Java AdminClient) against the gateway's groups.

--list, --describe, --reset-offsets (earliest, latest, a datetime, an offset)
with --execute, --delete-offsets and --delete: each result is checked in the
tool's output, through the AdminClient and in the Redis consumer groups.
"""

from __future__ import annotations

import datetime
import time
import uuid

import pytest
import redis

from tests.integration.groups_support import (
    MemberProcess,
    committed_offsets,
    create_topic,
    produce_numbered,
    wait_settled,
    wait_until,
)
from tests.integration.test_java_tools import BIN, ok, tool

pytestmark = pytest.mark.skipif(not (BIN / "kafka-consumer-groups.sh").exists(),
                                reason=f"no Kafka tools in {BIN}")


def groups_tool(bootstrap: str, *args: str) -> str:
    return ok(tool("kafka-consumer-groups.sh", "--bootstrap-server", bootstrap, *args))


def reset(bootstrap: str, group: str, topic: str, *how: str) -> str:
    return groups_tool(bootstrap, "--group", group, "--topic", topic, "--reset-offsets", *how, "--execute")


def redis_position(redis_client: redis.Redis, topic: str, partition: int, group: str) -> int | None:
    for info in redis_client.xinfo_groups(f"kafka:{{{topic}:{partition}}}"):
        if info["name"].decode() == group:
            return int(info["entries-read"])
    return None


@pytest.fixture
def group() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


def test_list_and_describe_an_active_group(bootstrap: str, topic_name: str, group: str) -> None:
    create_topic(bootstrap, topic_name, 2)
    member = MemberProcess("confluent", bootstrap, topic_name, group, "java-described").start()
    try:
        wait_settled([member], 2)
        produce_numbered(bootstrap, topic_name, 0, 10, 2)
        wait_until(lambda: len(member.records()) == 10, 60, "the records to be consumed")
        assert group in groups_tool(bootstrap, "--list").split()
        described = groups_tool(bootstrap, "--describe", "--group", group)
        rows = [line.split() for line in described.splitlines() if line.startswith(group)]
        # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
        assert sorted((r[1], r[2], r[3], r[4], r[5], r[-1]) for r in rows) == [
            (topic_name, "0", "5", "5", "0", "java-described"),
            (topic_name, "1", "5", "5", "0", "java-described")]
        state = groups_tool(bootstrap, "--describe", "--group", group, "--state")
        assert "Stable" in state and "range" in state
        members = groups_tool(bootstrap, "--describe", "--group", group, "--members", "--verbose")
        (row,) = [line.split() for line in members.splitlines() if line.startswith(group)]
        # GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS ASSIGNMENT (this tools build prints the
        # assignment's partitions without the topic name, whatever the broker)
        assert (row[2], row[3], row[4], row[5]) == ("/127.0.0.1", "java-described", "2", "(0,1)")
        refused = tool("kafka-consumer-groups.sh", "--bootstrap-server", bootstrap, "--group", group,
                       "--topic", topic_name, "--reset-offsets", "--to-earliest", "--execute")
        assert "inactive" in refused.stdout + refused.stderr  # the tool refuses to reset an active group
    finally:
        member.stop()


def test_reset_offsets(bootstrap: str, topic_name: str, group: str, redis_client: redis.Redis) -> None:
    create_topic(bootstrap, topic_name, 2)
    produce_numbered(bootstrap, topic_name, 0, 10, 2)
    time.sleep(0.05)
    middle = datetime.datetime.now(datetime.UTC)
    time.sleep(0.05)
    produce_numbered(bootstrap, topic_name, 10, 10, 2)

    reset(bootstrap, group, topic_name, "--to-latest")
    assert committed_offsets(bootstrap, group, topic_name, 2) == {0: 10, 1: 10}
    assert redis_position(redis_client, topic_name, 0, group) == 10

    reset(bootstrap, group, topic_name, "--to-earliest")
    assert committed_offsets(bootstrap, group, topic_name, 2) == {0: 0, 1: 0}
    assert redis_position(redis_client, topic_name, 1, group) == 0

    reset(bootstrap, group, f"{topic_name}:1", "--to-offset", "7")
    assert committed_offsets(bootstrap, group, topic_name, 2) == {0: 0, 1: 7}

    stamp = middle.strftime("%Y-%m-%dT%H:%M:%S.") + f"{middle.microsecond // 1000:03d}"
    reset(bootstrap, group, topic_name, "--to-datetime", stamp)
    assert committed_offsets(bootstrap, group, topic_name, 2) == {0: 5, 1: 5}
    assert redis_position(redis_client, topic_name, 0, group) == 5

    described = groups_tool(bootstrap, "--describe", "--group", group)
    rows = [line.split() for line in described.splitlines() if line.startswith(group)]
    # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    assert sorted(tuple(r[1:]) for r in rows) == [
        (topic_name, "0", "5", "10", "5", "-", "-", "-"), (topic_name, "1", "5", "10", "5", "-", "-", "-")]


def test_delete_offsets_and_group(bootstrap: str, topic_name: str, group: str,
                                  redis_client: redis.Redis) -> None:
    create_topic(bootstrap, topic_name, 2)
    produce_numbered(bootstrap, topic_name, 0, 10, 2)
    reset(bootstrap, group, topic_name, "--to-latest")
    out = groups_tool(bootstrap, "--delete-offsets", "--group", group, "--topic", f"{topic_name}:0")
    assert "Successful" in out
    assert redis_position(redis_client, topic_name, 0, group) is None
    assert redis_position(redis_client, topic_name, 1, group) == 5
    out = groups_tool(bootstrap, "--delete", "--group", group)
    assert "successful" in out.lower()
    assert redis_position(redis_client, topic_name, 1, group) is None
    assert group not in groups_tool(bootstrap, "--list").split()
