"""Idempotent producers: InitProducerId and the per-partition sequence checks.

The protocol-level tests speak raw Kafka frames (the helpers of
test_protocol) and look at the streams in Redis to see that a refused or
deduplicated batch wrote nothing. Then real clients with idempotence on
write and read back, and an idempotent producer rides through a SIGKILL of
the gateway.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
import redis
from aiokafka import AIOKafkaProducer
from kafka import KafkaProducer
from kafka_redis_gateway.gateway.storage import RedisStorage, keys
from kafka_redis_gateway.protocol.records import Record, encode_batch
from kio.schema.errors import ErrorCode

from tests.integration.test_protocol import (
    CREATE_TOPICS,
    Wire,
    build,
    create_topic,
    fetch,
    fetched,
    fetched_values,
    produce,
    request_types,
)
from tests.integration.test_redis_restart import read_topic
from tests.servers import GatewayProcess, RedisServer

INIT_PRODUCER_ID = 22


@pytest.fixture
def wire(bootstrap: str) -> Iterator[Wire]:
    connection = Wire(bootstrap)
    yield connection
    connection.close()


@dataclass(frozen=True)
class Producer:
    id: int
    epoch: int


def init_producer_id(version: int = 4, *, transactional_id: str | None = None,
                     producer_id: int = -1, producer_epoch: int = -1) -> Any:
    types = request_types(INIT_PRODUCER_ID, version)
    return build(types.InitProducerIdRequest, transactional_id=transactional_id,
                 transaction_timeout=datetime.timedelta(seconds=60),
                 producer_id=producer_id, producer_epoch=producer_epoch)


def new_producer(wire: Wire, version: int = 4, returning: Producer | None = None) -> Producer:
    """InitProducerId; with ``returning`` (v3+), the producer names its ID and epoch."""
    if returning is None:
        request = init_producer_id(version)
    else:
        request = init_producer_id(version, producer_id=returning.id, producer_epoch=returning.epoch)
    response = wire.call(request)
    assert response.error_code == ErrorCode.none, response
    return Producer(response.producer_id, response.producer_epoch)


def idempotent_batch(producer: Producer, sequence: int, *values: bytes) -> bytes:
    now = int(time.time() * 1000)
    return encode_batch(0, [Record(now, None, value, ()) for value in values],
                        producer_id=producer.id, producer_epoch=producer.epoch, base_sequence=sequence)


def send(wire: Wire, topic: str, batches: dict[int, bytes]) -> dict[int, tuple[ErrorCode, int]]:
    """Produce (acks=1); (error code, base offset) per partition."""
    response = wire.call(produce(topic, batches))
    return {p.index: (p.error_code, p.base_offset)
            for answer in response.responses for p in answer.partition_responses}


def send_one(wire: Wire, topic: str, data: bytes, partition: int = 0) -> tuple[ErrorCode, int]:
    return send(wire, topic, {partition: data})[partition]


def stream_length(client: redis.Redis, topic: str, partition: int = 0) -> int:
    return int(client.xlen(keys.stream(topic, partition)))


def stored_values(wire: Wire, topic: str, partition: int = 0) -> list[bytes | None]:
    return fetched_values(fetched(wire.call(fetch(12, 0, topic=topic, partition=partition))))


OK = ErrorCode.none
OUT_OF_ORDER = ErrorCode.out_of_order_sequence_number
INVALID_EPOCH = ErrorCode.invalid_producer_epoch


# -- InitProducerId ---------------------------------------------------------------


def test_init_producer_id_gives_distinct_ids(bootstrap: str, wire: Wire) -> None:
    other = Wire(bootstrap)
    try:
        given = [new_producer(connection, version)
                 for version in range(6) for connection in (wire, other, wire)]
    finally:
        other.close()
    assert all(producer.id >= 0 and producer.epoch == 0 for producer in given), given
    assert len({producer.id for producer in given}) == len(given), given


@pytest.mark.parametrize("version", [3, 4, 5])
def test_init_producer_id_naming_an_id_gets_a_fresh_one(wire: Wire, topic_name: str, version: int) -> None:
    """As Kafka without a transactional ID: a new ID whatever the request names (#19).

    Bumping the named ID's epoch let any client fence any idempotent
    producer: IDs are sequential, and one batch at the bumped epoch made
    every later batch of the real producer INVALID_PRODUCER_EPOCH.
    """
    victim = new_producer(wire, version)
    assert send_one(wire, topic_name, idempotent_batch(victim, 0, b"a"))[0] == ErrorCode.none
    for named in (victim, Producer(victim.id, 7), Producer(victim.id + 10**12, 3),
                  Producer(victim.id, 32766)):
        intruder = new_producer(wire, version, returning=named)
        assert intruder.id != victim.id and intruder.epoch == 0, (named, intruder)
        assert send_one(wire, topic_name, idempotent_batch(intruder, 0, b"x"))[0] == ErrorCode.none
    # The real producer goes on undisturbed.
    assert send_one(wire, topic_name, idempotent_batch(victim, 1, b"b"))[0] == ErrorCode.none
    assert stored_values(wire, topic_name) == [b"a", b"x", b"x", b"x", b"x", b"b"]


@pytest.mark.parametrize(("producer_id", "epoch"), [(-1, 0), (5, -1)])
def test_init_producer_id_with_only_an_id_or_an_epoch_is_invalid(wire: Wire, producer_id: int,
                                                                  epoch: int) -> None:
    response = wire.call(init_producer_id(4, producer_id=producer_id, producer_epoch=epoch))
    assert response.error_code == ErrorCode.invalid_request
    assert response.producer_id == -1


def test_producer_ids_are_unique_across_gateways(redis_server: RedisServer, bootstrap: str,
                                                 tmp_path: Path) -> None:
    other = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log").start()
    wires = [Wire(bootstrap), Wire(other.bootstrap)]
    try:
        given = [new_producer(wires[n % 2]).id for n in range(20)]
    finally:
        for wire in wires:
            wire.close()
        other.stop()
    assert len(set(given)) == len(given), given


def test_an_empty_transactional_id_is_an_invalid_request(wire: Wire) -> None:
    # A transactional ID's InitProducerId: test_transactions.
    for version in (0, 3, 5):
        response = wire.call(init_producer_id(version, transactional_id=""))
        assert response.error_code == ErrorCode.invalid_request


def test_confluent_kafka_init_transactions_fails_fast_and_is_logged_once(gateway: GatewayProcess) -> None:
    errors = []
    for _ in range(2):
        producer = confluent_kafka.Producer({"bootstrap.servers": gateway.bootstrap,
                                             "transactional.id": "tx-1", "client.id": "tx-client"})
        with pytest.raises(confluent_kafka.KafkaException) as raised:
            # Before: retried until this timeout, then a retriable timeout error.
            producer.init_transactions(30)
        errors.append(raised.value.args[0])
    for error in errors:
        assert error.fatal(), error
        assert error.code() == confluent_kafka.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, error
        assert "transactions are not served" in error.str(), error
    assert gateway.log_path is not None
    logged = [line for line in gateway.log_path.read_text().splitlines()
              if "'tx-client'" in line and "transactions are not served" in line]
    assert len(logged) == 1, logged


# -- producer state expiry ----------------------------------------------------------


DAY_MS = 86_400_000


async def test_idle_producers_are_forgotten_in_bounded_steps(storage: RedisStorage, redis_client: redis.Redis,
                                                             topic_name: str) -> None:
    """producer.id.expiration.ms: a producer's state goes once its newest batch there is that old."""
    await storage.create_topic(topic_name, 1, {})
    producers = keys.own_partition_keys(topic_name, 0).producers
    now_ms = int(time.time() * 1000)
    # Five batches each, as a busy producer leaves them (over 64 bytes, so
    # Redis keeps the hash as a hash table, which HSCAN walks COUNT at a time;
    # a small listpack-encoded hash comes back whole, and is small).
    idle = {f"{1000 + n}": "0;" + ";".join(f"{b}:{b}:{n + b}:{now_ms - DAY_MS - 60_000 - (5 - b)}"
                                          for b in range(5))
            for n in range(450)}
    recent = {"7": f"3;0:4:0:{now_ms - 2 * DAY_MS};5:5:9:{now_ms - 1000}", "8": f"0;0:0:1:{now_ms}"}
    legacy = {"9": "0;0:0:5"}  # no append time (older gateways): left alone
    redis_client.hset(producers, mapping={**idle, **recent, **legacy})
    assert redis_client.object("encoding", producers) == b"hashtable"

    cursor, steps, removed = "0", [], 0
    while True:
        cursor, step_removed = await storage.expire_producers(topic_name, 0, cursor, DAY_MS)
        steps.append(step_removed)
        removed += step_removed
        if cursor == "0":
            break
    assert removed == len(idle)
    # Bounded: no single call walked the whole hash (HSCAN COUNT 100 per step).
    assert len(steps) >= 4 and max(steps) <= 200, steps
    assert {k.decode() for k in redis_client.hkeys(producers)} == {*recent, *legacy}


def test_gateway_expires_idle_producers_and_they_may_resume(tmp_path: Path, topic_name: str) -> None:
    """The periodic sweep forgets the idle producer; its next batch starts it anew, as in Kafka."""
    # A Redis of its own: on the session one, the session gateway would be
    # the cluster's controller, which is the gateway that sweeps.
    redis_server = RedisServer(tmp_path / "redis").start()
    redis_client = redis_server.client()
    gateway = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log", extra_args=[
        "--producer-id-expiration-ms", "500", "--producer-id-expiration-check-interval-ms", "100"]).start()
    wire = Wire(gateway.bootstrap)
    try:
        create_topic(wire, topic_name)
        producer = new_producer(wire)
        assert send_one(wire, topic_name, idempotent_batch(producer, 0, b"a")) == (OK, 0)
        producers = keys.own_partition_keys(topic_name, 0).producers
        deadline = time.monotonic() + 30
        while redis_client.hexists(producers, str(producer.id)):
            assert time.monotonic() < deadline, "the idle producer's state was never expired"
            time.sleep(0.1)
        # Kafka takes any sequence from a producer it has no state for.
        assert send_one(wire, topic_name, idempotent_batch(producer, 1, b"b")) == (OK, 1)
        assert stored_values(wire, topic_name) == [b"a", b"b"]
    finally:
        wire.close()
        gateway.stop()
        redis_client.close()
        redis_server.stop()


