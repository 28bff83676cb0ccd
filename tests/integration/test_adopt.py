"""Adopting existing streams as topics, without copying.

A native application's stream (``orders``) becomes a Kafka topic through
CreateTopics with ``redis.stream.keys`` (where the operator allowed it with
``--adopt-streams``) or the ``adopt`` subcommand; Kafka clients read its
history from offset 0 and write to it, Kafka commits land on it as Redis
consumer groups, and deleting the topic leaves the stream to the
application that owns it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from tests.integration.test_confluent import Rec, describe_topic, error_of, produce_ok, read_to_end, wait_all
from tests.integration.test_kcat import KCAT, kcat
from tests.servers import GatewayProcess, RedisServer, module_redis

# The keys this module's gateway lets CreateTopics adopt (--adopt-streams);
# the orders fixture and the refusal cases name keys that match.
ADOPTABLE = "orders-*,native-*"


# A Redis of this module's own: gateways on one Redis are one cluster, whose
# controller takes CreateTopics, so the session gateway must not be in it.
redis_server = module_redis()


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway of this module's own on the session Redis, with adoption allowed."""
    log = tmp_path_factory.mktemp("adopting-gateway") / "gateway.log"
    process = GatewayProcess(redis_server.url, log_path=log,
                             extra_args=["--adopt-streams", ADOPTABLE]).start()
    yield process
    process.stop()

ORDERS = [{"order_id": str(100 + i), "user_id": f"user:{i}", "amount": str(1000 * i)} for i in range(5)]


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


@pytest.fixture
def orders(redis_client: redis.Redis) -> str:
    """A stream a native application wrote before the gateway knew it."""
    key = f"orders-{uuid.uuid4().hex[:8]}"
    for fields in ORDERS:
        redis_client.xadd(key, fields)  # type: ignore[arg-type]
    return key


def adopt(admin: AdminClient, topic: str, streams: str, partitions: int = -1,
          **config: str) -> None:
    wait_all(admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                           config={"redis.stream.keys": streams, **config})]))


def gateway_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafka_redis_gateway.gateway", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_adopted_stream_is_read_from_offset_zero(admin: AdminClient, bootstrap: str,
                                                 redis_client: redis.Redis, orders: str,
                                                 topic_name: str) -> None:
    adopt(admin, topic_name, orders)
    found = read_to_end(bootstrap, topic_name)[0]
    assert [m.offset() for m in found] == [0, 1, 2, 3, 4]
    assert [json.loads(m.value()) for m in found] == ORDERS
    entry_ids = [entry_id for entry_id, _ in redis_client.xrange(orders)]
    assert [m.timestamp()[1] for m in found] == [int(i.split(b"-")[0]) for i in entry_ids]
    # No copy: the stream is still the only holder of the entries.
    assert redis_client.xlen(orders) == 5
    assert not redis_client.exists(f"kafka:{{{topic_name}:0}}")


@pytest.mark.skipif(KCAT is None, reason="kcat is not on PATH")
def test_kcat_reads_an_adopted_stream_from_offset_zero(admin: AdminClient, bootstrap: str,
                                                       orders: str, topic_name: str) -> None:
    adopt(admin, topic_name, orders, **{"redis.value.field": "amount", "redis.key.field": "order_id"})
    lines = kcat(bootstrap, "-C", "-t", topic_name, "-o", "beginning", "-e", "-f", "%o|%k|%s\\n")
    assert lines.splitlines() == [f"{i}|{o['order_id']}|{o['amount']}" for i, o in enumerate(ORDERS)]


def test_kafka_and_native_producers_share_an_adopted_stream(admin: AdminClient, bootstrap: str,
                                                            redis_client: redis.Redis, orders: str,
                                                            topic_name: str) -> None:
    adopt(admin, topic_name, orders)
    reports = produce_ok(bootstrap, topic_name, [Rec(0, b"k", b"from-kafka", [("h", b"1")])])
    assert reports[0].offset() == 5
    redis_client.xadd(orders, {"order_id": "999"})
    found = read_to_end(bootstrap, topic_name)[0]
    assert [m.offset() for m in found] == list(range(7))
    assert (found[5].key(), found[5].value(), found[5].headers()) == (b"k", b"from-kafka", [("h", b"1")])
    assert json.loads(found[6].value()) == {"order_id": "999"}
    # The Kafka record is a plain entry of the application's stream.
    _, fields = redis_client.xrange(orders)[5]
    assert fields[b"value"] == b"from-kafka" and fields[b"key"] == b"k"


