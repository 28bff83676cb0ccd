"""confluent-kafka (librdkafka) against the gateway: admin, produce, consume, offsets.

Consumers here use assign() with explicit offsets so that each test reads
exactly what it checks; consumer groups have their own tests
(test_groups*.py). librdkafka still insists on a group.id, which is harmless
as long as nothing is committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
BASE_TS = 1_700_000_000_000
ANY_PARTITION = -1  # let the producer's partitioner choose

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Rec:
    """A record as produced, to compare with what is consumed."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    timestamp: int = BASE_TS


# -- helpers -------------------------------------------------------------------


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def wait_all(futures: dict[Any, Any]) -> dict[Any, Any]:
    return {name: future.result(timeout=30) for name, future in futures.items()}


def error_of(future: Any) -> KafkaError:
    with pytest.raises(KafkaException) as caught:
        future.result(timeout=30)
    error: KafkaError = caught.value.args[0]
    return error


def create_topic(admin: AdminClient, name: str, partitions: int = 1,
                 config: dict[str, str] | None = None) -> None:
    wait_all(admin.create_topics([NewTopic(name, num_partitions=partitions, config=config or {})]))


def describe_topic(admin: AdminClient, topic: str) -> dict[str, Any]:
    (result,) = wait_all(admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])).values()
    return dict(result)


@contextmanager
def make_producer(bootstrap: str, **conf: Any) -> Iterator[Producer]:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    try:
        yield producer
    finally:
        producer.close()


def produce(producer: Producer, topic: str, records: Sequence[Rec]) -> list[Message]:
    """Produce records in order; delivery reports in the same order."""
    reports: list[Message | None] = [None] * len(records)

    def on_delivery(index: int) -> Any:
        def callback(err: KafkaError | None, msg: Message) -> None:
            reports[index] = msg
        return callback

    for index, rec in enumerate(records):
        while True:
            try:
                producer.produce(topic, value=rec.value, key=rec.key, partition=rec.partition,
                                 headers=rec.headers, timestamp=rec.timestamp,
                                 on_delivery=on_delivery(index))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0, "producer did not deliver everything within 60 s"
    assert all(report is not None for report in reports)
    return reports  # type: ignore[return-value]


def produce_ok(bootstrap: str, topic: str, records: Sequence[Rec], **conf: Any) -> list[Message]:
    with make_producer(bootstrap, **conf) as producer:
        reports = produce(producer, topic, records)
    errors = [report.error() for report in reports if report.error() is not None]
    assert not errors, f"delivery failed: {errors[:3]}"
    return reports


def make_consumer(bootstrap: str, **conf: Any) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                     "enable.partition.eof": True, **conf})


def read_to_end(bootstrap: str, topic: str, partitions: int = 1, timeout: float = 60,
                **conf: Any) -> dict[int, list[Message]]:
    """Every record of every partition, from offset 0 to the end, by partition."""
    consumer = make_consumer(bootstrap, **conf)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    found: dict[int, list[Message]] = {p: [] for p in range(partitions)}
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"partitions {set(found) - at_end} did not reach their end"
            for msg in consumer.consume(10_000, timeout=0.2):
                error = msg.error()
                if error is None:
                    found[msg.partition()].append(msg)
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                else:
                    raise KafkaException(error)
    finally:
        consumer.close()
    return found


def as_rec(msg: Message) -> Rec:
    kind, timestamp = msg.timestamp()
    assert kind == TIMESTAMP_CREATE_TIME
    return Rec(msg.partition(), msg.key(), msg.value(), list(msg.headers() or []), timestamp)


def assert_dense(messages: Sequence[Message]) -> None:
    assert [m.offset() for m in messages] == list(range(len(messages)))


def sample_records(partitions: int = 2) -> list[Rec]:
    """Keys, values and headers in their awkward shapes, spread over partitions."""
    shapes = [
        Rec(0, b"k1", b"plain value", [("trace", b"abc")]),
        Rec(0, None, b"no key"),
        Rec(0, b"k2", None, [("reason", b"tombstone")]),
        Rec(0, b"", b""),
        Rec(0, b"k3", b"dup headers", [("h", b"1"), ("x", b"2"), ("h", b"3"), ("h", None), ("e", b"")]),
        Rec(0, b"\x00\xffbin", bytes(range(256)) * 40),
        Rec(0, "ключ".encode(), "значение ☃".encode(), [("ünï", "cödé".encode())]),
    ]
    records = []
    for index in range(40):
        shape = shapes[index % len(shapes)]
        records.append(Rec(index % partitions, shape.key, shape.value, shape.headers, BASE_TS + index * 7))
    return records


