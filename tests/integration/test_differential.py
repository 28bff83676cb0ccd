"""The same client scenarios against a real Apache Kafka broker and the gateway, compared.

Each test runs one scenario against both (confluent-kafka, or raw Kafka
frames where a client would hide the broker's answer) and asserts that the
clients see the same thing: offsets, watermarks, timestamps and the error
codes of the common mistakes. What differs on purpose is listed in
docs/compatibility.md ("Compared with Apache Kafka").

Needs the broker that ../shared/kafka-broker/build.sh builds into
/opt/kafka-broker: skipped where it is absent (CI does not build it). One
broker per module (about 10-20 s to start), on free loopback ports, its
data in a temporary directory removed afterwards.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from kafka_redis_gateway.gateway.bench.servers import KafkaBroker, kafka_available
from kio.schema.errors import ErrorCode

from tests.integration.test_groups_protocol import (
    FIND_COORDINATOR,
    heartbeat,
    join,
    offset_commit,
    sync,
)
from tests.integration.test_idempotence import INIT_PRODUCER_ID, idempotent_batch, init_producer_id, send_one
from tests.integration.test_idempotence import Producer as IdempotentProducer
from tests.integration.test_leader_epochs import epoch_end, fetched_epochs, latest, metadata_epoch
from tests.integration.test_protocol import (
    Wire,
    batch,
    build,
    create_topic,
    delete_records,
    fetch,
    fetched,
    list_offsets,
    produce,
    request_types,
)
from tests.integration.test_transactions import (
    DESCRIBE_PRODUCERS,
    LIST_TRANSACTIONS,
    described_transactions,
)
from tests.servers import GatewayProcess

pytestmark = pytest.mark.skipif(not kafka_available(), reason="no Apache Kafka broker at /opt/kafka-broker")

Outcome = Any


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(Path(tmp_path_factory.mktemp("kafka")) / "broker").start(timeout=120)
    yield broker
    broker.stop()


@pytest.fixture
def targets(kafka: KafkaBroker, gateway: GatewayProcess) -> dict[str, str]:
    return {"kafka": kafka.bootstrap, "gateway": gateway.bootstrap}


def compare(targets: dict[str, str], scenario: Callable[[str], Outcome]) -> Outcome:
    """The scenario's outcome on each target; asserts they are equal and returns Kafka's."""
    seen = {name: scenario(bootstrap) for name, bootstrap in targets.items()}
    assert seen["gateway"] == seen["kafka"], seen
    return seen["kafka"]


def new_topic(bootstrap: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
    name = f"diff-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    for future in admin.create_topics([topic]).values():
        future.result(timeout=30)
    return name


def delivered(bootstrap: str, topic: str, records: list[dict[str, Any]],
              **config: Any) -> list[tuple[int | None, int, int, tuple[int, int]]]:
    """Produce the records (kwargs of Producer.produce), one at a time.

    Per record: (error code, partition, offset, (timestamp type, timestamp)).
    """
    reports: list[tuple[int | None, int, int, tuple[int, int]]] = []

    def on_delivery(err: Any, msg: Any) -> None:
        reports.append((err.code() if err else None, msg.partition(), msg.offset(), msg.timestamp()))

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": False,
                         "message.timeout.ms": 20_000, **config})
    for record in records:
        producer.produce(topic, on_delivery=on_delivery, **record)
        producer.flush(30)
    assert producer.flush(30) == 0
    return reports


def consumer(bootstrap: str, **config: Any) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": f"diff-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "enable.partition.eof": True, **config})


def read_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[Any, ...]]:
    """Every record from the beginning of every partition, as the consumer sees it."""
    reader = consumer(bootstrap)
    reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    records: list[tuple[Any, ...]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(at_end) < partitions and time.monotonic() < deadline:
            message = reader.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                    continue
                raise KafkaException(message.error())
            records.append((message.partition(), message.offset(), message.key(), message.value(),
                            message.headers(), message.timestamp()))
    finally:
        reader.close()
    return sorted(records, key=lambda r: (r[0], r[1]))


def watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int] | int:
    """(low, high), or the error code the client got."""
    reader = consumer(bootstrap)
    try:
        low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return low, high
    except KafkaException as exc:
        return int(exc.args[0].code())
    finally:
        reader.close()


# -- offsets, watermarks, timestamps -----------------------------------------------------------


def test_offsets_watermarks_and_create_times(targets: dict[str, str]) -> None:
    records = [{"value": f"v{i}".encode(), "key": f"k{i % 3}".encode(), "partition": i % 2,
                "timestamp": 1_700_000_000_000 + i, "headers": [("h", f"{i}".encode())]} for i in range(7)]
    records.append({"value": None, "key": b"tombstone", "partition": 0, "timestamp": 1_700_000_000_100})

    def scenario(bootstrap: str) -> Outcome:
        topic = new_topic(bootstrap, 2)
        reports = delivered(bootstrap, topic, records)
        return {
            "delivered": reports,
            "watermarks": [watermarks(bootstrap, topic, p) for p in (0, 1)],
            "read": read_all(bootstrap, topic, 2),
        }

    seen = compare(targets, scenario)
    assert [report[2] for report in seen["delivered"]] == [0, 0, 1, 1, 2, 2, 3, 4]
    assert seen["watermarks"] == [(0, 5), (0, 3)]
    assert {r[5][0] for r in seen["read"]} == {TIMESTAMP_CREATE_TIME}


def test_log_append_time_replaces_the_producers_timestamp(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        topic = new_topic(bootstrap, 1, {"message.timestamp.type": "LogAppendTime"})
        before = int(time.time() * 1000)
        reports = delivered(bootstrap, topic, [{"value": b"a", "timestamp": 1_000}, {"value": b"b"}])
        after = int(time.time() * 1000)
        read = read_all(bootstrap, topic, 1)
        # The times themselves differ between brokers; what a client can rely on is compared.
        def now(ts: int) -> bool:
            return before <= ts <= after

        return {
            "delivered": [(err, p, offset, kind, now(ts)) for err, p, offset, (kind, ts) in reports],
            "read": [(p, offset, value, kind, now(ts)) for p, offset, _k, value, _h, (kind, ts) in read],
        }

    seen = compare(targets, scenario)
    assert all(kind == TIMESTAMP_LOG_APPEND_TIME and inside for *_r, kind, inside in seen["read"])


def test_list_offsets_by_time(targets: dict[str, str]) -> None:
    times = (0, 2_000, 4_000, 6_000)

    def scenario(bootstrap: str) -> Outcome:
        topic = new_topic(bootstrap)
        delivered(bootstrap, topic, [{"value": b"x", "timestamp": t} for t in (1_000, 3_000, 2_000, 5_000)])
        reader = consumer(bootstrap)
        try:
            client = [reader.offsets_for_times([TopicPartition(topic, 0, t)], timeout=10)[0].offset
                      for t in times]
        finally:
            reader.close()
        wire = Wire(bootstrap)
        try:
            raw = []
            for t in (*times, -1, -2, -3):  # -3: the record with the largest timestamp (KIP-734)
                (answer,) = wire.call(list_offsets(topic, t)).topics[0].partitions
                raw.append((t, answer.error_code, answer.timestamp, answer.offset))
        finally:
            wire.close()
        return {"client": client, "raw": raw}

    # The first record at or after the time, -1 past the last one.
    assert compare(targets, scenario)["client"] == [0, 1, 3, -1]


# -- the common mistakes -------------------------------------------------------------------------


def test_unknown_topic(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        name = f"absent-{uuid.uuid4().hex[:10]}"
        reader = consumer(bootstrap)  # a consumer does not create topics (allow.auto.create.topics=false)
        try:
            listed = reader.list_topics(name, timeout=10).topics[name].error
        finally:
            reader.close()
        wire = Wire(bootstrap)
        try:
            (answer,) = wire.call(list_offsets(name)).topics
            fetched_error = fetched(wire.call(fetch(12, 0, topic=name))).error_code
        finally:
            wire.close()
        return {"metadata": listed.code() if listed else None,
                "list offsets": answer.partitions[0].error_code, "fetch": fetched_error}

    assert compare(targets, scenario)["metadata"] == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_bad_partition(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        topic = new_topic(bootstrap, 1)
        client_side = delivered(bootstrap, topic, [{"value": b"x", "partition": 3}])
        wire = Wire(bootstrap)
        try:
            response = wire.call(produce(topic, {3: batch(b"x")}))
            produced = [p.error_code for r in response.responses for p in r.partition_responses]
            beyond = fetched(wire.call(fetch(12, 0, topic=topic, partition=3)))
            fetch_error = (beyond.error_code, beyond.high_watermark, beyond.log_start_offset)
        finally:
            wire.close()
        return {"client": [r[0] for r in client_side], "produce": produced, "fetch": fetch_error,
                "watermarks": watermarks(bootstrap, topic, 3)}

    seen = compare(targets, scenario)
    assert seen["produce"] == [ErrorCode.unknown_topic_or_partition]


def test_record_too_large(targets: dict[str, str]) -> None:
    big = b"x" * 2_000_000  # above Kafka's default max.message.bytes (1,048,588)

    def scenario(bootstrap: str) -> Outcome:
        topic = new_topic(bootstrap, 1)
        reports = delivered(bootstrap, topic, [{"value": big}, {"value": b"small"}],
                            **{"message.max.bytes": 10_000_000, "compression.type": "none"})
        return {"delivered": [(err, offset) for err, _p, offset, _t in reports],
                "watermarks": watermarks(bootstrap, topic, 0)}

    seen = compare(targets, scenario)
    assert seen["delivered"][0][0] == KafkaError.MSG_SIZE_TOO_LARGE


def test_offset_out_of_range(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        topic = new_topic(bootstrap, 1)
        delivered(bootstrap, topic, [{"value": b"a"}, {"value": b"b"}, {"value": b"c"}])
        wire = Wire(bootstrap)
        try:
            ahead = fetched(wire.call(fetch(12, 100, topic=topic)))
            raw = (ahead.error_code, ahead.high_watermark, ahead.last_stable_offset, ahead.log_start_offset)
        finally:
            wire.close()
        reader = consumer(bootstrap, **{"auto.offset.reset": "error"})
        reader.assign([TopicPartition(topic, 0, 100)])
        errors: list[int] = []
        deadline = time.monotonic() + 15
        try:
            while not errors and time.monotonic() < deadline:
                message = reader.poll(0.5)
                if message is not None and message.error() is not None:
                    errors.append(message.error().code())
        finally:
            reader.close()
        return {"fetch": raw, "client": errors}

    seen = compare(targets, scenario)
    assert seen["fetch"] == (ErrorCode.offset_out_of_range, -1, -1, -1)


def test_leader_epochs_of_a_fresh_partition(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        topic = new_topic(bootstrap, 1)
        delivered(bootstrap, topic, [{"value": b"a"}, {"value": b"b"}, {"value": b"c"}])
        wire = Wire(bootstrap)
        try:
            return {
                "metadata": metadata_epoch(wire, topic),
                "latest": latest(wire, topic),
                "latest, epoch given": latest(wire, topic, current=0),
                "latest, epoch ahead": latest(wire, topic, current=1),
                "earliest": latest(wire, topic, timestamp=-2),
                "by time": latest(wire, topic, timestamp=0),
                "by time, epoch ahead": latest(wire, topic, timestamp=0, current=1),
                "by time, none found": latest(wire, topic, timestamp=10**14),
                "fetch": fetched_epochs(wire, topic, 0),
                "fetch, epoch given": fetched_epochs(wire, topic, 0, current=0),
                "fetch, epoch ahead": fetched_epochs(wire, topic, 0, current=1),
                "end of epoch 0": epoch_end(wire, topic, 0),
                "end of epoch 0, v2": epoch_end(wire, topic, 0, version=2),
                "end of epoch 0, epoch ahead": epoch_end(wire, topic, 0, current=1),
                "end of epoch 1": epoch_end(wire, topic, 1),
                "end of epoch -1": epoch_end(wire, topic, -1),
            }
        finally:
            wire.close()

    seen = compare(targets, scenario)
    assert seen["end of epoch 0"] == (ErrorCode.none, 0, 3)
    assert seen["fetch, epoch ahead"] == (ErrorCode.unknown_leader_epoch, [])


def first_producer_id(wire: Wire) -> IdempotentProducer:
    """InitProducerId, retried while Kafka still creates its transaction state topic on first use."""
    deadline = time.monotonic() + 30
    while True:
        response = wire.call(init_producer_id())
        if response.error_code != ErrorCode.coordinator_load_in_progress or time.monotonic() > deadline:
            assert response.error_code == ErrorCode.none, response
            return IdempotentProducer(response.producer_id, response.producer_epoch)
        time.sleep(0.2)


def test_fenced_and_out_of_order_idempotent_producer(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        wire = Wire(bootstrap)
        try:
            topic = f"diff-{uuid.uuid4().hex[:10]}"
            create_topic(wire, topic)
            old = first_producer_id(wire)
            first = send_one(wire, topic, idempotent_batch(old, 0, b"old-0"))
            gap = send_one(wire, topic, idempotent_batch(old, 5, b"gap"))[0]
            retry = send_one(wire, topic, idempotent_batch(old, 0, b"old-0"))
            bumped = IdempotentProducer(old.id, old.epoch + 1)  # as the Java producer bumps it itself
            new_epoch = send_one(wire, topic, idempotent_batch(bumped, 0, b"new-0"))
            fenced = send_one(wire, topic, idempotent_batch(old, 1, b"old-1"))[0]
            (answer,) = wire.call(list_offsets(topic)).topics
            return {"first": first, "sequence gap": gap, "retry": retry, "new epoch": new_epoch,
                    "old epoch": fenced, "end": answer.partitions[0].offset}
        finally:
            wire.close()

    seen = compare(targets, scenario)
    assert seen["retry"] == (ErrorCode.none, 0)


def find_coordinator(wire: Wire, group: str) -> None:
    """Until the broker coordinates groups (Kafka creates __consumer_offsets on first use)."""
    deadline = time.monotonic() + 30
    while True:
        answer = wire.call(build(request_types(FIND_COORDINATOR, 3).FindCoordinatorRequest,
                                 key=group, key_type=0))
        if answer.error_code == ErrorCode.none or time.monotonic() > deadline:
            assert answer.error_code == ErrorCode.none, answer
            return
        time.sleep(0.2)


def test_wrong_generation_and_unknown_member(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        group = f"diff-{uuid.uuid4().hex[:10]}"
        topic = new_topic(bootstrap, 1)
        wire = Wire(bootstrap)
        try:
            find_coordinator(wire, group)
            first = wire.call(join(group))
            joined = wire.call(join(group, first.member_id))
            member, generation = joined.member_id, joined.generation_id
            synced = wire.call(sync(group, member, generation, {member: b"A"}))
            outcome = {
                "first join": first.error_code, "join": (joined.error_code, generation),
                "sync": (synced.error_code, synced.assignment),
                "heartbeat": wire.call(heartbeat(group, member, generation)).error_code,
                "heartbeat, next generation": wire.call(heartbeat(group, member, generation + 1)).error_code,
                "heartbeat, unknown member": wire.call(heartbeat(group, "nobody", generation)).error_code,
            }
            commits = (("commit", generation, member), ("commit, old generation", generation - 1, member),
                       ("commit, unknown member", generation, "nobody"))
            for name, gen, who in commits:
                response = wire.call(offset_commit(group, topic, {0: 0}, generation=gen, member_id=who))
                outcome[name] = [p.error_code for t in response.topics for p in t.partitions]
            return outcome
        finally:
            wire.close()

    seen = compare(targets, scenario)
    assert seen["heartbeat, next generation"] == ErrorCode.illegal_generation


# Filters for DescribeClientQuotas: (entity type, match type, match) components and strict.
EXACT, DEFAULT, SPECIFIED = 0, 1, 2
QUOTA_FILTERS: list[tuple[tuple[tuple[str, int, str | None], ...], bool]] = [
    ((), False), ((), True), ((("user", EXACT, "alice"),), True),
    ((("user", DEFAULT, None), ("client-id", SPECIFIED, None)), False),
    ((("ip", EXACT, "127.0.0.1"),), False),
    ((("", EXACT, "x"),), False), ((("user", EXACT, "a"), ("user", SPECIFIED, None)), False),
    ((("group", EXACT, "a"),), False), ((("user", EXACT, None),), False), ((("user", DEFAULT, "a"),), False),
    ((("user", SPECIFIED, "a"),), False), ((("user", 3, None),), False),
    ((("ip", SPECIFIED, None), ("client-id", EXACT, "c")), False)]


def test_describe_client_quotas_with_none_configured(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        types = request_types(48, 1)
        answers = []
        with closing(Wire(bootstrap)) as wire:
            for components, strict in QUOTA_FILTERS:
                answer = wire.call(build(types.DescribeClientQuotasRequest, strict=strict, components=tuple(
                    build(types.ComponentData, entity_type=entity_type, match_type=match_type, match=match)
                    for entity_type, match_type, match in components)))
                answers.append((answer.error_code, answer.error_message, answer.entries))
        return answers

    assert compare(targets, scenario)[0] == (0, "", ())


def test_admin_mistakes(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        existing = new_topic(bootstrap, 1)
        name = f"diff-{uuid.uuid4().hex[:10]}"
        attempts = {
            "exists": NewTopic(existing, num_partitions=1, replication_factor=1),
            "bad name": NewTopic("bad/name", num_partitions=1, replication_factor=1),
            "replication 3": NewTopic(name + "-r", num_partitions=1, replication_factor=3),
            "no partitions": NewTopic(name + "-p", num_partitions=0, replication_factor=1),
            "unknown config": NewTopic(name + "-c", num_partitions=1, replication_factor=1,
                                       config={"no.such.config": "1"}),
        }
        outcome: dict[str, Any] = {}
        for what, topic in attempts.items():
            try:
                admin.create_topics([topic])[topic.topic].result(timeout=30)
                outcome[what] = None
            except KafkaException as exc:
                outcome[what] = exc.args[0].code()
        try:
            admin.delete_topics([name + "-absent"])[name + "-absent"].result(timeout=30)
            outcome["delete absent"] = None
        except KafkaException as exc:
            outcome["delete absent"] = exc.args[0].code()
        wire = Wire(bootstrap)
        try:
            response = wire.call(produce(existing, {0: batch(b"x")}, acks=2))
            outcome["acks=2"] = [p.error_code for r in response.responses for p in r.partition_responses]
        finally:
            wire.close()
        return outcome

    seen = compare(targets, scenario)
    assert seen["exists"] == KafkaError.TOPIC_ALREADY_EXISTS


def transactional_init(wire: Wire, transactional_id: str, version: int = 4, *,
                       producer: tuple[int, int] = (-1, -1), timeout_ms: int = 60_000) -> Any:
    """InitProducerId with a transactional ID, retried while Kafka still loads its transaction state."""
    deadline = time.monotonic() + 30
    # Kafka answers NOT_COORDINATOR until its transaction state topic exists.
    retried = {ErrorCode.coordinator_load_in_progress, ErrorCode.not_coordinator,
               ErrorCode.coordinator_not_available}
    while True:
        # Asking for the coordinator is what makes Kafka create the topic.
        wire.call(build(request_types(FIND_COORDINATOR, 3).FindCoordinatorRequest,
                        key=transactional_id, key_type=1))
        answer = wire.call(build(request_types(INIT_PRODUCER_ID, version).InitProducerIdRequest,
                                 transactional_id=transactional_id,
                                 transaction_timeout=datetime.timedelta(milliseconds=timeout_ms),
                                 producer_id=producer[0], producer_epoch=producer[1]))
        if answer.error_code not in retried or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_transactional_producer_ids_epochs_and_fencing(targets: dict[str, str]) -> None:
    """InitProducerId with a transactional ID: the same epochs and the same errors as Kafka's."""
    def scenario(bootstrap: str) -> Any:
        wire = Wire(bootstrap)
        try:
            transactional_id = f"tx-{uuid.uuid4().hex[:8]}"
            first = transactional_init(wire, transactional_id)
            second = transactional_init(wire, transactional_id)
            by_itself = transactional_init(wire, transactional_id, producer=(second.producer_id, 1))
            retried = transactional_init(wire, transactional_id, producer=(second.producer_id, 1))
            zombie = transactional_init(wire, transactional_id, producer=(first.producer_id, 0))
            old_zombie = transactional_init(wire, transactional_id, 3, producer=(first.producer_id, 0))
            too_long = transactional_init(wire, transactional_id, timeout_ms=900_001)
            return {
                "epochs": [answer.producer_epoch for answer in (first, second, by_itself, retried)],
                "one producer ID": len({answer.producer_id for answer in (first, second, by_itself,
                                                                          retried)}) == 1,
                "errors": [answer.error_code for answer in (first, zombie, old_zombie, too_long)],
            }
        finally:
            wire.close()

    seen = compare(targets, scenario)
    assert seen == {"epochs": [0, 1, 2, 2], "one producer ID": True,
                    "errors": [ErrorCode.none, ErrorCode.producer_fenced, ErrorCode.invalid_producer_epoch,
                               ErrorCode.invalid_transaction_timeout]}