def test_kafka_commit_on_an_adopted_stream_is_its_redis_group(admin: AdminClient, bootstrap: str,
                                                              redis_client: redis.Redis, orders: str,
                                                              topic_name: str) -> None:
    adopt(admin, topic_name, orders)
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic_name, 0, 3)], asynchronous=False)
        committed = consumer.committed([TopicPartition(topic_name, 0)], timeout=30)
        assert committed[0].offset == 3
    finally:
        consumer.close()
    (info,) = redis_client.xinfo_groups(orders)
    assert info["name"].decode() == group
    assert info["entries-read"] == 3 and info["lag"] == 2
    # A native worker in the same group continues at offset 3.
    reply = redis_client.xreadgroup(group, "worker", {orders: ">"}, count=10)
    assert [fields[b"order_id"].decode() for _, fields in reply[0][1]] == ["103", "104"]


def test_adopted_topic_shows_its_streams(admin: AdminClient, orders: str, topic_name: str) -> None:
    adopt(admin, topic_name, orders)
    configs = describe_topic(admin, topic_name)
    entry = configs["redis.stream.keys"]
    assert entry.value == orders and entry.is_read_only
    assert not configs["redis.value.field"].is_read_only


def test_adopted_streams_cannot_change(admin: AdminClient, orders: str, topic_name: str) -> None:
    adopt(admin, topic_name, orders)
    resource = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("redis.stream.keys", "orders-other", incremental_operation=AlterConfigOpType.SET)])
    (future,) = admin.incremental_alter_configs([resource]).values()
    assert error_of(future).code() == KafkaError.INVALID_CONFIG
    # Other configs still change, and the streams stay.
    resource = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)])
    wait_all(admin.incremental_alter_configs([resource]))
    configs = describe_topic(admin, topic_name)
    assert configs["redis.stream.keys"].value == orders
    assert configs["retention.ms"].value == "86400000"


@pytest.mark.parametrize(("make_key", "partitions", "code"), [
    (lambda r, k: r.hset(k, "a", "1") and k, -1, KafkaError.INVALID_CONFIG),   # not a stream
    (lambda r, k: "kafka:{x:0}", -1, KafkaError.INVALID_CONFIG),              # gateway's namespace
    (lambda r, k: "a{}b", -1, KafkaError.INVALID_CONFIG),                     # braces, no tag
    (lambda r, k: f"{k}-a,{k}-b", 3, KafkaError.INVALID_PARTITIONS),          # 2 streams, 3 partitions
    (lambda r, k: f"{k},{k}", -1, KafkaError.INVALID_CONFIG),                 # one stream twice
], ids=["hash", "reserved", "bad-braces", "partition-count", "twice"])
def test_adoption_refused(admin: AdminClient, redis_client: redis.Redis, topic_name: str,
                          make_key: Any, partitions: int, code: int) -> None:
    streams = make_key(redis_client, f"native-{uuid.uuid4().hex[:8]}")
    futures = admin.create_topics([NewTopic(topic_name, num_partitions=partitions,
                                            config={"redis.stream.keys": streams})])
    assert error_of(futures[topic_name]).code() == code
    assert topic_name not in admin.list_topics(timeout=30).topics


def test_a_stream_belongs_to_one_topic(admin: AdminClient, orders: str, topic_name: str) -> None:
    adopt(admin, topic_name, orders)
    futures = admin.create_topics([NewTopic(topic_name + "-2", num_partitions=-1,
                                            config={"redis.stream.keys": orders})])
    error = error_of(futures[topic_name + "-2"])
    assert error.code() == KafkaError.INVALID_CONFIG and topic_name in error.str()


def test_delete_leaves_the_stream_to_its_application(admin: AdminClient, bootstrap: str,
                                                     redis_client: redis.Redis, orders: str,
                                                     topic_name: str) -> None:
    adopt(admin, topic_name, orders)
    produce_ok(bootstrap, topic_name, [Rec(0, None, b"x")])  # writes the index and metadata keys
    assert redis_client.keys(f"kafka:{{{orders}}}:adopted:{orders}:*")
    wait_all(admin.delete_topics([topic_name]))
    assert redis_client.xlen(orders) == 6
    assert not redis_client.keys(f"kafka:{{{orders}}}:adopted:{orders}:*")
    # The stream can be adopted again.
    adopt(admin, topic_name + "-again", orders)
    assert len(read_to_end(bootstrap, topic_name + "-again")[0]) == 6


def test_partitions_added_to_an_adopted_topic_are_the_gateways_own(
        admin: AdminClient, bootstrap: str, redis_client: redis.Redis, orders: str,
        topic_name: str) -> None:
    adopt(admin, topic_name, orders)
    wait_all(admin.create_partitions([NewPartitions(topic_name, 2)]))
    produce_ok(bootstrap, topic_name, [Rec(1, b"k", b"new-partition")])
    assert redis_client.xlen(f"kafka:{{{topic_name}:1}}") == 1
    assert redis_client.xlen(orders) == 5