# -- sequence checks --------------------------------------------------------------


def test_resent_batch_is_written_once(wire: Wire, topic_name: str, redis_client: redis.Redis) -> None:
    create_topic(wire, topic_name, partitions=2)
    producer = new_producer(wire)
    batches = {0: idempotent_batch(producer, 0, b"a", b"b", b"c"),
               1: idempotent_batch(producer, 0, b"x")}
    assert send(wire, topic_name, batches) == {0: (OK, 0), 1: (OK, 0)}
    # The identical request again (a retry): success, the original offsets, nothing written.
    assert send(wire, topic_name, batches) == {0: (OK, 0), 1: (OK, 0)}
    assert send_one(wire, topic_name, batches[0]) == (OK, 0)
    assert (stream_length(redis_client, topic_name, 0), stream_length(redis_client, topic_name, 1)) == (3, 1)

    # The sequence goes on where the batch ended, in each partition on its own.
    assert send(wire, topic_name, {0: idempotent_batch(producer, 3, b"d"),
                                   1: idempotent_batch(producer, 1, b"y")}) == {0: (OK, 3), 1: (OK, 1)}
    assert stored_values(wire, topic_name, 0) == [b"a", b"b", b"c", b"d"]
    assert stored_values(wire, topic_name, 1) == [b"x", b"y"]


