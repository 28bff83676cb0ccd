"""The 100,000-record read-back check shared by the client-library tests.

confluent-kafka (librdkafka) writes keyed records into a multi-partition topic
and reports where each one landed; a test then reads the topic back with
another client and compares, partition by partition, with what was delivered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

# (offset, key, value) of one record in one partition.
Entry = tuple[int, bytes, bytes]
PartitionLog = Mapping[int, Sequence[Entry]]

RECORDS = 100_000
PARTITIONS = 4
KEYS = 1_000
PADDING = b"x" * 64


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(timeout=30)


def record(sequence: int) -> tuple[bytes, bytes]:
    """Key and value of the record with this sequence number."""
    return f"key-{sequence % KEYS}".encode(), b"%08d:" % sequence + PADDING


def sequence_of(value: bytes) -> int:
    return int(value.split(b":", 1)[0])


def produce_keyed(bootstrap: str, topic: str, count: int, compression: str) -> PartitionLog:
    """Produce ``count`` keyed records; what was delivered, per partition by offset."""
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap,
        "compression.type": compression,
        "linger.ms": 20,
        "batch.num.messages": 5_000,
    })
    delivered: dict[int, list[Entry]] = defaultdict(list)
    errors: list[str] = []

    def on_delivery(error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            delivered[message.partition()].append((message.offset(), message.key(), message.value()))

    for sequence in range(count):
        key, value = record(sequence)
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0, "confluent-kafka could not deliver every record"
    assert not errors, f"delivery errors: {errors[:5]}"
    assert sum(len(entries) for entries in delivered.values()) == count
    return {partition: sorted(entries) for partition, entries in delivered.items()}


def assert_matches_delivered(delivered: PartitionLog, consumed: PartitionLog) -> None:
    """Every delivered record read back once, in offset order, nothing else."""
    assert sorted(consumed) == sorted(delivered), "partitions read differ from partitions written"
    for partition, expected in delivered.items():
        got = list(consumed[partition])
        offsets = [offset for offset, _, _ in expected]
        assert offsets == list(range(len(expected))), f"partition {partition}: offsets not dense from 0"
        assert len(got) == len(expected), (
            f"partition {partition}: read {len(got)} records, {len(expected)} were delivered")
        mismatch = next((i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b), None)
        assert mismatch is None, (
            f"partition {partition}, offset {mismatch}: read {got[mismatch]}, delivered {expected[mismatch]}")
        sequences = [sequence_of(value) for _, _, value in expected]
        assert sequences == sorted(sequences), f"partition {partition}: records out of produce order"
