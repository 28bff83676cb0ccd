"""Redis going away and coming back under a running gateway.

These tests start their own Redis and gateway (the session ones must not be
stopped) and restart Redis on the same port and data directory, as a
supervisor would.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.errors import ErrorCode

from tests.integration.test_protocol import Wire, delete_records, list_offsets, metadata
from tests.servers import GatewayProcess, RedisServer

PARTITIONS = 2


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (shadowing the session one).

    appendfsync always, as docs/guarantees.md advises for acks=all: every
    acknowledged write is on disk when Redis is stopped.
    """
    server = RedisServer(tmp_path / "redis", appendfsync="always")
    yield server
    server.stop()


@pytest.fixture
def gateway(redis_server: RedisServer, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--redis-timeout", "2"])
    yield process
    process.stop()


@dataclass
class ProducerRun:
    """What a producer thread sent and what librdkafka reported back."""

    delivered: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # value -> (partition, offset)
    failed: list[tuple[bytes, str]] = field(default_factory=list)
    client_errors: list[confluent_kafka.KafkaError] = field(default_factory=list)
    # Messages put on the wire, retransmissions included (librdkafka statistics).
    transmitted: int = 0
    sent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered_count(self) -> int:
        with self.lock:
            return len(self.delivered)

    def delivered_beyond(self, sequence: int) -> bool:
        with self.lock:
            return any(sequence_of(value) > sequence for value in self.delivered)


def sequence_of(value: bytes) -> int:
    return int(value.removeprefix(b"record-"))


def produce_until_stopped(bootstrap: str, topic: str, run: ProducerRun, idempotent: bool) -> None:
    def on_delivery(error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
        with run.lock:
            if error is None:
                run.delivered[message.value()] = (message.partition(), message.offset())
            else:
                run.failed.append((message.value(), error.str()))

    def on_stats(raw: str) -> None:
        partitions = json.loads(raw)["topics"].get(topic, {}).get("partitions", {}).values()
        run.transmitted = max(run.transmitted, sum(p["txmsgs"] for p in partitions))

    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": idempotent,
        "linger.ms": 5,
        "message.timeout.ms": 120_000,
        "retry.backoff.ms": 100,
        "statistics.interval.ms": 200,
        "error_cb": run.client_errors.append,
        "stats_cb": on_stats,
    })
    while not run.stop.is_set():
        for _ in range(50):
            try:
                producer.produce(topic, key=b"%d" % (run.sent % 97), value=b"record-%08d" % run.sent,
                                 on_delivery=on_delivery)
            except BufferError:  # the local queue is full while Redis is away
                break
            run.sent += 1
        producer.poll(0.01)
    assert producer.flush(150) == 0, "records still undelivered after the flush"
    producer.poll(1)  # a last statistics report


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


def read_topic(bootstrap: str, topic: str, partitions: int,
               timeout: float = 120) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every record, from each start to its end offset."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                                        "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=30)[1]
                for p in range(partitions)}
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in range(partitions)])
        records: list[tuple[int, int, bytes]] = []
        positions = dict.fromkeys(range(partitions), 0)
        deadline = time.monotonic() + timeout
        while any(positions[p] < ends[p] for p in positions):
            assert time.monotonic() < deadline, f"read stuck at {positions}, ends are {ends}"
            for message in consumer.consume(1_000, timeout=0.5):
                assert message.error() is None, message.error()
                records.append((message.partition(), message.offset(), message.value()))
                positions[message.partition()] = message.offset() + 1
        return records
    finally:
        consumer.close()


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
def test_producer_rides_through_a_redis_restart(redis_server: RedisServer, gateway: GatewayProcess,
                                                topic_name: str, idempotent: bool) -> None:
    redis_server.start()
    gateway.start()
    create_topic(gateway.bootstrap, topic_name, PARTITIONS)
    run = ProducerRun()
    with ThreadPoolExecutor(1) as pool:
        producing = pool.submit(produce_until_stopped, gateway.bootstrap, topic_name, run, idempotent)
        try:
            wait_until(lambda: run.delivered_count() >= 2_000, 60, "records before the restart")
            redis_server.stop()  # SIGTERM: Redis writes its AOF out and exits
            before_restart = run.sent
            time.sleep(3)
            redis_server.start()  # same port, same data directory
            wait_until(lambda: run.delivered_beyond(before_restart), 60,
                       "a record sent after the restart to be delivered")
            time.sleep(1)
        finally:
            run.stop.set()
        producing.result(timeout=180)

    assert gateway.process is not None and gateway.process.poll() is None, "the gateway exited"
    assert not run.failed, f"{len(run.failed)} records failed, e.g. {run.failed[:3]}"
    assert not [e for e in run.client_errors if e.fatal()], run.client_errors
    assert run.transmitted > run.sent, "the producer never had to retry: did the outage reach it?"
    assert len(run.delivered) == run.sent

    records = read_topic(gateway.bootstrap, topic_name, PARTITIONS)
    stored = {(partition, offset): value for partition, offset, value in records}
    misplaced = sorted(v for v, at in run.delivered.items() if stored.get(at) != v)
    assert not misplaced, (
        f"{len(misplaced)} acknowledged records are not at the offset acknowledged, e.g. "
        f"{[(v, run.delivered[v], stored.get(run.delivered[v])) for v in misplaced[:3]]}")
    copies = Counter(value for _, _, value in records)
    assert set(copies) == set(run.delivered), "the topic holds records nobody acknowledged"
    duplicated = sorted(value for value, n in copies.items() if n > 1)
    if not idempotent:
        # Kafka promises a plain producer at-least-once only, and so does the
        # gateway: an append that Redis ran just before exiting loses its
        # reply, the gateway answers KAFKA_STORAGE_ERROR, and the producer's
        # retry writes the batch again (seen in about one run in five).
        return
    stored_at = {value: [(p, o) for p, o, v in records if v == value] for value in duplicated[:3]}
    assert not duplicated, (
        f"{len(duplicated)} acknowledged records stored more than once; (partition, offset) of the "
        f"copies: {stored_at}, acknowledged at {[run.delivered[v] for v in duplicated[:3]]}")
    assert len(records) == len(run.delivered)


