"""Transactions (issue #16): the transaction coordinator's state in Redis.

So far InitProducerId with a transactional ID (KIP-98, KIP-360), spoken in
raw Kafka frames (clients cannot get there yet: FindCoordinator for a
transaction coordinator still refuses, test_idempotence), and the
transaction's states driven through the storage layer, with the state
looked at in Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import signal
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]
from confluent_kafka.admin import ResourceType as ConfigResourceType
from kafka_redis_gateway.gateway.storage import RedisStorage, keys
from kafka_redis_gateway.gateway.storage.transactions import (
    MAX_TRANSACTION_MEMBERS,
    Ending,
    InitTransaction,
    Producer,
    group_member,
    partition_member,
)
from kio.schema.errors import ErrorCode

from tests.integration.test_cluster import wait_for_brokers
from tests.integration.test_idempotence import INIT_PRODUCER_ID, idempotent_batch, new_producer, send_one
from tests.integration.test_protocol import Wire, build, create_topic, request_types
from tests.servers import GatewayProcess, RedisServer

# Kafka's last epoch of a producer ID (TransactionMetadata.isEpochExhausted).
LAST_EPOCH = 32766


@pytest.fixture
def wire(bootstrap: str) -> Iterator[Wire]:
    connection = Wire(bootstrap)
    yield connection
    connection.close()


@pytest.fixture
def transactional_id() -> str:
    return f"tx-{uuid.uuid4().hex[:12]}"


def init(wire: Wire, transactional_id: str, version: int = 5, *, producer: tuple[int, int] = (-1, -1),
         timeout_ms: int = 60_000) -> tuple[ErrorCode, int, int]:
    types = request_types(INIT_PRODUCER_ID, version)
    response = wire.call(build(types.InitProducerIdRequest, transactional_id=transactional_id,
                               transaction_timeout=datetime.timedelta(milliseconds=timeout_ms),
                               producer_id=producer[0], producer_epoch=producer[1]))
    return response.error_code, response.producer_id, response.producer_epoch


def stored(client: redis.Redis, transactional_id: str) -> dict[str, str]:
    raw = client.hgetall(keys.transaction(transactional_id))
    return {name.decode(): value.decode() for name, value in raw.items()}


@pytest.mark.parametrize("version", [0, 3, 5])
def test_a_new_transactional_id_gets_a_producer_id_then_its_next_epochs(
        wire: Wire, redis_client: redis.Redis, transactional_id: str, version: int) -> None:
    code, producer_id, epoch = init(wire, transactional_id, version)
    assert (code, epoch) == (ErrorCode.none, 0)
    assert producer_id >= 0
    assert init(wire, transactional_id, version) == (ErrorCode.none, producer_id, 1)
    assert init(wire, transactional_id, version) == (ErrorCode.none, producer_id, 2)
    state = stored(redis_client, transactional_id)
    assert (state["pid"], state["epoch"], state["state"], state["timeout_ms"]) == (
        str(producer_id), "2", "Empty", "60000")
    # Another transactional ID: another producer ID.
    other = init(wire, transactional_id + "-other", version)
    assert other[0] == ErrorCode.none and other[1] != producer_id


def test_a_producer_naming_itself_bumps_its_epoch_and_a_retry_gets_the_same(
        wire: Wire, transactional_id: str) -> None:
    _, producer_id, _ = init(wire, transactional_id)
    assert init(wire, transactional_id, producer=(producer_id, 0)) == (ErrorCode.none, producer_id, 1)
    # The same request again (its answer lost): the same answer, not epoch 2.
    assert init(wire, transactional_id, producer=(producer_id, 0)) == (ErrorCode.none, producer_id, 1)


@pytest.mark.parametrize(("version", "fenced"), [(4, ErrorCode.producer_fenced),
                                                 (5, ErrorCode.producer_fenced),
                                                 (3, ErrorCode.invalid_producer_epoch)])
def test_a_zombie_naming_its_old_epoch_is_fenced(wire: Wire, transactional_id: str, version: int,
                                                 fenced: ErrorCode) -> None:
    _, producer_id, _ = init(wire, transactional_id)
    init(wire, transactional_id)  # a new producer instance: epoch 1
    init(wire, transactional_id)  # and another: epoch 2
    assert init(wire, transactional_id, version, producer=(producer_id, 0)) == (fenced, -1, -1)
    # Naming another producer ID altogether: fenced too.
    assert init(wire, transactional_id, version, producer=(producer_id + 10_000, 2))[0] == fenced


def test_used_up_epochs_give_a_new_producer_id(wire: Wire, redis_client: redis.Redis,
                                               transactional_id: str) -> None:
    _, producer_id, _ = init(wire, transactional_id)
    redis_client.hset(keys.transaction(transactional_id), "epoch", LAST_EPOCH)
    code, new_id, epoch = init(wire, transactional_id, producer=(producer_id, LAST_EPOCH))
    assert (code, epoch) == (ErrorCode.none, 0)
    assert new_id != producer_id
    # The old ID with its last epoch is a retry of that rotation (its answer
    # lost), not a zombie: the same answer again.
    assert init(wire, transactional_id, producer=(producer_id, LAST_EPOCH)) == (ErrorCode.none, new_id, 0)


@pytest.mark.parametrize("timeout_ms", [0, 900_001])
def test_a_timeout_beyond_the_maximum_is_refused(wire: Wire, redis_client: redis.Redis,
                                                 transactional_id: str, timeout_ms: int) -> None:
    refused = init(wire, transactional_id, timeout_ms=timeout_ms)
    assert refused == (ErrorCode.invalid_transaction_timeout, -1, -1)
    assert not redis_client.exists(keys.transaction(transactional_id))
    assert init(wire, transactional_id, timeout_ms=900_000)[0] == ErrorCode.none


async def test_a_writer_with_a_superseded_fencing_token_writes_nothing(
        storage: RedisStorage, redis_client: redis.Redis, transactional_id: str) -> None:
    # What a gateway that lost the ID's coordinator lease to another still tries.
    redis_client.hset(keys.transaction(transactional_id), "lease:token", 3)
    superseded = await storage.init_transaction(InitTransaction(transactional_id, 60_000, fencing_token=2))
    assert superseded.error_code == ErrorCode.not_coordinator.value
    assert stored(redis_client, transactional_id) == {"lease:token": "3"}
    current = await storage.init_transaction(InitTransaction(transactional_id, 60_000, fencing_token=3))
    assert (current.error_code, current.producer_epoch) == (0, 0)
    assert stored(redis_client, transactional_id)["epoch"] == "0"


# -- the transaction's states (storage/transactions.py) ---------------------------------
# Adding partitions and ending transactions is not served on the wire yet;
# the scripts are driven here through the storage layer.


async def started(storage: RedisStorage, wire: Wire, transactional_id: str,
                  *members: str) -> Producer:
    _, producer_id, epoch = init(wire, transactional_id)
    producer = Producer(transactional_id, producer_id, epoch)
    assert await storage.add_to_transaction(producer, list(members)) == 0
    return producer


async def test_a_transaction_starts_with_its_first_partition_and_lists_its_members(
        storage: RedisStorage, wire: Wire, redis_client: redis.Redis, transactional_id: str) -> None:
    producer = await started(storage, wire, transactional_id, partition_member("a", 0))
    state = stored(redis_client, transactional_id)
    assert (state["state"], state["members"], state["p:a:0"]) == ("Ongoing", "1", "1")
    began = state["started_ms"]
    # More partitions, one already there, and a group: the transaction goes on.
    assert await storage.add_to_transaction(
        producer, [partition_member("a", 0), partition_member("b", 3), group_member("g1")]) == 0
    state = stored(redis_client, transactional_id)
    assert (state["members"], state["started_ms"]) == ("3", began)


async def test_adding_checks_the_producer_and_the_limit(
        storage: RedisStorage, wire: Wire, transactional_id: str) -> None:
    producer = await started(storage, wire, transactional_id)
    other_id = Producer(transactional_id, producer.producer_id + 1, producer.producer_epoch)
    old_epoch = Producer(transactional_id, producer.producer_id, producer.producer_epoch - 1)
    unknown = Producer(transactional_id + "-unknown", producer.producer_id, producer.producer_epoch)
    one = [partition_member("a", 0)]
    assert await storage.add_to_transaction(other_id, one) == ErrorCode.invalid_producer_id_mapping.value
    assert await storage.add_to_transaction(old_epoch, one) == ErrorCode.producer_fenced.value
    assert await storage.add_to_transaction(unknown, one) == ErrorCode.invalid_producer_id_mapping.value
    too_many = [partition_member("t", p) for p in range(MAX_TRANSACTION_MEMBERS + 1)]
    assert await storage.add_to_transaction(producer, too_many) == ErrorCode.invalid_request.value


@pytest.mark.parametrize("commit", [True, False])
async def test_ending_prepares_then_completes_and_a_retry_is_answered(
        storage: RedisStorage, wire: Wire, redis_client: redis.Redis, transactional_id: str,
        commit: bool) -> None:
    producer = await started(storage, wire, transactional_id, partition_member("a", 0),
                             partition_member("a", 1), group_member("g1"))
    ending = await storage.end_transaction(producer, commit)
    assert isinstance(ending, Ending)
    assert sorted(ending.members.partitions) == [("a", 0), ("a", 1)]
    assert ending.members.groups == ("g1",)
    assert stored(redis_client, transactional_id)["state"] == ("PrepareCommit" if commit else "PrepareAbort")
    # Ending meanwhile: retry; the other outcome: refused; adding: retry.
    assert await storage.end_transaction(producer, commit) == ErrorCode.concurrent_transactions.value
    assert await storage.end_transaction(producer, not commit) == ErrorCode.invalid_txn_state.value
    assert await storage.add_to_transaction(producer, [partition_member("c", 0)]) == \
        ErrorCode.concurrent_transactions.value
    assert await storage.complete_transaction(ending) == 0
    state = stored(redis_client, transactional_id)
    assert state["state"] == ("CompleteCommit" if commit else "CompleteAbort")
    assert not [name for name in state if name.startswith(("p:", "g:"))]
    # A retried EndTxn: done already; the other outcome: refused.
    assert await storage.end_transaction(producer, commit) == 0
    assert await storage.end_transaction(producer, not commit) == ErrorCode.invalid_txn_state.value
    # The next transaction starts afresh.
    assert await storage.add_to_transaction(producer, [partition_member("c", 0)]) == 0
    assert stored(redis_client, transactional_id)["state"] == "Ongoing"


async def test_ending_without_a_transaction_is_an_invalid_state(
        storage: RedisStorage, wire: Wire, transactional_id: str) -> None:
    _, producer_id, epoch = init(wire, transactional_id)
    producer = Producer(transactional_id, producer_id, epoch)
    assert await storage.end_transaction(producer, True) == ErrorCode.invalid_txn_state.value
    fenced = Producer(transactional_id, producer_id, epoch + 1)
    assert await storage.end_transaction(fenced, True) == ErrorCode.producer_fenced.value


def test_a_new_producer_fences_the_old_ones_transaction_and_retries(
        wire: Wire, redis_client: redis.Redis, transactional_id: str) -> None:
    _, producer_id, epoch = init(wire, transactional_id)
    # The old producer's transaction is under way (as AddPartitionsToTxn leaves it).
    redis_client.hset(keys.transaction(transactional_id),
                      mapping={"state": "Ongoing", "started_ms": 1, "members": 1, "p:a:0": 1})
    # As Kafka: the old epoch is fenced and its transaction aborted; retry.
    assert init(wire, transactional_id) == (ErrorCode.concurrent_transactions, -1, -1)
    state = stored(redis_client, transactional_id)
    assert (state["state"], state["epoch"], state["members"]) == ("CompleteAbort", str(epoch + 1), "0")
    assert "p:a:0" not in state
    assert init(wire, transactional_id) == (ErrorCode.none, producer_id, epoch + 2)


async def test_a_transaction_past_its_timeout_is_fenced_and_aborted(
        storage: RedisStorage, wire: Wire, redis_client: redis.Redis, transactional_id: str) -> None:
    producer = await started(storage, wire, transactional_id, partition_member("a", 0))
    assert await storage.fence_transaction(transactional_id, None, "timeout") is None
    redis_client.hset(keys.transaction(transactional_id), "started_ms", 1)
    ending = await storage.fence_transaction(transactional_id, None, "timeout")
    assert isinstance(ending, Ending) and not ending.commit
    assert ending.producer.producer_epoch == producer.producer_epoch + 1
    assert ending.members.partitions == (("a", 0),)
    assert await storage.complete_transaction(ending) == 0
    # The producer, still at its old epoch, learns it was fenced.
    assert await storage.end_transaction(producer, True) == ErrorCode.producer_fenced.value


async def test_the_controller_aborts_a_transaction_past_its_timeout(tmp_path: Path) -> None:
    # A Redis of its own: on the session one, the session gateway would be
    # the cluster's controller, which is the gateway that sweeps.
    redis_server = RedisServer(tmp_path / "redis").start()
    gateway = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log", extra_args=[
        "--transaction-abort-timed-out-interval-ms", "100"]).start()
    client = redis_server.client()
    store = RedisStorage(redis_server.url)
    wire = Wire(gateway.bootstrap)
    try:
        transactional_id = "tx-slow"
        code, producer_id, epoch = init(wire, transactional_id, timeout_ms=1000)
        assert code == ErrorCode.none
        producer = Producer(transactional_id, producer_id, epoch)
        assert await store.add_to_transaction(producer, [partition_member("a", 0)]) == 0
        quiet = Producer("tx-quiet", *init(wire, "tx-quiet")[1:])
        assert await store.add_to_transaction(quiet, [partition_member("a", 1)]) == 0
        # Prepared by a gateway that died before completing it.
        orphan = Producer("tx-orphan", *init(wire, "tx-orphan")[1:])
        assert await store.add_to_transaction(orphan, [partition_member("a", 2)]) == 0
        assert isinstance(await store.end_transaction(orphan, True), Ending)
        deadline = time.monotonic() + 10
        while stored(client, transactional_id)["state"] == "Ongoing" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        state = stored(client, transactional_id)
        assert (state["state"], state["epoch"]) == ("CompleteAbort", str(epoch + 1))
        assert await store.end_transaction(producer, True) == ErrorCode.producer_fenced.value
        # Another, with the default 60 s timeout, goes on; the prepared one is finished.
        assert stored(client, "tx-quiet")["state"] == "Ongoing"
        assert stored(client, "tx-orphan")["state"] == "CompleteCommit"
        assert gateway.log_path is not None
        assert "aborted tx-slow's transaction" in gateway.log_path.read_text()
    finally:
        wire.close()
        await store.close()
        gateway.stop()
        redis_server.stop()


# -- ListTransactions ------------------------------------------------------------------

LIST_TRANSACTIONS = 66
KAFKA_TRANSACTIONS = Path("/opt/kafka-broker/bin/kafka-transactions.sh")


def listed(wire: Wire, version: int = 1, **filters: Any) -> tuple[Any, dict[str, tuple[int, str]]]:
    response = wire.call(build(request_types(LIST_TRANSACTIONS, version).ListTransactionsRequest, **filters))
    return response, {state.transactional_id: (state.producer_id, state.transaction_state)
                      for state in response.transaction_states}


async def test_list_transactions_with_filters(storage: RedisStorage, wire: Wire, redis_client: redis.Redis,
                                              transactional_id: str) -> None:
    empty_id, ongoing_id = transactional_id + "-empty", transactional_id + "-ongoing"
    _, empty_pid, _ = init(wire, empty_id)
    ongoing = await started(storage, wire, ongoing_id, partition_member("a", 0))
    response, states = listed(wire, 0)
    assert response.error_code == ErrorCode.none
    assert states[empty_id] == (empty_pid, "Empty")
    assert states[ongoing_id] == (ongoing.producer_id, "Ongoing")
    _, states = listed(wire, state_filters=("Ongoing",))
    assert ongoing_id in states and empty_id not in states
    _, states = listed(wire, producer_id_filters=(empty_pid,))
    assert set(states) == {empty_id}
    response, states = listed(wire, state_filters=("Ongoing", "Nonsense"))
    assert response.unknown_state_filters == ("Nonsense",)
    assert ongoing_id in states
    # Duration (v1): the Ongoing one started a moment ago; made to have started an hour ago.
    _, states = listed(wire, producer_id_filters=(ongoing.producer_id,), duration_filter=60_000)
    assert states == {}
    redis_client.hset(keys.transaction(ongoing_id), "started_ms", int(time.time() * 1000) - 3_600_000)
    _, states = listed(wire, producer_id_filters=(ongoing.producer_id,), duration_filter=60_000)
    assert set(states) == {ongoing_id}


@pytest.mark.skipif(not KAFKA_TRANSACTIONS.exists(), reason=f"no {KAFKA_TRANSACTIONS}")
async def test_kafka_transactions_tool_lists_them(storage: RedisStorage, wire: Wire, bootstrap: str,
                                                  transactional_id: str) -> None:
    ongoing = await started(storage, wire, transactional_id, partition_member("a", 0))
    done = subprocess.run([str(KAFKA_TRANSACTIONS), "--bootstrap-server", bootstrap, "list"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, KAFKA_LOG_LEVEL="warn"))
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0][:4] == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
    assert [transactional_id, "0", str(ongoing.producer_id), "Ongoing"] in rows


# -- DescribeProducers -------------------------------------------------------------------

DESCRIBE_PRODUCERS = 61


def described_producers(wire: Wire, topic: str, *partitions: int) -> dict[int, Any]:
    types = request_types(DESCRIBE_PRODUCERS, 0)
    response = wire.call(build(types.DescribeProducersRequest, topics=(
        build(types.TopicRequest, name=topic, partition_indexes=partitions),)))
    (topic_response,) = response.topics
    assert topic_response.name == topic
    return {p.partition_index: p for p in topic_response.partitions}


def test_describe_producers_shows_each_idempotent_producers_newest_batch(wire: Wire, topic_name: str) -> None:
    create_topic(wire, topic_name, partitions=2)
    first, second = new_producer(wire), new_producer(wire)
    before = int(time.time() * 1000)
    assert send_one(wire, topic_name, idempotent_batch(first, 0, b"a", b"b"))[0] == ErrorCode.none
    assert send_one(wire, topic_name, idempotent_batch(first, 2, b"c"))[0] == ErrorCode.none
    assert send_one(wire, topic_name, idempotent_batch(second, 0, b"d"))[0] == ErrorCode.none
    partitions = described_producers(wire, topic_name, 0, 1, 2)
    assert partitions[0].error_code == ErrorCode.none
    shown = {(p.producer_id, p.producer_epoch, p.last_sequence, p.coordinator_epoch,
              p.current_txn_start_offset) for p in partitions[0].active_producers}
    assert shown == {(first.id, 0, 2, -1, -1), (second.id, 0, 0, -1, -1)}
    assert all(p.last_timestamp >= before - 1000 for p in partitions[0].active_producers)
    assert (partitions[1].error_code, partitions[1].active_producers) == (ErrorCode.none, ())
    assert partitions[2].error_code == ErrorCode.unknown_topic_or_partition
    unknown = described_producers(wire, topic_name + "-unknown", 0)
    assert unknown[0].error_code == ErrorCode.unknown_topic_or_partition


@pytest.mark.skipif(not KAFKA_TRANSACTIONS.exists(), reason=f"no {KAFKA_TRANSACTIONS}")
def test_kafka_transactions_tool_describes_producers(wire: Wire, bootstrap: str, topic_name: str) -> None:
    create_topic(wire, topic_name)
    producer = new_producer(wire)
    assert send_one(wire, topic_name, idempotent_batch(producer, 0, b"a", b"b", b"c"))[0] == ErrorCode.none
    done = subprocess.run([str(KAFKA_TRANSACTIONS), "--bootstrap-server", bootstrap, "describe-producers",
                           "--topic", topic_name, "--partition", "0"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, KAFKA_LOG_LEVEL="warn"))
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0][:4] == ["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence"]
    assert rows[1][:4] == [str(producer.id), "0", "-1", "2"]


# -- DescribeTransactions ----------------------------------------------------------------

DESCRIBE_TRANSACTIONS = 65


@dataclasses.dataclass
class Described:
    error_code: int
    transactional_id: str
    state: str
    timeout_ms: int
    # Kafka's -1 for none; kio refuses to decode a negative timestamp, so
    # the answer is read here.
    start_ms: int
    producer_id: int
    producer_epoch: int
    topics: list[tuple[str, list[int]]]


class Reader:
    """The few types of a flexible DescribeTransactions v0 response."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def fixed(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def uvarint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def string(self) -> str:
        size = self.uvarint() - 1
        text = self.data[self.pos:self.pos + size].decode()
        self.pos += size
        return text

    def no_tags(self) -> None:
        assert self.uvarint() == 0