def by_partition(records: Sequence[Rec], partitions: int) -> dict[int, list[Rec]]:
    return {p: [r for r in records if r.partition == p] for p in range(partitions)}


def consumed_records(bootstrap: str, topic: str, partitions: int) -> dict[int, list[Rec]]:
    found = read_to_end(bootstrap, topic, partitions)
    for messages in found.values():
        assert_dense(messages)
    return {p: [as_rec(m) for m in messages] for p, messages in found.items()}


# -- topic administration ------------------------------------------------------


def test_create_topics_with_partitions_and_configs(admin: AdminClient, topic_name: str) -> None:
    one, three = f"{topic_name}-a", f"{topic_name}-b"
    wait_all(admin.create_topics([
        NewTopic(one, num_partitions=1),
        NewTopic(three, num_partitions=3, config={"retention.ms": "3600000", "compression.type": "zstd"}),
    ]))
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[one].partitions) == 1
    assert sorted(topics[three].partitions) == [0, 1, 2]
    assert all(p.leader == 0 and p.replicas == [0] for p in topics[three].partitions.values())
    configs = describe_topic(admin, three)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["compression.type"].value == "zstd"
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].is_default


def test_create_topic_with_broker_default_partitions(admin: AdminClient, topic_name: str) -> None:
    create_topic(admin, topic_name, partitions=-1)
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 1


def test_validate_only_creates_nothing(admin: AdminClient, topic_name: str) -> None:
    futures = admin.create_topics([NewTopic(topic_name, num_partitions=2)], validate_only=True)
    wait_all(futures)
    assert topic_name not in admin.list_topics(timeout=10).topics
    bad = admin.create_topics([NewTopic(topic_name, 1, config={"no.such.config": "1"})], validate_only=True)
    assert error_of(bad[topic_name]).code() == KafkaError.INVALID_CONFIG


def test_create_existing_topic(admin: AdminClient, topic_name: str) -> None:
    create_topic(admin, topic_name, partitions=2)
    futures = admin.create_topics([NewTopic(topic_name, num_partitions=5)])
    assert error_of(futures[topic_name]).code() == KafkaError.TOPIC_ALREADY_EXISTS
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 2


@pytest.mark.parametrize(
    ("new_topic", "code"),
    [
        ({"num_partitions": 0}, KafkaError.INVALID_PARTITIONS),
        ({"num_partitions": 1, "replication_factor": 3}, KafkaError.INVALID_REPLICATION_FACTOR),
        ({"num_partitions": 1, "config": {"no.such.config": "1"}}, KafkaError.INVALID_CONFIG),
        ({"num_partitions": 1, "config": {"cleanup.policy": "sideways"}}, KafkaError.INVALID_CONFIG),
    ],
    ids=["zero-partitions", "replication-factor-3", "unknown-config", "bad-config-value"],
)
def test_create_topic_refused(admin: AdminClient, topic_name: str, new_topic: dict[str, Any],
                              code: int) -> None:
    futures = admin.create_topics([NewTopic(topic_name, **new_topic)])
    assert error_of(futures[topic_name]).code() == code
    assert topic_name not in admin.list_topics(timeout=10).topics


