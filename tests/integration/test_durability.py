"""What acks means on Redis: acks=0, acks=all's WAITAOF, and Redis killed after acks=all.

These tests start Redis servers and gateways of their own: one Redis is
killed with SIGKILL, and the others run with ``appendfsync always`` (as the
embedded server does) or with gateway options the session gateway lacks.
"""

from __future__ import annotations

import datetime
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import confluent_kafka
import redis
from kafka import KafkaProducer
from kafka_redis_gateway.gateway.embedded import free_port
from kafka_redis_gateway.gateway.storage import keys
from kafka_redis_gateway.protocol.records import Record, encode_batch
from kio.schema.errors import ErrorCode

from tests.integration import operations_support
from tests.integration.test_idempotence import Deliveries, new_producer
from tests.integration.test_protocol import (
    PRODUCE,
    Wire,
    api_versions,
    build,
    create_topic,
    list_offsets,
    partition_errors,
    request_types,
)
from tests.integration.test_redis_restart import read_topic
from tests.servers import GatewayProcess, RedisServer, module_redis

FSYNCED = "acks=all waits until each write is fsynced to the append-only file (WAITAOF)"
APPLIED = "acks=all is acknowledged once Redis has applied the write"


# A Redis that fsyncs every write (the embedded server's setting).
durable_redis = module_redis("durable_redis", appendfsync="always")


def start_gateway(redis_server: RedisServer, log: Path, *args: str) -> GatewayProcess:
    return GatewayProcess(redis_server.url, log_path=log, extra_args=list(args)).start()


def produce_request(topic: str, batches: dict[int, bytes], acks: int, timeout_ms: int = 10_000) -> Any:
    types = request_types(PRODUCE, 9)
    partitions = tuple(build(types.PartitionProduceData, index=index, records=records)
                       for index, records in batches.items())
    return build(types.ProduceRequest, transactional_id=None, acks=acks,
                 timeout=datetime.timedelta(milliseconds=timeout_ms),
                 topic_data=(build(types.TopicProduceData, name=topic, partition_data=partitions),))