def described_transactions(wire: Wire, *transactional_ids: str) -> list[Described]:
    wire.send(build(request_types(DESCRIBE_TRANSACTIONS, 0).DescribeTransactionsRequest,
                    transactional_ids=transactional_ids))
    reader = Reader(wire.receive_frame(), 4)  # after the correlation ID
    reader.no_tags()
    reader.fixed(">i")  # throttle time
    answers = []
    for _ in range(reader.uvarint() - 1):
        error_code, transactional_id, state = reader.fixed(">h"), reader.string(), reader.string()
        timeout_ms, start_ms = reader.fixed(">i"), reader.fixed(">q")
        producer_id, producer_epoch = reader.fixed(">q"), reader.fixed(">h")
        topics = []
        for _ in range(reader.uvarint() - 1):
            topic = reader.string()
            topics.append((topic, [reader.fixed(">i") for _ in range(reader.uvarint() - 1)]))
            reader.no_tags()
        reader.no_tags()
        answers.append(Described(error_code, transactional_id, state, timeout_ms, start_ms, producer_id,
                                 producer_epoch, topics))
    return answers


async def test_describe_transactions(storage: RedisStorage, wire: Wire, transactional_id: str) -> None:
    empty_id = transactional_id + "-empty"
    _, empty_pid, _ = init(wire, empty_id, timeout_ms=30_000)
    before = time.time()
    ongoing = await started(storage, wire, transactional_id, partition_member("b", 2),
                            partition_member("a", 0), partition_member("b", 0), group_member("g1"))
    empty, described, unknown, again = described_transactions(
        wire, empty_id, transactional_id, transactional_id + "-unknown", empty_id)
    assert empty == Described(0, empty_id, "Empty", 30_000, -1, empty_pid, 0, [])
    assert again == empty
    assert (described.error_code, described.state) == (0, "Ongoing")
    assert described.producer_id == ongoing.producer_id
    assert described.topics == [("a", [0]), ("b", [0, 2])]
    assert described.start_ms >= (before - 1) * 1000
    # As Kafka: the fields at their defaults (test_differential).
    assert (unknown.error_code, unknown.producer_id, unknown.start_ms) == (
        ErrorCode.transactional_id_not_found.value, 0, 0)
    (invalid,) = described_transactions(wire, "")
    assert invalid.error_code == ErrorCode.invalid_request.value


