"""kafka-python against the gateway: topic admin, every codec, record fields, offset lookups."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from tests.integration import bulk

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


class Sent(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int


@pytest.fixture
def admin(bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    yield client
    client.close()


@contextmanager
def producer(bootstrap: str, **config: Any) -> Iterator[KafkaProducer]:
    # Plain producers: these tests are about records and offsets;
    # test_producer_with_default_config covers kafka-python's idempotent default.
    client = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, **config)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def consumer(bootstrap: str, topic: str, partitions: int = 1, **config: Any) -> Iterator[KafkaConsumer]:
    """A group-less consumer assigned every partition of the topic."""
    client = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **config)
    client.assign([TopicPartition(topic, partition) for partition in range(partitions)])
    try:
        yield client
    finally:
        client.close()


def read_all(bootstrap: str, topic: str, partitions: int = 1, timeout: float = 120,
             **config: Any) -> dict[int, list[Any]]:
    """Every record of each partition, from its start to its end offset when called."""
    with consumer(bootstrap, topic, partitions, **config) as client:
        assigned = sorted(client.assignment())
        client.seek_to_beginning(*assigned)
        ends = client.end_offsets(assigned)
        records: dict[int, list[Any]] = {tp.partition: [] for tp in assigned}
        deadline = time.monotonic() + timeout
        while any(client.position(tp) < ends[tp] for tp in assigned):
            assert time.monotonic() < deadline, (
                f"consumer stuck: read {[len(r) for r in records.values()]} records, ends are {ends}")
            for tp, batch in client.poll(timeout_ms=500).items():
                records[tp.partition].extend(batch)
        return records


def send_all(bootstrap: str, topic: str, records: Sequence[Sent], partition: int | None = 0,
             **config: Any) -> list[Any]:
    """Produce records in order; their RecordMetadata."""
    with producer(bootstrap, **config) as client:
        futures = [
            client.send(topic, key=sent.key, value=sent.value, headers=sent.headers,
                        timestamp_ms=sent.timestamp, partition=partition)
            for sent in records
        ]
        client.flush()
        return [future.get(timeout=30) for future in futures]


def varied_records(count: int) -> list[Sent]:
    """Null and empty keys and values, repeated headers, distinct timestamps.

    kafka-python refuses a record whose key and value are both null, and
    header values that are null.
    """
    base = int(time.time() * 1000) - 3_600_000
    records = []
    for i in range(count):
        key = None if i % 5 == 0 else b"" if i % 5 == 1 else f"key-{i}".encode()
        value = b"" if i % 7 == 4 else f"value-{i}-".encode() * (1 + i % 9)
        if i % 7 == 3 and key is not None:
            value = None
        headers: list[tuple[str, bytes | None]] = []
        if i % 2:
            headers = [("trace", str(i).encode()), ("dup", b"first"), ("dup", b"")]
        records.append(Sent(key, value, headers, base + 1000 * i))
    return records


def test_create_describe_and_delete_topics(admin: KafkaAdminClient, topic_name: str) -> None:
    admin.create_topics([NewTopic(topic_name, 3, 1)])
    assert topic_name in admin.list_topics()
    (described,) = admin.describe_topics([topic_name])
    assert described["error_code"] == 0
    assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]

    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic_name, 1, 1)])

    admin.delete_topics([topic_name])
    assert topic_name not in admin.list_topics()
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics([topic_name])


def test_deleting_a_topic_removes_its_streams(admin: KafkaAdminClient, bootstrap: str, topic_name: str,
                                              redis_client: redis.Redis) -> None:
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    send_all(bootstrap, topic_name, varied_records(3), partition=1)
    assert redis_client.xlen(f"kafka:{{{topic_name}:1}}") == 3
    admin.delete_topics([topic_name])
    assert redis_client.exists(f"kafka:{{{topic_name}:1}}", f"kafka:{{{topic_name}:1}}:idx") == 0


@pytest.mark.parametrize("codec", CODECS)
def test_records_round_trip(bootstrap: str, admin: KafkaAdminClient, topic_name: str,
                            codec: str | None) -> None:
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    sent = varied_records(60)
    metadata = send_all(bootstrap, topic_name, sent, compression_type=codec)
    assert [m.offset for m in metadata] == list(range(len(sent)))
    assert [m.timestamp for m in metadata] == [s.timestamp for s in sent]

    (received,) = read_all(bootstrap, topic_name).values()
    assert [r.offset for r in received] == list(range(len(sent)))
    assert [Sent(r.key, r.value, list(r.headers), r.timestamp) for r in received] == sent
    assert {r.timestamp_type for r in received} == {0}  # CreateTime


def test_keyed_records_stay_in_their_partition(bootstrap: str, admin: KafkaAdminClient,
                                               topic_name: str) -> None:
    admin.create_topics([NewTopic(topic_name, 3, 1)])
    sent = [Sent(f"user-{i % 10}".encode(), str(i).encode(), [], int(time.time() * 1000))
            for i in range(200)]
    metadata = send_all(bootstrap, topic_name, sent, partition=None)
    partition_of = {s.key: m.partition for s, m in zip(sent, metadata, strict=True)}
    assert len(set(partition_of.values())) > 1, "murmur2 put ten keys in one partition"

    received = read_all(bootstrap, topic_name, partitions=3)
    assert sum(len(records) for records in received.values()) == len(sent)
    for partition, records in received.items():
        assert all(partition_of[r.key] == partition for r in records)
        values = [int(r.value) for r in records]
        assert values == sorted(values), f"partition {partition} out of produce order"


def test_records_larger_than_the_fetch_limits_are_consumed(bootstrap: str, admin: KafkaAdminClient,
                                                           topic_name: str) -> None:
    # KIP-74: a fetch returns the first record even when it exceeds max bytes.
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    sent = [Sent(None, bytes([i]) * 20_000, [], int(time.time() * 1000)) for i in range(10)]
    send_all(bootstrap, topic_name, sent, max_request_size=10_000_000)
    (received,) = read_all(bootstrap, topic_name, max_partition_fetch_bytes=1024,
                           fetch_max_bytes=1024).values()
    assert [r.value for r in received] == [s.value for s in sent]


def test_offsets_for_times(bootstrap: str, admin: KafkaAdminClient, topic_name: str) -> None:
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    sent = varied_records(20)  # timestamps one second apart, an hour ago
    send_all(bootstrap, topic_name, sent)
    tp = TopicPartition(topic_name, 0)
    with consumer(bootstrap, topic_name) as client:
        for wanted, offset in [(sent[0].timestamp - 10_000, 0), (sent[0].timestamp, 0),
                               (sent[5].timestamp - 500, 5), (sent[5].timestamp, 5),
                               (sent[19].timestamp, 19)]:
            found = client.offsets_for_times({tp: wanted})[tp]
            assert found is not None, f"no offset for {wanted}"
            assert (found.offset, found.timestamp) == (offset, sent[offset].timestamp)
        assert client.offsets_for_times({tp: int(time.time() * 1000) + 3_600_000})[tp] is None


def test_beginning_and_end_offsets(bootstrap: str, admin: KafkaAdminClient, topic_name: str,
                                   redis_client: redis.Redis) -> None:
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    send_all(bootstrap, topic_name, varied_records(7), partition=0)
    send_all(bootstrap, topic_name, varied_records(3), partition=1)
    tps = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)]
    with consumer(bootstrap, topic_name, 2) as client:
        assert client.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        assert client.end_offsets(tps) == {tps[0]: 7, tps[1]: 3}

    # Trimming the stream is how records leave the log: the start advances.
    redis_client.xtrim(f"kafka:{{{topic_name}:0}}", maxlen=2, approximate=False)
    with consumer(bootstrap, topic_name, 2) as client:
        assert client.beginning_offsets(tps) == {tps[0]: 5, tps[1]: 0}
        assert client.end_offsets(tps) == {tps[0]: 7, tps[1]: 3}
    assert [r.offset for r in read_all(bootstrap, topic_name, 2)[0]] == [5, 6]


def test_consumer_reads_records_produced_while_it_waits(bootstrap: str, admin: KafkaAdminClient,
                                                        topic_name: str) -> None:
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    with consumer(bootstrap, topic_name, fetch_max_wait_ms=5000) as client:
        client.seek_to_end()
        assert client.poll(timeout_ms=200) == {}
        send_all(bootstrap, topic_name, [Sent(b"k", b"late", [], int(time.time() * 1000))])
        received: list[Any] = []
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            for batch in client.poll(timeout_ms=1000).values():
                received.extend(batch)
    assert [(r.offset, r.value) for r in received] == [(0, b"late")]


def test_producer_with_default_config(bootstrap: str, topic_name: str) -> None:
    # kafka-python 3 producers are idempotent by default (InitProducerId first).
    client = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        metadata = [client.send(topic_name, b"value-%d" % i) for i in range(3)]
        client.flush()
        assert [future.get(timeout=30).offset for future in metadata] == [0, 1, 2]
    finally:
        client.close()
    assert [r.value for r in read_all(bootstrap, topic_name)[0]] == [b"value-0", b"value-1", b"value-2"]


@pytest.mark.slow
def test_reads_100k_lz4_records_produced_by_confluent_kafka(bootstrap: str, topic_name: str) -> None:
    bulk.create_topic(bootstrap, topic_name, bulk.PARTITIONS)
    delivered = bulk.produce_keyed(bootstrap, topic_name, bulk.RECORDS, "lz4")
    received = read_all(bootstrap, topic_name, bulk.PARTITIONS, timeout=300)
    consumed = {partition: [(r.offset, r.key, r.value) for r in records]
                for partition, records in received.items()}
    bulk.assert_matches_delivered(delivered, consumed)