def test_retries_of_the_last_five_batches_are_deduplicated(wire: Wire, topic_name: str,
                                                          redis_client: redis.Redis) -> None:
    create_topic(wire, topic_name)
    producer = new_producer(wire)
    batches = [idempotent_batch(producer, 2 * n, b"%d-first" % n, b"%d-second" % n) for n in range(7)]
    assert [send_one(wire, topic_name, data) for data in batches] == [(OK, 2 * n) for n in range(7)]

    # Up to five batches may be in flight, and any of them retried, in any order.
    for n in (4, 2, 6, 3, 5, 6, 2):
        assert send_one(wire, topic_name, batches[n]) == (OK, 2 * n), f"retry of batch {n}"
    assert stream_length(redis_client, topic_name) == 14

    # Older batches are no longer known: as in Kafka, out of sequence, and not written.
    assert send_one(wire, topic_name, batches[1])[0] == OUT_OF_ORDER
    assert send_one(wire, topic_name, batches[0])[0] == OUT_OF_ORDER
    assert stream_length(redis_client, topic_name) == 14
    assert send_one(wire, topic_name, idempotent_batch(producer, 14, b"next")) == (OK, 14)
    assert stored_values(wire, topic_name) == [
        *(value for n in range(7) for value in (b"%d-first" % n, b"%d-second" % n)), b"next"]