# -- coordinator leases ---------------------------------------------------------------

LEASE_MS = 1500


async def test_a_transaction_outlives_its_coordinator_gateway(tmp_path: Path) -> None:
    """Three gateways on one Redis; the one holding the ID's lease is killed mid-transaction."""
    redis_server = RedisServer(tmp_path / "redis").start()
    gateways = [GatewayProcess(redis_server.url, log_path=tmp_path / f"gateway-{n}.log",
                               extra_args=["--broker-lease-ms", str(LEASE_MS)]).start() for n in range(3)]
    client = redis_server.client()
    store = RedisStorage(redis_server.url)
    wires = [Wire(gateway.bootstrap) for gateway in gateways]
    transactional_id = "tx-moving"
    try:
        # The first gateway asked takes the ID's lease; the others are not its coordinator.
        code, producer_id, epoch = init(wires[0], transactional_id)
        assert (code, epoch) == (ErrorCode.none, 0)
        assert init(wires[1], transactional_id)[0] == ErrorCode.not_coordinator
        assert init(wires[0], transactional_id) == (ErrorCode.none, producer_id, 1)
        # Its transaction is under way (AddPartitionsToTxn is not served yet: storage).
        producer = Producer(transactional_id, producer_id, 1)
        assert await store.add_to_transaction(producer, [partition_member("a", 0)]) == 0
        token_before = int(client.hget(keys.transaction(transactional_id), "lease:token"))
        wires[0].close()
        gateways[0].stop(signal.SIGKILL)
        # A new producer instance finds another gateway coordinating the ID once the
        # lease ends: the old producer's transaction is aborted, and it retries.
        deadline = time.monotonic() + 30
        answers: list[tuple[ErrorCode, int, int]] = []
        while time.monotonic() < deadline:
            answers = [init(wire, transactional_id) for wire in wires[1:]]
            if any(answer[0] != ErrorCode.not_coordinator for answer in answers):
                break
            await asyncio.sleep(0.2)
        (code, _, _), = [answer for answer in answers if answer[0] != ErrorCode.not_coordinator]
        assert code == ErrorCode.concurrent_transactions
        coordinator = wires[1 + [answer[0] for answer in answers].index(code)]
        state = stored(client, transactional_id)
        assert (state["state"], state["epoch"]) == ("CompleteAbort", "2")
        assert int(state["lease:token"]) > token_before
        assert init(coordinator, transactional_id) == (ErrorCode.none, producer_id, 3)
        # The killed gateway's token is stale: its writes are refused.
        stale = InitTransaction(transactional_id, 60_000, fencing_token=token_before)
        assert (await store.init_transaction(stale)).error_code == ErrorCode.not_coordinator.value
    finally:
        for wire in wires[1:]:
            wire.close()
        await store.close()
        for gateway in gateways[1:]:
            gateway.stop()
        redis_server.stop()


