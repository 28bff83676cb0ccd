"""Redis-native interop: native entries as records, DeleteRecords, retention, config changes.

Real confluent-kafka clients against the session gateway (and, for
retention, a gateway of its own that checks retention every 200 ms), with
redis-py writing and inspecting the streams natively.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from tests.integration.test_confluent import (
    BASE_TS,
    Rec,
    describe_topic,
    produce_ok,
    read_to_end,
    sample_records,
    wait_all,
)
from tests.servers import GatewayProcess, RedisServer, module_redis


def stream_key(topic: str, partition: int = 0) -> str:
    return f"kafka:{{{topic}:{partition}}}"


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create(admin: AdminClient, name: str, config: dict[str, str] | None = None, partitions: int = 1) -> None:
    wait_all(admin.create_topics([NewTopic(name, num_partitions=partitions, config=config or {})]))


def messages(bootstrap: str, topic: str) -> list[Message]:
    return read_to_end(bootstrap, topic)[0]


def low_watermark(bootstrap: str, topic: str, partition: int = 0) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        return int(low)
    finally:
        consumer.close()


# -- native entries as records ---------------------------------------------------


def test_native_xadd_is_the_next_offset_as_json(bootstrap: str, admin: AdminClient,
                                                  redis_client: redis.Redis, topic_name: str) -> None:
    create(admin, topic_name)
    produce_ok(bootstrap, topic_name, [Rec(0, b"k0", b"kafka-0", [("h", b"1")])])
    entry_id = redis_client.xadd(stream_key(topic_name),
                                 {"order_id": "123", "user_id": "user:100", "amount": "50000"})
    found = messages(bootstrap, topic_name)
    assert [m.offset() for m in found] == [0, 1]
    assert (found[0].key(), found[0].value(), found[0].headers()) == (b"k0", b"kafka-0", [("h", b"1")])
    native = found[1]
    assert native.key() is None
    assert json.loads(native.value()) == {"order_id": "123", "user_id": "user:100", "amount": "50000"}
    assert native.timestamp()[1] == int(entry_id.split(b"-")[0])


def test_native_non_utf8_bytes_are_escaped(bootstrap: str, admin: AdminClient,
                                           redis_client: redis.Redis, topic_name: str) -> None:
    create(admin, topic_name)
    raw = b"\xff\x00caf\xc3\xa9"
    redis_client.xadd(stream_key(topic_name), {b"blob": raw, b"note": "h\u00e9".encode()})
    (message,) = messages(bootstrap, topic_name)
    assert b"\\udcff" in message.value()
    decoded = json.loads(message.value())
    assert decoded["note"] == "h\u00e9"
    assert decoded["blob"].encode("utf-8", "surrogateescape") == raw


def test_native_value_and_key_fields(bootstrap: str, admin: AdminClient,
                                     redis_client: redis.Redis, topic_name: str) -> None:
    create(admin, topic_name, {"redis.value.field": "amount", "redis.key.field": "user_id"})
    redis_client.xadd(stream_key(topic_name), {"order_id": "123", "user_id": "user:100", "amount": "50000"})
    redis_client.xadd(stream_key(topic_name), {"order_id": "124"})  # no value or key field
    first, second = messages(bootstrap, topic_name)
    assert (first.key(), first.value(), first.headers()) == (b"user:100", b"50000", [("order_id", b"123")])
    assert (second.key(), second.value(), second.headers()) == (None, None, [("order_id", b"124")])
    configs = describe_topic(admin, topic_name)
    assert configs["redis.value.field"].value == "amount"


def test_gateway_records_come_back_byte_for_byte(bootstrap: str, admin: AdminClient, topic_name: str) -> None:
    # Mapping configs only apply to native entries; the gateway's own are untouched.
    create(admin, topic_name, {"redis.value.field": "amount"})
    records = [Rec(0, b"\x00\xffkey", b"\xc3(binary", [("h:x", b"\x80"), ("n", None)]),
               Rec(0, None, b""), Rec(0, b"", None)]
    produce_ok(bootstrap, topic_name, records)
    found = messages(bootstrap, topic_name)
    assert [(m.key(), m.value(), m.headers() or []) for m in found] == [
        (r.key, r.value, r.headers) for r in records]


@pytest.mark.parametrize("compression", ["producer", "gzip"])
def test_mixed_partition_reads_back_exactly(bootstrap: str, admin: AdminClient, redis_client: redis.Redis,
                                            topic_name: str, compression: str) -> None:
    # The fetch path encodes the gateway's own entries straight from their
    # fields and maps native ones in between; with values near the 1 MiB
    # read cap, reads stop between records of one produce batch.
    create(admin, topic_name, {"compression.type": compression})
    own = [Rec(0, r.key, r.value, r.headers, r.timestamp) for r in sample_records(1)[:14]]
    big = [Rec(0, b"big", bytes([i]) * 600_000, [("n", None)], BASE_TS - i) for i in range(3)]
    produce_ok(bootstrap, topic_name, own[:7])
    native_id = redis_client.xadd(stream_key(topic_name), {"order_id": "7"})
    hand_written_id = redis_client.xadd(stream_key(topic_name), {"value": "hand-written", "key": "k"})
    produce_ok(bootstrap, topic_name, own[7:] + big, **{"message.max.bytes": 4_000_000})
    expected = [(r.key, r.value, r.headers, r.timestamp) for r in own[:7]]
    expected += [(None, b'{"order_id":"7"}', [], int(native_id.split(b"-")[0])),
                 (b"k", b"hand-written", [], int(hand_written_id.split(b"-")[0]))]
    expected += [(r.key, r.value, r.headers, r.timestamp) for r in own[7:] + big]
    found = messages(bootstrap, topic_name)
    assert [m.offset() for m in found] == list(range(len(expected)))
    assert [(m.key(), m.value(), m.headers() or [], m.timestamp()[1]) for m in found] == expected
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaPythonPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=1 << 20)
    try:
        consumer.assign([KafkaPythonPartition(topic_name, 0)])
        consumer.seek_to_beginning()
        seen: list[Any] = []
        deadline = time.monotonic() + 60
        while len(seen) < len(expected) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                seen.extend(batch)
    finally:
        consumer.close()
    assert [(r.offset, r.key, r.value, list(r.headers), r.timestamp) for r in seen] == [
        (offset, *record) for offset, record in enumerate(expected)]


# -- DeleteRecords ------------------------------------------------------------------


def test_delete_records(bootstrap: str, admin: AdminClient, redis_client: redis.Redis,
                        topic_name: str) -> None:
    create(admin, topic_name)
    produce_ok(bootstrap, topic_name, [Rec(0, None, str(i).encode()) for i in range(10)])
    (result,) = wait_all(admin.delete_records([TopicPartition(topic_name, 0, 4)])).values()
    assert result.low_watermark == 4
    assert redis_client.xlen(stream_key(topic_name)) == 6
    assert [m.value() for m in messages(bootstrap, topic_name)] == [str(i).encode() for i in range(4, 10)]
    # Below the start trims nothing; -1 means the high watermark.
    (result,) = wait_all(admin.delete_records([TopicPartition(topic_name, 0, 2)])).values()
    assert result.low_watermark == 4
    (result,) = wait_all(admin.delete_records([TopicPartition(topic_name, 0, -1)])).values()
    assert result.low_watermark == 10
    assert redis_client.xlen(stream_key(topic_name)) == 0
    produce_ok(bootstrap, topic_name, [Rec(0, None, b"after")])
    assert [(m.offset(), m.value()) for m in messages(bootstrap, topic_name)] == [(10, b"after")]


def test_delete_records_refused(admin: AdminClient, topic_name: str) -> None:
    create(admin, topic_name)
    futures = admin.delete_records([TopicPartition(topic_name, 0, 5)])
    (future,) = futures.values()
    with pytest.raises(Exception) as caught:
        future.result(timeout=30)
    assert caught.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE


# -- configs ------------------------------------------------------------------------


def test_incremental_alter_configs(admin: AdminClient, topic_name: str) -> None:
    create(admin, topic_name, {"max.message.bytes": "5000"})
    resource = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    wait_all(admin.incremental_alter_configs([resource]))
    configs = describe_topic(admin, topic_name)
    assert configs["retention.ms"].value == "60000"
    assert configs["max.message.bytes"].is_default
    refused = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)])
    (future,) = admin.incremental_alter_configs([refused]).values()
    with pytest.raises(Exception) as caught:
        future.result(timeout=30)
    assert caught.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert describe_topic(admin, topic_name)["cleanup.policy"].value == "delete"


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_alter_configs_replaces(admin: AdminClient, topic_name: str) -> None:
    create(admin, topic_name, {"max.message.bytes": "5000"})
    wait_all(admin.alter_configs([ConfigResource(ResourceType.TOPIC, topic_name,
                                                 set_config={"retention.bytes": "1000000"})]))
    configs = describe_topic(admin, topic_name)
    assert configs["retention.bytes"].value == "1000000"
    assert configs["max.message.bytes"].is_default


# -- retention ----------------------------------------------------------------------


# A Redis of the retention tests' own: on the session one, the session
# gateway would be the cluster's controller, which is the gateway that trims.
quick_redis = module_redis("quick_redis")


@pytest.fixture
def quick_client(quick_redis: RedisServer) -> Iterator[redis.Redis]:
    client = quick_redis.client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def quick_gateway(quick_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = Path(tmp_path_factory.mktemp("retention")) / "gateway.log"
    process = GatewayProcess(quick_redis.url, log_path=log,
                             extra_args=["--retention-check-interval-ms", "200"]).start()
    yield process.bootstrap
    process.stop()


def wait_for(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_retention_ms_trims_and_consumers_reset(quick_gateway: str, quick_client: redis.Redis,
                                                topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": quick_gateway})
    create(admin, topic_name)
    produce_ok(quick_gateway, topic_name, [Rec(0, None, f"old-{i}".encode()) for i in range(5)])
    time.sleep(1.5)  # the old records' append time is now at least 1.5 s ago
    produce_ok(quick_gateway, topic_name, [Rec(0, None, b"new-5")])
    resource = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    wait_all(admin.incremental_alter_configs([resource]))
    wait_for(lambda: low_watermark(quick_gateway, topic_name) == 5, "the log start to reach 5")
    assert quick_client.xlen(stream_key(topic_name)) <= 1
    index = quick_client.zrange(f"{stream_key(topic_name)}:idx", 0, -1, withscores=True)
    assert all(score >= 5 for _, score in index)

    # A consumer positioned below the log start resets by auto.offset.reset.
    consumer = Consumer({"bootstrap.servers": quick_gateway, "group.id": f"{topic_name}-g",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 1)])
        message = None
        deadline = time.monotonic() + 30
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is not None and message.error():
                message = None
        assert message is not None
        assert (message.offset(), message.value()) == (5, b"new-5")
    finally:
        consumer.close()


def test_retention_bytes_is_approximate(quick_gateway: str, quick_client: redis.Redis,
                                        topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": quick_gateway})
    create(admin, topic_name, {"retention.bytes": "20000"})
    produce_ok(quick_gateway, topic_name, [Rec(0, None, b"x" * 200) for _ in range(2000)])
    key = stream_key(topic_name)
    # About 100 entries of ~200 bytes fit; "~" trims whole nodes, so allow
    # some slack. A check may run while the records are still arriving, so
    # wait for the one that comes after the last of them.
    wait_for(lambda: quick_client.xlen(key) <= 400, "size-based trimming to about 20,000 bytes")
    # A later check may trim again between the two reads: compare a pair
    # taken between checks.
    wait_for(lambda: low_watermark(quick_gateway, topic_name) == 2000 - quick_client.xlen(key),
             "log start offset = entries added - stream length")


def test_without_limits_nothing_is_trimmed(quick_gateway: str, quick_client: redis.Redis,
                                           topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": quick_gateway})
    create(admin, topic_name)
    produce_ok(quick_gateway, topic_name, [Rec(0, None, b"kept")])
    time.sleep(1)  # several retention checks
    assert quick_client.xlen(stream_key(topic_name)) == 1
    assert describe_topic(admin, topic_name)["retention.ms"].value == "-1"


# -- inspect ------------------------------------------------------------------------


def test_inspect(bootstrap: str, admin: AdminClient, redis_server: RedisServer,
                 redis_client: redis.Redis, topic_name: str) -> None:
    create(admin, topic_name)
    produce_ok(bootstrap, topic_name, [Rec(0, None, str(i).encode()) for i in range(3)])
    redis_client.xadd(stream_key(topic_name), {"order_id": "1"})
    wait_all(admin.delete_records([TopicPartition(topic_name, 0, 1)]))
    redis_client.xgroup_create(stream_key(topic_name), "workers", id="0")
    command = [sys.executable, "-m", "kafka_redis_gateway.gateway", "inspect", topic_name,
               "--redis-url", redis_server.url]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    (topic,) = json.loads(done.stdout)
    (partition,) = topic["partitions"]
    assert partition["stream"] == stream_key(topic_name)
    assert (partition["length"], partition["start_offset"], partition["end_offset"]) == (3, 1, 4)
    assert partition["memory_bytes"] > 0
    assert partition["first_id"] and partition["last_id"]
    (group,) = partition["groups"]
    assert (group["name"], group["kafka"], group["lag"]) == ("workers", False, 3)
    text = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"{stream_key(topic_name)} length 3 offsets 1..4" in text
    assert "redis group workers" in text