def test_delete_topics(admin: AdminClient, bootstrap: str, topic_name: str,
                       redis_client: redis.Redis) -> None:
    create_topic(admin, topic_name, partitions=2)
    produce_ok(bootstrap, topic_name, [Rec(0, b"k", b"v"), Rec(1, b"k", b"v")])
    assert redis_client.exists(f"kafka:{{{topic_name}:1}}")
    wait_all(admin.delete_topics([topic_name]))
    assert topic_name not in admin.list_topics(timeout=10).topics
    assert redis_client.keys(f"kafka:{{{topic_name}:*") == []
    assert error_of(admin.delete_topics([topic_name])[topic_name]).code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_partitions(admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, partitions=1)
    wait_all(admin.create_partitions([NewPartitions(topic_name, 3)]))
    assert sorted(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == [0, 1, 2]
    reports = produce_ok(bootstrap, topic_name, [Rec(2, b"k", b"in the new partition")])
    assert (reports[0].partition(), reports[0].offset()) == (2, 0)
    shrink = admin.create_partitions([NewPartitions(topic_name, 2)])
    assert error_of(shrink[topic_name]).code() == KafkaError.INVALID_PARTITIONS
    missing = admin.create_partitions([NewPartitions(f"{topic_name}-missing", 2)])
    assert error_of(missing[f"{topic_name}-missing"]).code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_topic_configs(admin: AdminClient, topic_name: str) -> None:
    create_topic(admin, topic_name, config={"max.message.bytes": "5000"})
    configs = describe_topic(admin, topic_name)
    assert configs["max.message.bytes"].value == "5000"
    assert not configs["max.message.bytes"].is_default
    assert configs["message.timestamp.type"].value == "CreateTime"
    assert configs["message.timestamp.type"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["retention.ms"].value == "-1"  # the gateway keeps everything by default


def test_describe_broker_configs(admin: AdminClient, bootstrap: str) -> None:
    resource = ConfigResource(ResourceType.BROKER, "0")
    (configs,) = wait_all(admin.describe_configs([resource])).values()
    assert configs["broker.id"].value == "0"
    assert configs["advertised.listeners"].value == f"PLAINTEXT://{bootstrap}"
    assert configs["auto.create.topics.enable"].value == "true"
    # Idempotent producers' state expires after Kafka's default day (broker-wide only, as in Kafka).
    assert configs["producer.id.expiration.ms"].value == "86400000"


# -- produce and consume ---------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_roundtrip(admin: AdminClient, bootstrap: str, topic_name: str, codec: str) -> None:
    create_topic(admin, topic_name, partitions=2)
    records = sample_records(partitions=2)
    reports = produce_ok(bootstrap, topic_name, records, **{"compression.type": codec})
    for partition, expected in by_partition(records, 2).items():
        delivered = [r.offset() for r in reports if r.partition() == partition]
        assert delivered == list(range(len(expected)))
    assert consumed_records(bootstrap, topic_name, 2) == by_partition(records, 2)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_topic_compression_type_on_fetch(admin: AdminClient, bootstrap: str, topic_name: str,
                                         codec: str) -> None:
    create_topic(admin, topic_name, config={"compression.type": codec})
    records = [Rec(0, b"key-%d" % i, b"value %d " % i * 20, [("i", b"%d" % i)], BASE_TS + i)
               for i in range(500)]
    produce_ok(bootstrap, topic_name, records, **{"compression.type": "none"})
    assert consumed_records(bootstrap, topic_name, 1) == {0: records}


@pytest.fixture
def append_time_topic(admin: AdminClient, bootstrap: str, topic_name: str) -> tuple[str, int, int]:
    """A LogAppendTime topic holding five records stamped BASE_TS by the producer; (name, before, after)."""
    create_topic(admin, topic_name, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    records = [Rec(0, b"k", b"v%d" % i, timestamp=BASE_TS) for i in range(5)]
    reports = produce_ok(bootstrap, topic_name, records)
    after = int(time.time() * 1000)
    for report in reports:  # the produce response carries the append time
        kind, timestamp = report.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME and before <= timestamp <= after
    return topic_name, before, after


def test_log_append_time_topic(bootstrap: str, append_time_topic: tuple[str, int, int]) -> None:
    topic, before, after = append_time_topic
    messages = read_to_end(bootstrap, topic)[0]
    assert [m.value() for m in messages] == [b"v%d" % i for i in range(5)]
    for msg in messages:
        kind, timestamp = msg.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert before <= timestamp <= after, "log append time is not the time of the append"


def test_log_append_time_max_timestamp(admin: AdminClient, append_time_topic: tuple[str, int, int]) -> None:
    topic, before, after = append_time_topic
    (info,) = wait_all(admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.max_timestamp()})).values()
    assert info.offset == 4
    assert before <= info.timestamp <= after, "max timestamp of a LogAppendTime topic is not an append time"


def test_log_append_time_offsets_for_times(bootstrap: str, append_time_topic: tuple[str, int, int]) -> None:
    topic, before, _ = append_time_topic
    consumer = make_consumer(bootstrap)
    try:
        (found,) = consumer.offsets_for_times([TopicPartition(topic, 0, before - 60_000)], timeout=10)
        (late,) = consumer.offsets_for_times([TopicPartition(topic, 0, BASE_TS)], timeout=10)
    finally:
        consumer.close()
    assert found.offset == 0, (
        f"a LogAppendTime topic is searched by CreateTime instead of append time: every record was "
        f"appended after {before - 60_000}, yet the lookup answers offset {found.offset}")
    assert late.offset == 0


def test_offsets_dense_per_partition(admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, partitions=3)
    with make_producer(bootstrap) as producer:
        for round_ in range(3):  # several requests, so offsets continue across batches
            reports = produce(producer, topic_name, [Rec(p, None, b"%d" % round_) for p in (0, 1, 2, 2)])
            assert [(r.partition(), r.offset()) for r in reports] == [
                (0, round_), (1, round_), (2, 2 * round_), (2, 2 * round_ + 1)]
    found = read_to_end(bootstrap, topic_name, 3)
    for partition, messages in found.items():
        assert_dense(messages)
        assert len(messages) == (6 if partition == 2 else 3)


def test_auto_create_on_produce(admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    (report,) = produce_ok(bootstrap, topic_name, [Rec(0, b"k", b"first")])
    assert (report.partition(), report.offset()) == (0, 0)
    assert list(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == [0]


def test_record_larger_than_max_message_bytes(admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, config={"max.message.bytes": "1000"})
    with make_producer(bootstrap, **{"message.max.bytes": 1_000_000, "compression.type": "none"}) as producer:
        # Separate requests: the broker refuses a whole batch that is too large.
        (too_big,) = produce(producer, topic_name, [Rec(0, None, b"x" * 5000)])
        (small,) = produce(producer, topic_name, [Rec(0, None, b"small")])
    assert too_big.error() is not None and too_big.error().code() == KafkaError.MSG_SIZE_TOO_LARGE
    assert small.error() is None and small.offset() == 0
    assert [m.value() for m in read_to_end(bootstrap, topic_name)[0]] == [b"small"]


def test_fetch_long_poll_wakes_on_produce(admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name)
    consumer = make_consumer(bootstrap, **{"fetch.wait.max.ms": 5000, "enable.partition.eof": False})
    with make_producer(bootstrap) as producer:
        producer.list_topics(topic_name, timeout=10)  # connected, metadata known
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        started = time.monotonic()
        timer = threading.Timer(1.0, lambda: (producer.produce(topic_name, b"late"), producer.flush(10)))
        timer.start()
        try:
            msg = None
            while msg is None and time.monotonic() - started < 15:
                msg = consumer.poll(0.2)
            elapsed = time.monotonic() - started
        finally:
            timer.join()
            consumer.close()
    assert msg is not None and msg.error() is None and msg.value() == b"late"
    # Without the wake-up the first (empty) fetch would only return after
    # fetch.wait.max.ms, 5 s; the bound is loose on purpose.
    assert elapsed < 4, f"record produced after 1 s arrived after {elapsed:.1f} s: the fetch did not wake"


# -- offsets by time and watermarks --------------------------------------------------


@pytest.fixture
def timed_topic(admin: AdminClient, bootstrap: str, topic_name: str) -> str:
    """Partition 0: records stamped BASE_TS + 1000 * offset, except offset 7 at BASE_TS + 50 s (the
    largest, out of order); partition 1 empty."""
    create_topic(admin, topic_name, partitions=2)
    stamps = [BASE_TS + 1000 * i for i in range(10)]
    stamps[7] = BASE_TS + 50_000
    produce_ok(bootstrap, topic_name, [Rec(0, b"k", b"%d" % i, timestamp=ts) for i, ts in enumerate(stamps)])
    return topic_name


def test_offsets_for_times(bootstrap: str, timed_topic: str) -> None:
    consumer = make_consumer(bootstrap)
    try:
        def offset_for(partition: int, timestamp: int) -> int:
            (found,) = consumer.offsets_for_times([TopicPartition(timed_topic, partition, timestamp)],
                                                  timeout=10)
            assert found.error is None
            return int(found.offset)

        # One partition per request: a ListOffsets request names each partition once.
        stamps = (BASE_TS - 1, BASE_TS, BASE_TS + 2500, BASE_TS + 9000, BASE_TS + 60_000)
        # BASE_TS+9000 is first reached by the out-of-order record at offset 7.
        assert [offset_for(0, ts) for ts in stamps] == [0, 0, 3, 7, -1]
        assert offset_for(1, BASE_TS) == -1
    finally:
        consumer.close()


def test_get_watermark_offsets(bootstrap: str, timed_topic: str) -> None:
    consumer = make_consumer(bootstrap)
    try:
        assert consumer.get_watermark_offsets(TopicPartition(timed_topic, 0), timeout=10) == (0, 10)
        assert consumer.get_watermark_offsets(TopicPartition(timed_topic, 1), timeout=10) == (0, 0)
    finally:
        consumer.close()


@pytest.mark.parametrize(
    ("spec", "partition", "offset", "timestamp"),
    [
        (OffsetSpec.earliest(), 0, 0, None),
        (OffsetSpec.latest(), 0, 10, None),
        (OffsetSpec.max_timestamp(), 0, 7, BASE_TS + 50_000),
        (OffsetSpec.for_timestamp(BASE_TS + 4000), 0, 4, BASE_TS + 4000),
        (OffsetSpec.earliest(), 1, 0, None),
        (OffsetSpec.latest(), 1, 0, None),
    ],
    ids=["earliest", "latest", "max-timestamp", "for-timestamp", "earliest-empty", "latest-empty"],
)
def test_admin_list_offsets(admin: AdminClient, timed_topic: str, spec: OffsetSpec, partition: int,
                            offset: int, timestamp: int | None) -> None:
    (info,) = wait_all(admin.list_offsets({TopicPartition(timed_topic, partition): spec})).values()
    assert info.offset == offset
    if timestamp is not None:
        assert info.timestamp == timestamp


# -- storage layout ------------------------------------------------------------------


def stream_entries(redis_client: redis.Redis, topic: str, partition: int) -> list[list[tuple[bytes, bytes]]]:
    """Each entry's fields as (name, value) pairs, in stream order, duplicates kept."""
    raw_client = redis.Redis(connection_pool=redis_client.connection_pool)
    raw_client.set_response_callback("XRANGE", lambda response, **_: response)  # no dict: keep duplicates
    raw = raw_client.xrange(f"kafka:{{{topic}:{partition}}}")
    return [list(zip(fields[::2], fields[1::2], strict=True)) for _, fields in raw]


def test_stream_entry_layout(admin: AdminClient, bootstrap: str, topic_name: str,
                             redis_client: redis.Redis) -> None:
    create_topic(admin, topic_name, partitions=2)
    produce_ok(bootstrap, topic_name, [
        Rec(1, b"k", b"v", [("a", b"1"), ("b", None), ("a", b"2")], BASE_TS),
        Rec(1, None, None, [], BASE_TS + 1),
        Rec(1, b"", b"", [("e", b"")], BASE_TS + 2),
    ])
    assert stream_entries(redis_client, topic_name, 0) == []
    assert stream_entries(redis_client, topic_name, 1) == [
        [(b"ts", b"%d" % BASE_TS), (b"key", b"k"), (b"value", b"v"),
         (b"h:a", b"1"), (b"h0:b", b""), (b"h:a", b"2")],
        [(b"ts", b"%d" % (BASE_TS + 1))],
        [(b"ts", b"%d" % (BASE_TS + 2)), (b"key", b""), (b"value", b""), (b"h:e", b"")],
    ]


# -- the "done" scenario -------------------------------------------------------------


@pytest.mark.slow
def test_hundred_thousand_keyed_lz4_records(admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    count, partitions = 100_000, 4
    create_topic(admin, topic_name, partitions=partitions)
    records = [Rec(ANY_PARTITION, b"key-%d" % (i % 997), b"value-%d" % i, [("seq", b"%d" % i), ("src", b"t")],
                   BASE_TS + i) for i in range(count)]
    reports = produce_ok(bootstrap, topic_name, records, **{"compression.type": "lz4", "linger.ms": 20})

    found = read_to_end(bootstrap, topic_name, partitions, timeout=180)
    assert sum(len(messages) for messages in found.values()) == count
    for partition, messages in found.items():
        sent = [(rec, report.offset()) for rec, report in zip(records, reports, strict=True)
                if report.partition() == partition]
        assert [offset for _, offset in sent] == list(range(len(sent))), "offsets not in producer order"
        assert_dense(messages)
        assert [as_rec(m) for m in messages] == [replace(rec, partition=partition) for rec, _ in sent]
    assert all(found.values()), "the keys did not spread over every partition"