# -- transactional ID expiry ---------------------------------------------------------------


async def test_an_unused_transactional_id_is_forgotten_but_not_one_in_use(
        storage: RedisStorage, wire: Wire, redis_client: redis.Redis, transactional_id: str) -> None:
    in_use = transactional_id + "-in-use"
    _, producer_id, _ = init(wire, transactional_id)
    await started(storage, wire, in_use, partition_member("a", 0))
    token = stored(redis_client, transactional_id)["lease:token"]  # the session gateway's lease
    assert not await storage.expire_transaction(transactional_id, None, 60_000)
    assert redis_client.hexists(keys.TRANSACTIONS, transactional_id)
    assert not await storage.expire_transaction(in_use, None, 0)
    assert redis_client.hexists(keys.TRANSACTIONS, in_use)
    assert await storage.expire_transaction(transactional_id, None, 0)
    # Forgotten, but its lease stays, so the fencing token never goes down.
    left = stored(redis_client, transactional_id)
    assert all(name.startswith("lease:") for name in left) and left["lease:token"] == token
    assert not redis_client.hexists(keys.TRANSACTIONS, transactional_id)
    # As after Kafka's expiry: a new producer ID.
    code, new_id, epoch = init(wire, transactional_id)
    assert (code, epoch) == (ErrorCode.none, 0) and new_id != producer_id
    assert redis_client.hexists(keys.TRANSACTIONS, transactional_id)


