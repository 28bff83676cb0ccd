"""ListOffsets through real clients and raw requests: round trips, far timestamps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import confluent_kafka
import pytest
from kafka_redis_gateway.gateway.embedded import free_port
from kio.schema.errors import ErrorCode

from tests.integration.operations_support import scrape, value
from tests.integration.test_protocol import (
    LIST_OFFSETS,
    Wire,
    batch,
    build,
    create_topic,
    produce,
    request_types,
)
from tests.servers import GatewayProcess, RedisServer

PARTITIONS = 8


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def counted_gateway(redis_server: RedisServer, tmp_path: Path, metrics_port: int) -> Iterator[GatewayProcess]:
    """A gateway of this test's own, exporting metrics; no background retention scans."""
    process = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log", extra_args=[
        "--metrics-listen", f"127.0.0.1:{metrics_port}", "--retention-check-interval-ms", "3600000"]).start()
    yield process
    process.stop()


def list_offsets_of(topic: str, timestamps: list[int]) -> object:
    """One ListOffsets v8 request asking partition i for timestamps[i]."""
    types = request_types(LIST_OFFSETS, 8)
    partitions = tuple(build(types.ListOffsetsPartition, partition_index=index, current_leader_epoch=-1,
                             timestamp=timestamp) for index, timestamp in enumerate(timestamps))
    return build(types.ListOffsetsRequest, replica_id=-1, isolation_level=0,
                 topics=(build(types.ListOffsetsTopic, name=topic, partitions=partitions),))


def redis_round_trips(metrics_port: int) -> float:
    return value(scrape(metrics_port), "krg_redis_duration_seconds_count")


def test_all_partitions_in_one_redis_round_trip(counted_gateway: GatewayProcess, metrics_port: int,
                                                topic_name: str) -> None:
    with closing(Wire(counted_gateway.bootstrap)) as wire:
        create_topic(wire, topic_name, PARTITIONS)
        wire.call(produce(topic_name, {p: batch(b"a", b"b") for p in range(PARTITIONS)}))
        timestamps = [-1, -2, -3, -4, 0, 10**14, -1, 0]
        before = redis_round_trips(metrics_port)
        response = wire.call(list_offsets_of(topic_name, timestamps))
        spent = redis_round_trips(metrics_port) - before
    ((topic),) = response.topics
    assert [(p.error_code, p.offset) for p in topic.partitions] == [
        (ErrorCode.none, offset) for offset in (2, 0, 1, 0, 0, -1, 2, 0)]
    # At most one topic lookup (the registry, when not cached), one round for the
    # partitions and one for the leader epochs of those looked up by time.
    assert spent <= 3, f"{spent} Redis round trips for one ListOffsets of {PARTITIONS} partitions"


def test_offsets_for_far_future_times_are_minus_one(bootstrap: str, topic_name: str) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic_name, b"now")
    assert producer.flush(30) == 0
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        for timestamp in (10**14, 2**53 + 1, 2**63 - 1):
            (found,) = consumer.offsets_for_times([confluent_kafka.TopicPartition(topic_name, 0, timestamp)],
                                                  timeout=30)
            assert (found.error, found.offset) == (None, -1), timestamp
        (first,) = consumer.offsets_for_times([confluent_kafka.TopicPartition(topic_name, 0, 0)], timeout=30)
        assert (first.error, first.offset) == (None, 0)
    finally:
        consumer.close()