def test_transaction_admin_apis_describe_a_transactional_id_alike(targets: dict[str, str]) -> None:
    """ListTransactions, DescribeTransactions and DescribeProducers as Kafka answers them
    (producer IDs and times aside, which each side picks)."""
    def scenario(bootstrap: str) -> Any:
        wire = Wire(bootstrap)
        try:
            transactional_id = f"tx-{uuid.uuid4().hex[:8]}"
            init = transactional_init(wire, transactional_id, timeout_ms=45_000)
            again = transactional_init(wire, transactional_id, timeout_ms=45_000)
            listed = wire.call(build(request_types(LIST_TRANSACTIONS, 1).ListTransactionsRequest,
                                     producer_id_filters=(init.producer_id,),
                                     state_filters=("Empty", "Unheard-of")))
            described, unknown = described_transactions(wire, transactional_id, transactional_id + "-unknown")
            topic = new_topic(bootstrap, 1)
            producer = first_producer_id(wire)
            assert send_one(wire, topic, idempotent_batch(producer, 0, b"a", b"b"))[0] == ErrorCode.none
            types = request_types(DESCRIBE_PRODUCERS, 0)
            (producers,) = wire.call(build(types.DescribeProducersRequest, topics=(
                build(types.TopicRequest, name=topic, partition_indexes=(0, 1)),))).topics
            return {
                "listed": [(state.transactional_id == transactional_id, state.producer_id == init.producer_id,
                            state.transaction_state) for state in listed.transaction_states],
                "unknown states": listed.unknown_state_filters,
                "described": (described.error_code, described.state, described.timeout_ms, described.start_ms,
                              described.producer_id == init.producer_id, described.producer_epoch,
                              described.topics, again.producer_epoch),
                "unknown": (unknown.error_code, unknown.state, unknown.producer_id, unknown.producer_epoch,
                            unknown.start_ms),
                "producers": [(p.partition_index, p.error_code,
                               [(s.producer_id == producer.id, s.producer_epoch, s.last_sequence,
                                 s.coordinator_epoch, s.current_txn_start_offset)
                                for s in p.active_producers])
                              for p in producers.partitions],
            }
        finally:
            wire.close()

    seen = compare(targets, scenario)
    assert seen["described"][:2] == (ErrorCode.none.value, "Empty")
    assert seen["unknown"][0] == ErrorCode.transactional_id_not_found.value


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_read_back_alike(targets: dict[str, str], codec: str) -> None:
    records = [{"value": f"value-{i}".encode() * 20, "key": f"k{i}".encode(),
                "timestamp": 1_700_000_000_000 + i} for i in range(50)]

    def scenario(bootstrap: str) -> Outcome:
        topic = new_topic(bootstrap, 1)
        producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 50,
                             "enable.idempotence": False})
        reports: list[tuple[Any, int]] = []

        def on_delivery(err: Any, msg: Any) -> None:
            reports.append((err, msg.offset()))

        for record in records:  # produced together: a few compressed batches
            producer.produce(topic, on_delivery=on_delivery, **record)
        assert producer.flush(30) == 0
        return {"delivered": sorted(reports, key=lambda r: r[1]), "read": read_all(bootstrap, topic, 1),
                "watermarks": watermarks(bootstrap, topic, 0)}

    seen = compare(targets, scenario)
    assert seen["watermarks"] == (0, 50)