async def test_the_sweep_forgets_transactional_ids_past_their_expiration(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    gateway = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log", extra_args=[
        "--transaction-abort-timed-out-interval-ms", "100",
        "--transactional-id-expiration-ms", "1500"]).start()
    client = redis_server.client()
    wire = Wire(gateway.bootstrap)
    try:
        assert init(wire, "tx-idle")[0] == ErrorCode.none
        assert client.hexists(keys.TRANSACTIONS, "tx-idle")
        deadline = time.monotonic() + 10
        while client.hexists(keys.TRANSACTIONS, "tx-idle") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not client.hexists(keys.TRANSACTIONS, "tx-idle")
        assert "pid" not in stored(client, "tx-idle")
        assert gateway.log_path is not None
        assert "forgot transactional ID tx-idle" in gateway.log_path.read_text()
    finally:
        wire.close()
        gateway.stop()
        redis_server.stop()


def test_the_transaction_settings_are_broker_configs(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResourceType.BROKER, "0")
    (future,) = admin.describe_configs([resource]).values()
    configs = future.result(timeout=30)
    assert configs["transaction.max.timeout.ms"].value == "900000"
    assert configs["transactional.id.expiration.ms"].value == "604800000"
    assert configs["transaction.abort.timed.out.transaction.cleanup.interval.ms"].value == "10000"


