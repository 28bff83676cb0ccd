"""Compacted topics (cleanup.policy=compact) through real clients on a real Redis.

The module has a Redis and a gateway of its own: the gateway is the
cluster's controller, which is the one that compacts, and it checks every
200 ms (--retention-check-interval-ms). Topics set segment.ms=100 so that
everything but the newest entry and the last 100 ms is cleanable, as a
Kafka topic with a rolled segment is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import confluent_kafka
import pytest
import redis
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka_redis_gateway.gateway.storage import (
    CompactionSettings,
    ReadRequest,
    ReadResult,
    RedisStorage,
    keys,
)

from tests.servers import GatewayProcess, RedisServer, module_redis

COMPACT = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}


# A Redis of this module's own, so that its gateway is the controller that compacts.
redis_server = module_redis()


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    log = tmp_path_factory.mktemp("compaction-gateway") / "gateway.log"
    process = GatewayProcess(redis_server.url, log_path=log,
                             extra_args=["--retention-check-interval-ms", "200"]).start()
    yield process
    process.stop()


def create(bootstrap: str, topic: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={**COMPACT, **configs})])[topic].result(30)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                         "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, value, key)
    assert producer.flush(30) == 0


def read_all(bootstrap: str, topic: str, *, group: str | None = None,
             commit: bool = False) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record from the group's position (or the beginning) to the end of the partition."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": group or "reader", "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "enable.partition.eof": True})
    if group is None:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    else:
        consumer.subscribe([topic])
    found = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None:
                continue
            if message.error():
                if message.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    break
                raise AssertionError(message.error())
            found.append((message.offset(), message.key(), message.value()))
        else:
            raise AssertionError(f"no end of partition within 30 s; got {found}")
        if commit:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return found


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), timeout=30)
        return int(low), int(high)
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def stream_length(redis_client: redis.Redis, topic: str) -> int:
    return int(redis_client.xlen(keys.stream(topic, 0)))


def test_latest_value_per_key_stays_at_its_original_offset(bootstrap: str, topic_name: str,
                                                           redis_client: redis.Redis) -> None:
    create(bootstrap, topic_name)
    produce(bootstrap, topic_name, [(b"k%d" % (i % 5), b"v%d" % i) for i in range(50)])
    time.sleep(0.2)  # older than segment.ms: cleanable
    produce(bootstrap, topic_name, [(b"last", b"newest")])
    wait_until(lambda: stream_length(redis_client, topic_name) == 6, "compaction to 6 entries")
    assert read_all(bootstrap, topic_name) == [
        *((45 + i, b"k%d" % i, b"v%d" % (45 + i)) for i in range(5)), (50, b"last", b"newest")]
    assert watermarks(bootstrap, topic_name) == (0, 51)
    # Native readers see each entry's offset as its ID's sequence number.
    ids = [entry_id for entry_id, _ in redis_client.xrange(keys.stream(topic_name, 0))]
    assert [int(entry_id.split(b"-")[1]) for entry_id in ids] == [45, 46, 47, 48, 49, 50]


def test_reads_from_inside_a_hole_start_at_the_next_record(bootstrap: str, topic_name: str,
                                                           redis_client: redis.Redis) -> None:
    create(bootstrap, topic_name)
    produce(bootstrap, topic_name, [(b"same", b"v%d" % i) for i in range(10)] + [(b"other", b"o")])
    time.sleep(0.2)
    produce(bootstrap, topic_name, [(b"last", b"newest")])
    wait_until(lambda: stream_length(redis_client, topic_name) == 3, "compaction to 3 entries")
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "hole-reader",
                                         "enable.partition.eof": True})
    consumer.assign([confluent_kafka.TopicPartition(topic_name, 0, 4)])
    try:
        message = consumer.poll(30)
        assert message is not None and not message.error()
        assert (message.offset(), message.value()) == (9, b"v9")
    finally:
        consumer.close()


def test_tombstones_are_kept_then_removed_after_delete_retention(bootstrap: str, topic_name: str,
                                                                redis_client: redis.Redis) -> None:
    create(bootstrap, topic_name, **{"delete.retention.ms": "3000"})
    produce(bootstrap, topic_name, [(b"gone", b"a"), (b"kept", b"b"), (b"gone", None)])
    time.sleep(0.2)
    produce(bootstrap, topic_name, [(b"last", b"newest")])
    wait_until(lambda: stream_length(redis_client, topic_name) == 3, "the superseded record removed")
    started = time.monotonic()
    assert read_all(bootstrap, topic_name) == [
        (1, b"kept", b"b"), (2, b"gone", None), (3, b"last", b"newest")]
    wait_until(lambda: stream_length(redis_client, topic_name) == 2, "the tombstone removed", timeout=30)
    assert time.monotonic() - started > 2  # kept for about delete.retention.ms after compaction
    assert read_all(bootstrap, topic_name) == [(1, b"kept", b"b"), (3, b"last", b"newest")]
    assert watermarks(bootstrap, topic_name) == (0, 4)
    assert redis_client.hget(keys.latest_by_key(topic_name, 0), b"gone") is None


def test_a_consumer_group_resumes_across_holes(bootstrap: str, topic_name: str,
                                               redis_client: redis.Redis) -> None:
    create(bootstrap, topic_name)
    produce(bootstrap, topic_name, [(b"x", b"x%d" % i) for i in range(10)]
            + [(b"u%d" % i, b"u") for i in range(10, 15)])
    group = f"{topic_name}-group"
    committer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        committer.commit(offsets=[confluent_kafka.TopicPartition(topic_name, 0, 5)], asynchronous=False)
    finally:
        committer.close()
    time.sleep(0.2)
    produce(bootstrap, topic_name, [(b"last", b"newest")])
    wait_until(lambda: stream_length(redis_client, topic_name) == 7, "compaction to 7 entries")
    # The committed offset (in a hole now) is unchanged, and the group goes on from the next record.
    assert read_all(bootstrap, topic_name, group=group, commit=True) == [
        (9, b"x", b"x9"), *((i, b"u%d" % i, b"u") for i in range(10, 15)), (15, b"last", b"newest")]
    checker = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (committed,) = checker.committed([confluent_kafka.TopicPartition(topic_name, 0)], timeout=30)
        assert committed.offset == 16
        # A commit into a hole after compaction: read back as given, resumed after it.
        checker.commit(offsets=[confluent_kafka.TopicPartition(topic_name, 0, 3)], asynchronous=False)
        (committed,) = checker.committed([confluent_kafka.TopicPartition(topic_name, 0)], timeout=30)
        assert committed.offset == 3
    finally:
        checker.close()
    assert read_all(bootstrap, topic_name, group=group)[0] == (9, b"x", b"x9")
    # A native reader of the Kafka group gets the same next record.
    ((_, entries),) = redis_client.xreadgroup(group, "native", {keys.stream(topic_name, 0): ">"}, count=1)
    assert int(entries[0][0].split(b"-")[1]) == 9


def test_list_offsets_and_delete_records_across_holes(bootstrap: str, topic_name: str,
                                                      redis_client: redis.Redis) -> None:
    create(bootstrap, topic_name, **{"cleanup.policy": "compact,delete"})
    produce(bootstrap, topic_name, [(b"x", b"x%d" % i) for i in range(10)] + [(b"y", b"y")])
    time.sleep(0.2)
    produce(bootstrap, topic_name, [(b"last", b"newest")])
    wait_until(lambda: stream_length(redis_client, topic_name) == 3, "compaction to 3 entries")
    assert watermarks(bootstrap, topic_name) == (0, 12)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (deleted,) = admin.delete_records([confluent_kafka.TopicPartition(topic_name, 0, 4)]).values()
    assert deleted.result(30).low_watermark == 4  # the low watermark is the offset asked for, in a hole
    assert watermarks(bootstrap, topic_name) == (4, 12)
    assert read_all(bootstrap, topic_name) == [(9, b"x", b"x9"), (10, b"y", b"y"), (11, b"last", b"newest")]
    (deleted,) = admin.delete_records([confluent_kafka.TopicPartition(topic_name, 0, 10)]).values()
    assert deleted.result(30).low_watermark == 10
    assert read_all(bootstrap, topic_name) == [(10, b"y", b"y"), (11, b"last", b"newest")]
    assert stream_length(redis_client, topic_name) == 2
    # Appends go on after the high watermark.
    produce(bootstrap, topic_name, [(b"y", b"y2")])
    assert watermarks(bootstrap, topic_name) == (10, 13)


def test_records_without_a_key_are_refused(bootstrap: str, topic_name: str) -> None:
    create(bootstrap, topic_name)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "retries": 0})
    errors = []
    producer.produce(topic_name, b"no key", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == confluent_kafka.KafkaError.INVALID_RECORD


def test_configs_are_described_and_the_policy_cannot_switch(bootstrap: str, topic_name: str) -> None:
    create(bootstrap, topic_name, **{"min.compaction.lag.ms": "5", "delete.retention.ms": "7"})
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    described = admin.describe_configs([resource])[resource].result(30)
    assert described["cleanup.policy"].value == "compact"
    assert described["min.compaction.lag.ms"].value == "5"
    assert described["delete.retention.ms"].value == "7"
    assert described["max.compaction.lag.ms"].value == "9223372036854775807"
    change = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        confluent_kafka.admin.ConfigEntry("cleanup.policy", "delete",
                                          incremental_operation=confluent_kafka.admin.AlterConfigOpType.SET)])
    with pytest.raises(confluent_kafka.KafkaException) as refused:
        admin.incremental_alter_configs([change])[change].result(30)
    assert refused.value.args[0].code() == confluent_kafka.KafkaError.INVALID_CONFIG
    change = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        confluent_kafka.admin.ConfigEntry("min.compaction.lag.ms", "60000",
                                          incremental_operation=confluent_kafka.admin.AlterConfigOpType.SET)])
    admin.incremental_alter_configs([change])[change].result(30)
    described = admin.describe_configs([resource])[resource].result(30)
    assert described["min.compaction.lag.ms"].value == "60000"


def test_min_compaction_lag_keeps_young_records(bootstrap: str, topic_name: str,
                                                redis_client: redis.Redis) -> None:
    create(bootstrap, topic_name, **{"min.compaction.lag.ms": "3000"})
    produce(bootstrap, topic_name, [(b"x", b"x%d" % i) for i in range(5)])
    time.sleep(0.2)
    produce(bootstrap, topic_name, [(b"last", b"newest")])
    time.sleep(1.5)  # several compaction checks, all within the lag
    assert stream_length(redis_client, topic_name) == 6
    wait_until(lambda: stream_length(redis_client, topic_name) == 2, "compaction once the lag passed")


async def test_memory_is_reclaimed_and_compacting_again_is_cheap(bootstrap: str, topic_name: str,
                                                                 redis_client: redis.Redis,
                                                                 storage: RedisStorage) -> None:
    # A long lag: the gateway's own checks leave it alone; the test compacts it below.
    create(bootstrap, topic_name, **{"min.compaction.lag.ms": "3600000"})
    produce(bootstrap, topic_name, [(b"key%d" % (i % 10), b"v" * 200) for i in range(3000)])
    time.sleep(0.2)
    produce(bootstrap, topic_name, [(b"last", b"newest")])
    stream = keys.stream(topic_name, 0)
    before = int(redis_client.memory_usage(stream, samples=0))
    settings = CompactionSettings(min_lag_ms=0, max_lag_ms=2**63 - 1, segment_ms=100, min_dirty_ratio=0.5,
                                  delete_retention_ms=86_400_000)
    await storage.topics()  # learn the topic's keys
    stats = await storage.compact(topic_name, 0, settings)
    assert (stats.examined, stats.removed) == (3000, 2990)
    assert stats.calls >= 12  # bounded steps of at most 250 entries
    after = int(redis_client.memory_usage(stream, samples=0))
    assert after < before / 20, (before, after)
    again = await storage.compact(topic_name, 0, settings)
    assert (again.examined, again.removed, again.calls) == (0, 0, 1)
    assert watermarks(bootstrap, topic_name) == (0, 3001)


def test_log_append_time_batches_break_at_holes(bootstrap: str, topic_name: str,
                                                redis_client: redis.Redis) -> None:
    create(bootstrap, topic_name, **{"message.timestamp.type": "LogAppendTime"})
    # One batch, one append time: the hole at offset 1 splits it in two batches when read.
    produce(bootstrap, topic_name, [(b"k0", b"v0"), (b"k1", b"v1"), (b"k1", b"v2"), (b"k2", b"v3")])
    time.sleep(0.2)
    produce(bootstrap, topic_name, [(b"last", b"newest")])
    wait_until(lambda: stream_length(redis_client, topic_name) == 4, "compaction to 4 entries")
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "lat-reader",
                                         "enable.partition.eof": True})
    consumer.assign([confluent_kafka.TopicPartition(topic_name, 0, confluent_kafka.OFFSET_BEGINNING)])
    found = []
    try:
        while True:
            message = consumer.poll(30)
            assert message is not None
            if message.error():
                assert message.error().code() == confluent_kafka.KafkaError._PARTITION_EOF
                break
            kind, stamp = message.timestamp()
            assert kind == confluent_kafka.TIMESTAMP_LOG_APPEND_TIME and stamp > 0
            found.append((message.offset(), message.value()))
    finally:
        consumer.close()
    assert found == [(0, b"v0"), (2, b"v2"), (3, b"v3"), (4, b"newest")]


def test_keys_trimmed_by_retention_are_forgotten(bootstrap: str, topic_name: str,
                                                 redis_client: redis.Redis) -> None:
    # (Dirty ratio 0: nothing here is superseded, so the ratio stays tiny.)
    create(bootstrap, topic_name, **{"cleanup.policy": "compact,delete", "retention.ms": "1500",
                                     "min.cleanable.dirty.ratio": "0"})
    produce(bootstrap, topic_name, [(b"old%d" % i, b"v") for i in range(200)])
    time.sleep(0.2)
    produce(bootstrap, topic_name, [(b"last", b"newest")])
    latest = keys.latest_by_key(topic_name, 0)
    wait_until(lambda: redis_client.hlen(latest) >= 200, "compaction to see the 200 keys")
    time.sleep(1.6)
    produce(bootstrap, topic_name, [(b"fresh", b"v")])  # outlives the others by the retention
    # Retention trims the old records; the next compaction calls forget their keys.
    wait_until(lambda: redis_client.hkeys(latest) in ([], [b"fresh"]), "the trimmed keys forgotten")
    assert watermarks(bootstrap, topic_name)[1] == 202


async def test_a_read_cursor_from_a_deleted_topic_is_not_trusted(bootstrap: str, topic_name: str,
                                                                  storage: RedisStorage) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(bootstrap, topic_name)
    produce(bootstrap, topic_name, [(b"k%d" % i, b"old%d" % i) for i in range(20)])
    await storage.topics()
    (first,) = await storage.read([ReadRequest(topic_name, 0, 0, 1 << 20, max_records=10)])
    assert isinstance(first, ReadResult) and first.next_offset == 10  # a cursor at offset 10 now
    admin.delete_topics([topic_name])[topic_name].result(30)
    create(bootstrap, topic_name)
    produce(bootstrap, topic_name, [(b"k%d" % i, b"new%d" % i) for i in range(20)])
    # The cursor's entry is gone and its ID lies before the new stream's:
    # the read must still start at offset 10 of the new topic.
    (again,) = await storage.read([ReadRequest(topic_name, 0, 10, 1 << 20, max_records=5)])
    assert isinstance(again, ReadResult)
    assert [record[2] for record in again.records] == [b"new%d" % i for i in range(10, 15)]
    assert again.offsets == [10, 11, 12, 13, 14]