def test_a_retry_on_a_log_append_time_topic_gets_the_original_append_time(wire: Wire,
                                                                          topic_name: str) -> None:
    types = request_types(CREATE_TOPICS, 7)
    config = types.CreatableTopicConfig(name="message.timestamp.type", value="LogAppendTime")
    (created,) = wire.call(types.CreateTopicsRequest(topics=(types.CreatableTopic(
        name=topic_name, num_partitions=1, replication_factor=1, assignments=(), configs=(config,)),))).topics
    assert created.error_code == ErrorCode.none
    data = idempotent_batch(new_producer(wire), 0, b"stamped")
    answers = []
    for _ in range(2):
        (answer,) = wire.call(produce(topic_name, {0: data})).responses
        answers.append(answer.partition_responses[0])
    assert answers[0].log_append_time is not None
    assert [(a.error_code, a.base_offset, a.log_append_time) for a in answers] == [
        (OK, 0, answers[0].log_append_time)] * 2


def test_a_sequence_gap_is_out_of_order(wire: Wire, topic_name: str, redis_client: redis.Redis) -> None:
    create_topic(wire, topic_name)
    producer = new_producer(wire)
    assert send_one(wire, topic_name, idempotent_batch(producer, 0, b"0", b"1")) == (OK, 0)
    assert send_one(wire, topic_name, idempotent_batch(producer, 3, b"3"))[0] == OUT_OF_ORDER
    # A batch overlapping the last one without being it is no retry either.
    assert send_one(wire, topic_name, idempotent_batch(producer, 1, b"1", b"2"))[0] == OUT_OF_ORDER
    assert stream_length(redis_client, topic_name) == 2
    assert send_one(wire, topic_name, idempotent_batch(producer, 2, b"2")) == (OK, 2)
    assert stored_values(wire, topic_name) == [b"0", b"1", b"2"]


def test_an_older_epoch_is_fenced(wire: Wire, topic_name: str, redis_client: redis.Redis) -> None:
    create_topic(wire, topic_name)
    old = new_producer(wire)
    assert send_one(wire, topic_name, idempotent_batch(old, 0, b"old-0")) == (OK, 0)
    # The Java idempotent producer bumps its epoch itself (no InitProducerId).
    new = Producer(old.id, old.epoch + 1)
    assert send_one(wire, topic_name, idempotent_batch(new, 0, b"new-0")) == (OK, 1)

    assert send_one(wire, topic_name, idempotent_batch(old, 1, b"old-1"))[0] == INVALID_EPOCH
    # Even a retry of what the old epoch wrote is refused, not deduplicated.
    assert send_one(wire, topic_name, idempotent_batch(old, 0, b"old-0"))[0] == INVALID_EPOCH
    assert stream_length(redis_client, topic_name) == 2
    assert send_one(wire, topic_name, idempotent_batch(new, 1, b"new-1")) == (OK, 2)
    assert stored_values(wire, topic_name) == [b"old-0", b"new-0", b"new-1"]