@pytest.mark.skipif(not KAFKA_TRANSACTIONS.exists(), reason=f"no {KAFKA_TRANSACTIONS}")
def test_kafka_transactions_tool_lists_each_id_once_across_gateways(tmp_path: Path) -> None:
    """Each gateway lists the IDs it coordinates; the tool asks all and merges."""
    redis_server = RedisServer(tmp_path / "redis").start()
    gateways = [GatewayProcess(redis_server.url, log_path=tmp_path / f"gateway-{n}.log",
                               extra_args=["--broker-lease-ms", str(LEASE_MS)]).start() for n in range(3)]
    wires = [Wire(gateway.bootstrap) for gateway in gateways]
    try:
        # Every gateway in every view first: Metadata below must list all three.
        for gateway in gateways:
            wait_for_brokers(gateway.bootstrap, {g.bootstrap for g in gateways})
        # ID n asked first of gateway n % 3, which takes its lease.
        coordinator_of = {}
        for n in range(9):
            transactional_id = f"tx-spread-{n}"
            for index in [(n + k) % 3 for k in range(3)]:
                code, _, _ = init(wires[index], transactional_id)
                if code == ErrorCode.none:
                    coordinator_of[transactional_id] = index
                    break
        assert sorted(coordinator_of.values()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        brokers = AdminClient({"bootstrap.servers": gateways[0].bootstrap}).list_topics(timeout=30).brokers
        node_of_port = {broker.port: str(broker.id) for broker in brokers.values()}
        node_ids = [node_of_port[gateway.port] for gateway in gateways]
        done = subprocess.run([str(KAFKA_TRANSACTIONS), "--bootstrap-server", gateways[0].bootstrap, "list"],
                              capture_output=True, text=True, timeout=120, check=False,
                              env=dict(os.environ, KAFKA_LOG_LEVEL="warn"))
        assert done.returncode == 0, done.stderr
        rows = [line.split() for line in done.stdout.splitlines()[1:]]
        assert sorted((row[0], row[1]) for row in rows) == sorted(
            (transactional_id, node_ids[index]) for transactional_id, index in coordinator_of.items())
    finally:
        for wire in wires:
            wire.close()
        for gateway in gateways:
            gateway.stop()
        redis_server.stop()