def test_delete_records(targets: dict[str, str]) -> None:
    def scenario(bootstrap: str) -> Outcome:
        topic = new_topic(bootstrap, 1)
        delivered(bootstrap, topic, [{"value": f"{i}".encode()} for i in range(5)])
        admin = AdminClient({"bootstrap.servers": bootstrap})
        outcome: dict[str, Any] = {}
        for what, offset, partition in (("below 2", 2, 0), ("past the end", 10, 0), ("bad partition", 1, 4),
                                        ("to the end (-1)", -1, 0)):
            target = TopicPartition(topic, partition, offset)
            future = admin.delete_records([target])[target]
            try:
                outcome[what] = future.result(timeout=30).low_watermark
            except KafkaException as exc:
                outcome[what] = exc.args[0].code()
            if what == "below 2":
                outcome["watermarks after"] = watermarks(bootstrap, topic, 0)
                wire = Wire(bootstrap)
                try:
                    below = fetched(wire.call(fetch(12, 0, topic=topic)))
                    outcome["fetch below"] = (below.error_code, below.high_watermark, below.log_start_offset)
                finally:
                    wire.close()
        outcome["watermarks at the end"] = watermarks(bootstrap, topic, 0)
        wire = Wire(bootstrap)
        try:  # what the broker answers for the bad partition librdkafka does not send
            (answer,) = wire.call(delete_records(topic, 4, 1)).topics
            outcome["raw, bad partition"] = [(p.error_code, p.low_watermark) for p in answer.partitions]
        finally:
            wire.close()
        return outcome

    seen = compare(targets, scenario)
    assert seen["below 2"] == 2
    assert seen["past the end"] == KafkaError.OFFSET_OUT_OF_RANGE
    assert seen["bad partition"] == KafkaError._NOENT  # librdkafka's own check, from Metadata
    assert seen["raw, bad partition"] == [(ErrorCode.unknown_topic_or_partition, -1)]
    assert seen["fetch below"] == (ErrorCode.offset_out_of_range, -1, -1)