def batch(*values: bytes, producer_id: int = -1, epoch: int = -1, sequence: int = -1) -> bytes:
    now = int(time.time() * 1000)
    return encode_batch(0, [Record(now, None, value, ()) for value in values],
                        producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


def waitaof_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_waitaof", {}).get("calls", 0))


def stored_values(client: redis.Redis, topic: str, partition: int) -> list[bytes | None]:
    """The values of a partition's stream, read from Redis directly."""
    return [fields.get(b"value") for _, fields in client.xrange(keys.stream(topic, partition))]


# -- what the log says acks=all means ------------------------------------------------


def test_the_log_says_acks_all_waits_for_the_fsync(durable_redis: RedisServer, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    start_gateway(durable_redis, log).stop()
    text = log.read_text()
    assert "acks=all" in text
    assert FSYNCED in text, text


def test_the_log_says_what_acks_all_means_without_fsync(durable_redis: RedisServer, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    start_gateway(durable_redis, log, "--acks-all-fsync", "false").stop()
    text = log.read_text()
    assert APPLIED in text, text
    assert "WAITAOF" not in text


# -- what acks=all waits for -------------------------------------------------------


def test_acks_all_waits_for_waitaof_and_acks_1_does_not(durable_redis: RedisServer, tmp_path: Path,
                                                         topic_name: str) -> None:
    client = durable_redis.client()
    gateway = start_gateway(durable_redis, tmp_path / "gateway.log")
    wire = Wire(gateway.bootstrap)
    try:
        create_topic(wire, topic_name, partitions=2)
        before = waitaof_calls(client)
        response = wire.call(produce_request(topic_name, {0: batch(b"one")}, acks=1))
        assert partition_errors(response) == {0: ErrorCode.none}
        assert waitaof_calls(client) == before

        # One WAITAOF per request, after the appends of all its partitions.
        response = wire.call(produce_request(topic_name, {0: batch(b"all"), 1: batch(b"all")}, acks=-1))
        assert partition_errors(response) == {0: ErrorCode.none, 1: ErrorCode.none}
        assert waitaof_calls(client) == before + 1
        assert stored_values(client, topic_name, 0) == [b"one", b"all"]
    finally:
        wire.close()
        gateway.stop()
        client.close()


def test_acks_all_without_fsync_does_not_wait(durable_redis: RedisServer, tmp_path: Path,
                                              topic_name: str) -> None:
    client = durable_redis.client()
    gateway = start_gateway(durable_redis, tmp_path / "gateway.log", "--acks-all-fsync", "false")
    wire = Wire(gateway.bootstrap)
    try:
        create_topic(wire, topic_name)
        before = waitaof_calls(client)
        response = wire.call(produce_request(topic_name, {0: batch(b"applied")}, acks=-1))
        assert partition_errors(response) == {0: ErrorCode.none}
        assert waitaof_calls(client) == before
        assert stored_values(client, topic_name, 0) == [b"applied"]
    finally:
        wire.close()
        gateway.stop()
        client.close()


def test_acks_all_not_confirmed_in_time_is_request_timed_out(durable_redis: RedisServer, tmp_path: Path,
                                                             topic_name: str) -> None:
    """A replica that never comes: acks=all times out with an error producers retry."""
    client = durable_redis.client()
    log = tmp_path / "gateway.log"
    gateway = start_gateway(durable_redis, log, "--acks-all-replicas", "1")
    wire = Wire(gateway.bootstrap)
    try:
        assert "1 replica(s)" in log.read_text()
        create_topic(wire, topic_name)
        producer = new_producer(wire)
        data = batch(b"once", producer_id=producer.id, epoch=producer.epoch, sequence=0)
        response = wire.call(produce_request(topic_name, {0: data}, acks=-1, timeout_ms=300))
        assert partition_errors(response) == {0: ErrorCode.request_timed_out}
        # As on Kafka the record was written; the idempotent producer's retry
        # is deduplicated, and acks=1 does not wait for the replica.
        response = wire.call(produce_request(topic_name, {0: data}, acks=1))
        assert partition_errors(response) == {0: ErrorCode.none}
        assert response.responses[0].partition_responses[0].base_offset == 0
        assert stored_values(client, topic_name, 0) == [b"once"]
    finally:
        wire.close()
        gateway.stop()
        client.close()


# -- acks=0 ----------------------------------------------------------------------------


def test_acks_0_gets_no_response_and_the_records_arrive(bootstrap: str, redis_client: redis.Redis,
                                                       topic_name: str) -> None:
    wire = Wire(bootstrap)
    try:
        create_topic(wire, topic_name)
        for n in range(5):
            wire.send(produce_request(topic_name, {0: batch(b"%d" % n)}, acks=0), correlation_id=100 + n)
        following = wire.send(api_versions(3), correlation_id=200)
        # The first answer is the ApiVersions one: no produce request was answered.
        answered, response = wire.receive(18, 3)
        assert (answered, response.error_code) == (following, ErrorCode.none)
    finally:
        wire.close()
    assert stored_values(redis_client, topic_name, 0) == [b"%d" % n for n in range(5)]


def test_acks_0_with_confluent_kafka(bootstrap: str, topic_name: str) -> None:
    wire = Wire(bootstrap)
    try:
        create_topic(wire, topic_name, partitions=2)
    finally:
        wire.close()
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": 0, "linger.ms": 5})
    errors: list[str] = []

    def on_delivery(error: confluent_kafka.KafkaError | None, _: confluent_kafka.Message) -> None:
        if error is not None:
            errors.append(error.str())

    values = [b"fire-%04d" % n for n in range(2_000)]
    for n, value in enumerate(values):
        producer.produce(topic_name, value=value, partition=n % 2, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    records = read_topic(bootstrap, topic_name, 2)
    for partition in range(2):
        assert [v for p, _, v in records if p == partition] == values[partition::2]


def test_acks_0_with_kafka_python(bootstrap: str, topic_name: str) -> None:
    wire = Wire(bootstrap)
    try:
        create_topic(wire, topic_name)
    finally:
        wire.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=0, enable_idempotence=False)
    values = [b"forget-%04d" % n for n in range(500)]
    try:
        futures = [producer.send(topic_name, value=value, partition=0) for value in values]
        producer.flush(30)
        for future in futures:
            future.get(timeout=10)  # raises if the send failed
    finally:
        producer.close()
    assert [value for _, _, value in read_topic(bootstrap, topic_name, 1)] == values


# -- Redis killed right after acks=all -------------------------------------------------


def wait_until_serving(bootstrap: str, topic: str, timeout: float = 30) -> None:
    """Until ListOffsets on the topic's partition 0 answers without an error."""
    wire = Wire(bootstrap)
    try:
        deadline = time.monotonic() + timeout
        while True:
            (answer,) = wire.call(list_offsets(topic)).topics
            code = answer.partitions[0].error_code
            if code == ErrorCode.none:
                return
            assert code == ErrorCode.kafka_storage_error, code
            assert time.monotonic() < deadline, "the gateway did not get Redis back"
            time.sleep(0.1)
    finally:
        wire.close()


def test_acknowledged_records_survive_a_redis_sigkill(tmp_path: Path, topic_name: str) -> None:
    """The issue's test: AOF with appendfsync always, SIGKILL right after the acknowledgements."""
    redis_server = RedisServer(tmp_path / "redis", appendfsync="always").start()
    gateway = start_gateway(redis_server, tmp_path / "gateway.log", "--redis-timeout", "2")
    partitions, count = 3, 6_000
    try:
        wire = Wire(gateway.bootstrap)
        try:
            create_topic(wire, topic_name, partitions)
        finally:
            wire.close()
        acknowledged: dict[bytes, tuple[int, int]] = {}
        errors: list[str] = []

        def on_delivery(error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
            if error is None:
                acknowledged[message.value()] = (message.partition(), message.offset())
            else:
                errors.append(error.str())

        producer = confluent_kafka.Producer({"bootstrap.servers": gateway.bootstrap, "acks": "all",
                                             "linger.ms": 2, "batch.num.messages": 250})
        for n in range(count):
            producer.produce(topic_name, key=b"%d" % n, value=b"durable-%05d" % n, partition=n % partitions,
                             on_delivery=on_delivery)
            producer.poll(0)
        assert producer.flush(60) == 0
        client = redis_server.client()
        waited = waitaof_calls(client)
        redis_server.stop(signal.SIGKILL)  # no chance to write anything out
        client.close()
        assert errors == []
        assert len(acknowledged) == count
        assert waited > 0, "acks=all never waited for WAITAOF"

        redis_server.start()  # same port, same data directory: the AOF is loaded
        client = redis_server.client()
        try:
            # Directly in Redis: every acknowledged record at the offset it was acknowledged with.
            found = {value: (partition, offset)
                     for partition in range(partitions)
                     for offset, value in enumerate(stored_values(client, topic_name, partition))}
        finally:
            client.close()
        missing = sorted(set(acknowledged) - set(found))
        assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
        assert found == acknowledged

        # Through the gateway, which reconnects to Redis by itself (its first
        # request after the restart may meet a dead pooled connection and get
        # KAFKA_STORAGE_ERROR, which clients retry).
        wait_until_serving(gateway.bootstrap, topic_name)
        read = read_topic(gateway.bootstrap, topic_name, partitions)
        assert {value: (partition, offset) for partition, offset, value in read} == acknowledged
        assert len(read) == count
        after: list[tuple[Any, int]] = []
        producer.produce(topic_name, value=b"after the restart", partition=0,
                         on_delivery=lambda error, message: after.append((error, message.offset())))
        assert producer.flush(60) == 0
        assert after == [(None, count // partitions)]
        assert gateway.process is not None and gateway.process.poll() is None, "the gateway exited"
    finally:
        gateway.stop()
        redis_server.stop()


def test_idempotent_stream_through_a_redis_sigkill(tmp_path: Path, topic_name: str) -> None:
    """Redis killed under a steady acks=all stream: nothing acknowledged lost, nothing doubled.

    The producer state is written by the same script as the records, so the
    append-only file holds both or neither: a batch whose answer the kill cut
    off is deduplicated on retry if Redis kept it, and appended if it did not.
    """
    redis_server = RedisServer(tmp_path / "redis", appendfsync="always").start()
    metrics_port = free_port()
    gateway = start_gateway(redis_server, tmp_path / "gateway.log", "--redis-timeout", "2",
                            "--metrics-listen", f"127.0.0.1:{metrics_port}")
    partitions, count, kill_at, restart_at = 3, 20_000, 10_000, 12_000
    try:
        wire = Wire(gateway.bootstrap)
        try:
            create_topic(wire, topic_name, partitions)
        finally:
            wire.close()
        run = Deliveries()
        producer = confluent_kafka.Producer({
            "bootstrap.servers": gateway.bootstrap, "enable.idempotence": True, "linger.ms": 5,
            "batch.num.messages": 500, "message.timeout.ms": 120_000, "retry.backoff.ms": 100,
            "statistics.interval.ms": 200, "error_cb": run.on_error,
            "stats_cb": lambda raw: run.on_stats(topic_name, raw),
        })
        sent: list[bytes] = []
        acknowledged_before_kill: dict[bytes, tuple[int, int]] = {}
        for n in range(count):
            value = b"stream-%06d" % n
            while True:
                try:
                    producer.produce(topic_name, value=value, partition=n % partitions,
                                     on_delivery=run.on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            sent.append(value)
            if n % 500 == 499 and redis_server.process is not None:
                deadline = time.monotonic() + 60
                while len(producer) > 3_000:
                    assert time.monotonic() < deadline, f"{len(producer)} records stuck"
                    producer.poll(0.01)
            if n == kill_at:
                producer.poll(0)
                acknowledged_before_kill = dict(run.where)
                redis_server.stop(signal.SIGKILL)
            if n == restart_at:
                redis_server.start()
                client = redis_server.client()
                try:
                    stored = {partition: stored_values(client, topic_name, partition)
                              for partition in range(partitions)}
                finally:
                    client.close()
                lost = [value for value, (partition, offset) in acknowledged_before_kill.items()
                        if offset >= len(stored[partition]) or stored[partition][offset] != value]
                assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:3]}"
        assert producer.flush(150) == 0, "records still undelivered after the flush"
        producer.poll(1)

        assert acknowledged_before_kill, "nothing was acknowledged before the kill"
        assert not run.failed, f"{len(run.failed)} records failed, e.g. {run.failed[:3]}"
        assert not [e for e in run.client_errors if "fatal: True" in e], run.client_errors
        # The gateway settles appends whose reply the kill cut off by running
        # them again once Redis is back, so the producer need not retry: the
        # gateway's own count of Redis failures shows the kill reached it.
        samples = operations_support.scrape(metrics_port)
        reconnects = operations_support.value(samples, "krg_redis_reconnects_total")
        assert reconnects > 0, "did the kill reach the gateway?"
        wait_until_serving(gateway.bootstrap, topic_name)
        records = read_topic(gateway.bootstrap, topic_name, partitions)
        copies = Counter(value for _, _, value in records)
        doubled = sorted(value for value, n in copies.items() if n > 1)
        assert not doubled, f"{len(doubled)} records stored more than once, e.g. {doubled[:3]}"
        assert copies == Counter(sent)
        for partition in range(partitions):
            assert [v for p, _, v in records if p == partition] == sent[partition::partitions]
        assert {value: (p, o) for p, o, value in records} == run.where
    finally:
        gateway.stop()
        redis_server.stop()