def test_adopt_subcommand_and_inspect(bootstrap: str, redis_server: RedisServer,
                                      redis_client: redis.Redis, topic_name: str) -> None:
    # Hash-tagged streams: the auxiliary keys take the stream's tag (one slot).
    streams = [f"{{{topic_name}-a}}:events", f"{{{topic_name}-b}}:events"]
    for partition, key in enumerate(streams):
        for i in range(3):
            redis_client.xadd(key, {"payload": f"p{partition}-{i}"})
    done = gateway_cli("adopt", topic_name, *streams, "--config", "redis.value.field=payload",
                       "--redis-url", redis_server.url)
    assert done.returncode == 0, done.stderr
    assert f"topic {topic_name} partition 1: stream {streams[1]}" in done.stdout
    found = read_to_end(bootstrap, topic_name, partitions=2)
    assert {p: [m.value() for m in msgs] for p, msgs in found.items()} == {
        p: [f"p{p}-{i}".encode() for i in range(3)] for p in range(2)}
    shown = gateway_cli("inspect", topic_name, "--json", "--redis-url", redis_server.url)
    assert shown.returncode == 0, shown.stderr
    (topic,) = json.loads(shown.stdout)
    assert [(p["stream"], p["adopted"], p["length"], p["start_offset"], p["end_offset"])
            for p in topic["partitions"]] == [(key, True, 3, 0, 3) for key in streams]
    text = gateway_cli("inspect", topic_name, "--redis-url", redis_server.url).stdout
    assert f"{streams[0]} (adopted) length 3" in text
    again = gateway_cli("adopt", topic_name + "-x", streams[0], "--redis-url", redis_server.url)
    assert again.returncode == 1 and "already topic" in again.stderr


def test_adoption_is_off_unless_the_operator_allows_it(
        topic_name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A gateway without --adopt-streams refuses CreateTopics with redis.stream.keys."""
    base = tmp_path_factory.mktemp("default-gateway")
    # A Redis of its own: on the module's, the adopting gateway would be in
    # its cluster, and maybe the controller that CreateTopics goes to.
    own_redis = RedisServer(base / "redis").start()
    redis_client = own_redis.client()
    orders = f"orders-{uuid.uuid4().hex[:8]}"
    for fields in ORDERS:
        redis_client.xadd(orders, fields)  # type: ignore[arg-type]
    default = GatewayProcess(own_redis.url, log_path=base / "gateway.log").start()
    try:
        admin = AdminClient({"bootstrap.servers": default.bootstrap})
        futures = admin.create_topics([NewTopic(topic_name, num_partitions=-1,
                                                config={"redis.stream.keys": orders})])
        error = error_of(futures[topic_name])
        assert error.code() == KafkaError.POLICY_VIOLATION
        assert "--adopt-streams" in error.str() and "kafka-redis-gateway adopt" in error.str()
        assert topic_name not in admin.list_topics(timeout=30).topics
        # Nothing touched the application's stream.
        assert redis_client.xlen(orders) == len(ORDERS)
        assert not redis_client.keys(f"kafka:{{{orders}}}:adopted:*")
    finally:
        default.stop()
        redis_client.close()
        own_redis.stop()


def test_only_keys_matching_the_patterns_are_adopted(admin: AdminClient, redis_client: redis.Redis,
                                                     topic_name: str) -> None:
    outside = f"app:payments-{uuid.uuid4().hex[:8]}"
    redis_client.xadd(outside, {"amount": "1"})
    futures = admin.create_topics([NewTopic(topic_name, num_partitions=-1,
                                            config={"redis.stream.keys": outside})])
    error = error_of(futures[topic_name])
    assert error.code() == KafkaError.POLICY_VIOLATION and outside in error.str()
    # One key outside the patterns refuses the whole topic.
    inside = f"orders-{uuid.uuid4().hex[:8]}"
    futures = admin.create_topics([NewTopic(topic_name, num_partitions=-1,
                                            config={"redis.stream.keys": f"{inside},{outside}"})])
    assert error_of(futures[topic_name]).code() == KafkaError.POLICY_VIOLATION
    assert topic_name not in admin.list_topics(timeout=30).topics


def test_altering_configs_cannot_adopt_a_stream(admin: AdminClient, redis_client: redis.Redis,
                                                topic_name: str) -> None:
    wait_all(admin.create_topics([NewTopic(topic_name, num_partitions=1)]))
    outside = f"app:payments-{uuid.uuid4().hex[:8]}"
    incremental = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("redis.stream.keys", outside, incremental_operation=AlterConfigOpType.SET)])
    (future,) = admin.incremental_alter_configs([incremental]).values()
    assert error_of(future).code() == KafkaError.POLICY_VIOLATION
    (future,) = admin.alter_configs([ConfigResource(ResourceType.TOPIC, topic_name,
                                                    set_config={"redis.stream.keys": outside})]).values()
    assert error_of(future).code() == KafkaError.POLICY_VIOLATION
    assert describe_topic(admin, topic_name)["redis.stream.keys"].value == ""