def test_gateway_started_before_redis_waits_for_it(redis_server: RedisServer, gateway: GatewayProcess,
                                                   topic_name: str, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(gateway.start)  # returns once the gateway listens
        wait_until(lambda: log.exists() and "waiting for Redis" in log.read_text(), 60,
                   "the gateway to report that it waits for Redis")
        time.sleep(1.5)  # at least one more attempt
        assert not starting.done(), "the gateway listened without Redis"
        assert gateway.process is not None and gateway.process.poll() is None, "the gateway gave up"
        redis_server.start()
        starting.result(timeout=60)

    producer = confluent_kafka.Producer({"bootstrap.servers": gateway.bootstrap})
    producer.produce(topic_name, value=b"after the wait")
    assert producer.flush(30) == 0
    assert [value for _, _, value in read_topic(gateway.bootstrap, topic_name, 1)] == [b"after the wait"]


def start_then_stop_redis(redis_server: RedisServer, gateway: GatewayProcess) -> None:
    """A gateway that served once, then Redis gone (connections refused)."""
    redis_server.start()
    gateway.start()
    redis_server.stop()


def test_metadata_of_every_version_answers_while_redis_is_away(
        redis_server: RedisServer, gateway: GatewayProcess, topic_name: str) -> None:
    start_then_stop_redis(redis_server, gateway)
    wire = Wire(gateway.bootstrap)
    try:
        for version in range(13):
            # A name not looked up before, so no cached answer hides the outage.
            name = f"{topic_name}-v{version}"
            response = wire.call(metadata([name], version=version))
            assert [(t.name, t.error_code) for t in response.topics] == [
                (name, ErrorCode.leader_not_available)], f"Metadata v{version}"
            assert [(b.host, b.port) for b in response.brokers] == [("127.0.0.1", gateway.port)]
    finally:
        wire.close()


def test_list_offsets_while_redis_is_away_is_retriable(
        redis_server: RedisServer, gateway: GatewayProcess, topic_name: str) -> None:
    start_then_stop_redis(redis_server, gateway)
    wire = Wire(gateway.bootstrap)
    try:
        for timestamp in (-1, -2, 0):
            response = wire.call(list_offsets(topic_name, timestamp))
            ((partition,),) = [topic.partitions for topic in response.topics]
            assert (partition.error_code, partition.offset) == (ErrorCode.kafka_storage_error, -1)
    finally:
        wire.close()


@contextmanager
def frozen_redis(redis_server: RedisServer, gateway: GatewayProcess) -> Iterator[Wire]:
    """A connection to a running gateway whose Redis is frozen (SIGSTOP) meanwhile.

    A frozen Redis accepts connections but never answers: every call times
    out (--redis-timeout 2) instead of being refused.
    """
    redis_server.start()
    gateway.start()
    assert redis_server.process is not None
    wire = Wire(gateway.bootstrap)
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        yield wire
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
        wire.close()


def test_list_offsets_and_metadata_during_a_redis_stall_are_retriable(
        redis_server: RedisServer, gateway: GatewayProcess, topic_name: str) -> None:
    with frozen_redis(redis_server, gateway) as wire:
        response = wire.call(list_offsets(topic_name, -1))
        ((partition,),) = [topic.partitions for topic in response.topics]
        assert (partition.error_code, partition.offset) == (ErrorCode.kafka_storage_error, -1)
        (topic,) = wire.call(metadata([f"{topic_name}-other"], version=1)).topics
        assert topic.error_code == ErrorCode.leader_not_available


def test_delete_records_during_a_redis_stall_is_retriable(
        redis_server: RedisServer, gateway: GatewayProcess, topic_name: str) -> None:
    # The topic lookup times out: REQUEST_TIMED_OUT (retriable), not
    # UNKNOWN_TOPIC_OR_PARTITION, which clients give up on.
    with frozen_redis(redis_server, gateway) as wire:
        response = wire.call(delete_records(f"{topic_name}-unseen", 0, -1))
        ((partition,),) = [topic.partitions for topic in response.topics]
        assert (partition.error_code, partition.low_watermark) == (ErrorCode.request_timed_out, -1)