def test_a_new_epoch_starts_at_sequence_zero(wire: Wire, topic_name: str, redis_client: redis.Redis) -> None:
    create_topic(wire, topic_name)
    old = new_producer(wire)
    assert send_one(wire, topic_name, idempotent_batch(old, 0, b"a", b"b")) == (OK, 0)
    new = Producer(old.id, old.epoch + 1)  # bumped by the client itself, as Java's does
    # Continuing the old epoch's sequence is not how a new epoch starts.
    assert send_one(wire, topic_name, idempotent_batch(new, 2, b"c"))[0] == OUT_OF_ORDER
    assert send_one(wire, topic_name, idempotent_batch(new, 5, b"c"))[0] == OUT_OF_ORDER
    assert stream_length(redis_client, topic_name) == 2
    assert send_one(wire, topic_name, idempotent_batch(new, 0, b"c")) == (OK, 2)
    # The new epoch's first batch is deduplicated like any other.
    assert send_one(wire, topic_name, idempotent_batch(new, 0, b"c")) == (OK, 2)
    assert stored_values(wire, topic_name) == [b"a", b"b", b"c"]


def test_producer_state_survives_a_gateway_restart(redis_server: RedisServer, redis_client: redis.Redis,
                                                   topic_name: str, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    first = GatewayProcess(redis_server.url, log_path=log).start()
    wire = Wire(first.bootstrap)
    try:
        create_topic(wire, topic_name)
        producer = new_producer(wire)
        batches = [idempotent_batch(producer, 3 * n, *(b"%d-%d" % (n, i) for i in range(3)))
                   for n in range(4)]
        assert [send_one(wire, topic_name, data) for data in batches] == [(OK, 3 * n) for n in range(4)]
    finally:
        wire.close()
        first.stop(signal.SIGKILL)

    second = GatewayProcess(redis_server.url, log_path=log).start()
    wire = Wire(second.bootstrap)
    try:
        # The producer retries its last batches on the new gateway: deduplicated.
        assert send_one(wire, topic_name, batches[3]) == (OK, 9)
        assert send_one(wire, topic_name, batches[2]) == (OK, 6)
        assert stream_length(redis_client, topic_name) == 12
        assert send_one(wire, topic_name, idempotent_batch(producer, 13, b"gap"))[0] == OUT_OF_ORDER
        assert send_one(wire, topic_name, idempotent_batch(producer, 12, b"next")) == (OK, 12)
        # Producer IDs stay unique across the restart.
        assert new_producer(wire).id > producer.id
    finally:
        wire.close()
        second.stop()


# -- real clients -------------------------------------------------------------------

CLIENT_RECORDS = 3_000
CLIENT_PARTITIONS = 3


def expected_logs(count: int, partitions: int) -> dict[int, list[bytes]]:
    """Record ``n`` goes to partition ``n % partitions``; each partition's values in produce order."""
    logs: dict[int, list[bytes]] = {partition: [] for partition in range(partitions)}
    for n in range(count):
        logs[n % partitions].append(b"record-%06d" % n)
    return logs


def assert_read_back_once_in_order(bootstrap: str, topic: str, redis_client: redis.Redis,
                                   count: int = CLIENT_RECORDS, partitions: int = CLIENT_PARTITIONS) -> None:
    records = read_topic(bootstrap, topic, partitions)
    logs: dict[int, list[bytes]] = defaultdict(list)
    for partition, offset, value in records:
        assert offset == len(logs[partition]), f"partition {partition}: offset {offset} out of place"
        logs[partition].append(value)
    assert dict(logs) == expected_logs(count, partitions)
    # The producer really was idempotent: each partition knows it by its ID.
    for partition in range(partitions):
        assert redis_client.hlen(keys.producer_state(topic, partition)) == 1


def test_confluent_kafka_idempotent_producer(bootstrap: str, topic_name: str,
                                             redis_client: redis.Redis) -> None:
    create_topic_with_clients(bootstrap, topic_name)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                         "linger.ms": 5, "batch.num.messages": 200})
    outcomes: list[tuple[str | None, int, bytes]] = []

    def on_delivery(error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
        outcomes.append((None if error is None else error.str(), message.partition(), message.value()))

    for n in range(CLIENT_RECORDS):
        producer.produce(topic_name, value=b"record-%06d" % n, partition=n % CLIENT_PARTITIONS,
                         on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert [error for error, _, _ in outcomes if error is not None] == []
    assert len(outcomes) == CLIENT_RECORDS
    assert_read_back_once_in_order(bootstrap, topic_name, redis_client)


async def test_aiokafka_idempotent_producer(bootstrap: str, topic_name: str,
                                            redis_client: redis.Redis) -> None:
    create_topic_with_clients(bootstrap, topic_name)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic_name, value=b"record-%06d" % n, partition=n % CLIENT_PARTITIONS)
                   for n in range(CLIENT_RECORDS)]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert [m.partition for m in metadata] == [n % CLIENT_PARTITIONS for n in range(CLIENT_RECORDS)]
    assert [m.offset for m in metadata] == [n // CLIENT_PARTITIONS for n in range(CLIENT_RECORDS)]
    assert_read_back_once_in_order(bootstrap, topic_name, redis_client)


def test_kafka_python_idempotent_producer(bootstrap: str, topic_name: str,
                                          redis_client: redis.Redis) -> None:
    create_topic_with_clients(bootstrap, topic_name)
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    try:
        futures = [producer.send(topic_name, value=b"record-%06d" % n, partition=n % CLIENT_PARTITIONS)
                   for n in range(CLIENT_RECORDS)]
        producer.flush(60)
        metadata = [future.get(timeout=30) for future in futures]
    finally:
        producer.close()
    assert [m.partition for m in metadata] == [n % CLIENT_PARTITIONS for n in range(CLIENT_RECORDS)]
    assert [m.offset for m in metadata] == [n // CLIENT_PARTITIONS for n in range(CLIENT_RECORDS)]
    assert_read_back_once_in_order(bootstrap, topic_name, redis_client)


def create_topic_with_clients(bootstrap: str, topic: str, partitions: int = CLIENT_PARTITIONS) -> None:
    wire = Wire(bootstrap)
    try:
        create_topic(wire, topic, partitions)
    finally:
        wire.close()


# -- the gateway killed under an idempotent producer ---------------------------------

RUN_RECORDS = 30_000
RUN_PARTITIONS = 3
# The gateway is killed when these records have just been handed to the
# producer and restarted on the same port RESTART_AFTER records later.
KILL_AT = (RUN_RECORDS // 3, 2 * RUN_RECORDS // 3)
RESTART_AFTER = 3_000
# At most this many records undelivered while the gateway is up: a steady stream.
OUTSTANDING = 3_000


@dataclass
class Deliveries:
    delivered: Counter[bytes] = field(default_factory=Counter)
    where: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    failed: list[tuple[bytes, str]] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    transmitted: int = 0  # messages put on the wire, retransmissions included

    def on_delivery(self, error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
        if error is None:
            self.delivered[message.value()] += 1
            self.where[message.value()] = (message.partition(), message.offset())
        else:
            self.failed.append((message.value(), error.str()))

    def on_error(self, error: confluent_kafka.KafkaError) -> None:
        self.client_errors.append(f"{error.str()} (fatal: {error.fatal()})")

    def on_stats(self, topic: str, raw: str) -> None:
        partitions = json.loads(raw)["topics"].get(topic, {}).get("partitions", {}).values()
        self.transmitted = max(self.transmitted, sum(p["txmsgs"] for p in partitions))


def appended(client: redis.Redis, topic: str) -> int:
    return sum(int(client.xlen(keys.stream(topic, p))) for p in range(RUN_PARTITIONS))


def test_idempotent_producer_survives_a_gateway_sigkill(tmp_path: Path, topic_name: str) -> None:
    """The issue's "done when": 30,000 records, three partitions, the gateway SIGKILLed in the middle.

    Redis runs with appendfsync everysec, so an acks=all append waits a while
    for WAITAOF after it is stored; the gateway is killed right after an
    append is seen in Redis, so its answer is lost and the producer retries a
    batch that is already stored, which only deduplication keeps from being
    stored twice.
    """
    redis_server = RedisServer(tmp_path / "redis", appendfsync="everysec").start()
    watcher = redis_server.client()
    log = tmp_path / "gateway.log"
    gateway = GatewayProcess(redis_server.url, log_path=log).start()
    try:
        create_topic_with_clients(gateway.bootstrap, topic_name, RUN_PARTITIONS)
        run = Deliveries()
        producer = confluent_kafka.Producer({
            "bootstrap.servers": gateway.bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 500,
            "message.timeout.ms": 120_000,
            "retry.backoff.ms": 100,
            "reconnect.backoff.max.ms": 1_000,
            "statistics.interval.ms": 200,
            "error_cb": run.on_error,
            "stats_cb": lambda raw: run.on_stats(topic_name, raw),
        })
        sent: list[bytes] = []
        outstanding_at_kills: list[int] = []
        for n in range(RUN_RECORDS):
            value = b"record-%06d" % n
            while True:
                try:
                    producer.produce(topic_name, key=b"%d" % (n % 101), value=value,
                                     partition=n % RUN_PARTITIONS, on_delivery=run.on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            sent.append(value)
            if n % 500 == 499 and gateway.process is not None:
                deadline = time.monotonic() + 60
                while len(producer) > OUTSTANDING:
                    assert time.monotonic() < deadline, f"{len(producer)} records stuck"
                    producer.poll(0.01)
            if n in KILL_AT:
                stored = appended(watcher, topic_name)
                deadline = time.monotonic() + 60
                while appended(watcher, topic_name) == stored:
                    assert time.monotonic() < deadline, "the producer stopped sending"
                gateway.stop(signal.SIGKILL)
                outstanding_at_kills.append(len(producer))
            if n - RESTART_AFTER in KILL_AT:
                gateway = GatewayProcess(redis_server.url, port=gateway.port, log_path=log).start()
        assert producer.flush(150) == 0, "records still undelivered after the flush"
        producer.poll(1)  # a last statistics report

        assert all(outstanding_at_kills), f"nothing on its way at a kill: {outstanding_at_kills}"
        assert run.transmitted > RUN_RECORDS, "the producer never retried: did a kill reach it?"
        assert not run.failed, f"{len(run.failed)} records failed, e.g. {run.failed[:3]}"
        assert sum(run.delivered.values()) == RUN_RECORDS
        assert [value for value, n in run.delivered.items() if n > 1] == []
        assert not [e for e in run.client_errors if "fatal: True" in e], run.client_errors

        records = read_topic(gateway.bootstrap, topic_name, RUN_PARTITIONS)
        copies = Counter(value for _, _, value in records)
        missing = sorted(set(sent) - set(copies))
        doubled = sorted(value for value, n in copies.items() if n > 1)
        assert not missing, f"{len(missing)} records lost, e.g. {missing[:3]}"
        assert not doubled, (f"{len(doubled)} records stored more than once, e.g. "
                             f"{[(v, [(p, o) for p, o, w in records if w == v]) for v in doubled[:3]]}; "
                             f"{run.transmitted} messages transmitted for {RUN_RECORDS}")
        assert copies == Counter(sent)
        # Each partition in produce order, every record where its delivery report said.
        for partition in range(RUN_PARTITIONS):
            assert [v for p, _, v in records if p == partition] == sent[partition::RUN_PARTITIONS]
        assert {value: (p, o) for p, o, value in records} == run.where
    finally:
        watcher.close()
        gateway.stop()
        redis_server.stop()
