"""Leader epochs (KIP-320): a log cut by a failover or restart is detected, not hidden.

The bookkeeping in the partition's meta hash (storage), the epochs in
Metadata, Fetch, ListOffsets and OffsetForLeaderEpoch across a restart of
the gateway's own Redis (raw requests), a consumer across a Redis restarted
from an older snapshot, and confluent-kafka consumers and
Kafka's Java console consumer that had read past the end of a Redis Cluster
primary's replica when that replica took over: they are told of the
truncation and resume at the new end.
"""

from __future__ import annotations

import datetime
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka_redis_gateway.gateway.storage import AppendBatch, AppendRequest, ReadRequest, RedisStorage, keys
from kafka_redis_gateway.protocol.records import Record, decode_batches
from kio.schema.errors import ErrorCode

from tests.integration.test_confluent import Rec, create_topic, produce_ok
from tests.integration.test_protocol import (
    FETCH,
    LIST_OFFSETS,
    Wire,
    batch,
    build,
    metadata,
    produce,
    request_types,
)
from tests.integration.test_protocol import (
    create_topic as create_topic_raw,
)
from tests.redis_cluster import RedisClusterServers, module_redis_cluster
from tests.servers import GatewayProcess, RedisServer

OFFSET_FOR_LEADER_EPOCH = 23


def records(count: int) -> AppendBatch:
    return AppendBatch.of_records([Record(1000 + i, None, b"r%d" % i, ()) for i in range(count)])


async def append(storage: RedisStorage, topic: str, count: int) -> None:
    (result,) = await storage.append([AppendRequest(topic, 0, [records(count)])])
    assert not isinstance(result, Exception), result


async def epochs_of(storage: RedisStorage, topic: str) -> tuple[int, tuple[tuple[int, int], ...]]:
    ((end, epochs),) = await storage.leader_epochs([(topic, 0)])  # type: ignore[misc]
    return end, epochs.entries


def new_leader(client: redis.Redis, topic: str) -> None:
    """What a failover or restart looks like to the meta hash: another server began its epoch."""
    client.hset(keys.partition_meta(topic, 0), "leader_replid", "0" * 40)


async def test_a_new_leader_begins_an_epoch_at_the_end_offset(
        storage: RedisStorage, redis_client: redis.Redis, topic_name: str) -> None:
    await storage.create_topic(topic_name, 1, {})
    assert await epochs_of(storage, topic_name) == (0, ((0, 0),))
    await append(storage, topic_name, 3)
    assert await epochs_of(storage, topic_name) == (3, ((0, 0),))
    new_leader(redis_client, topic_name)
    # Reported at once, stored by the next append (before its entries).
    assert await epochs_of(storage, topic_name) == (3, ((0, 0), (1, 3)))
    assert redis_client.hget(keys.partition_meta(topic_name, 0), "leader_epochs") == b"0:0"
    await append(storage, topic_name, 2)
    assert redis_client.hget(keys.partition_meta(topic_name, 0), "leader_epochs") == b"0:0,1:3"
    (read,) = await storage.read([ReadRequest(topic_name, 0, 0, 1 << 20)])
    assert not isinstance(read, Exception)
    assert read.epochs.entries == ((0, 0), (1, 3))
    assert [read.epochs.epoch_of(offset) for offset in range(5)] == [0, 0, 0, 1, 1]
    assert read.epochs.end_offset_for(0, 5) == (0, 3)
    assert read.epochs.end_offset_for(1, 5) == (1, 5)
    assert read.epochs.end_offset_for(2, 5) == (-1, -1)


async def test_an_epoch_without_entries_only_takes_the_new_number(
        storage: RedisStorage, redis_client: redis.Redis, topic_name: str) -> None:
    await storage.create_topic(topic_name, 1, {})
    await append(storage, topic_name, 2)
    for _ in range(3):
        new_leader(redis_client, topic_name)
        await storage.read([ReadRequest(topic_name, 0, 0, 1 << 20)])  # read.lua stores the new epoch
    assert await epochs_of(storage, topic_name) == (2, ((0, 0), (3, 2)))
    # An epoch in between that held nothing ends where the next one begins, as in Kafka.
    (read,) = await storage.read([ReadRequest(topic_name, 0, 0, 1 << 20)])
    assert not isinstance(read, Exception)
    assert read.epochs.end_offset_for(1, 2) == (0, 2)


async def test_the_epochs_kept_are_bounded(storage: RedisStorage, redis_client: redis.Redis,
                                           topic_name: str) -> None:
    await storage.create_topic(topic_name, 1, {})
    for _ in range(40):
        await append(storage, topic_name, 1)
        new_leader(redis_client, topic_name)
    await append(storage, topic_name, 1)
    end, entries = await epochs_of(storage, topic_name)
    assert end == 41
    assert len(entries) == 16
    assert entries[-1] == (40, 40)
    assert [start for _, start in entries] == list(range(25, 41))


# -- the wire, across a restart of the gateway's own Redis ----------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def own_gateway(own_redis: RedisServer, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(own_redis.url, log_path=tmp_path / "gateway.log").start()
    yield process
    process.stop()


def offset_for_leader_epoch(topic: str, epoch: int, current: int = -1, version: int = 4) -> Any:
    types = request_types(OFFSET_FOR_LEADER_EPOCH, version)
    partition = build(types.OffsetForLeaderPartition, partition=0, current_leader_epoch=current,
                      leader_epoch=epoch)
    return build(types.OffsetForLeaderEpochRequest, replica_id=-1,
                 topics=(build(types.OffsetForLeaderTopic, topic=topic, partitions=(partition,)),))


def epoch_end(wire: Wire, topic: str, epoch: int, current: int = -1,
              version: int = 4) -> tuple[int, int, int]:
    (answer,) = wire.call(offset_for_leader_epoch(topic, epoch, current, version)).topics
    (partition,) = answer.partitions
    return partition.error_code, partition.leader_epoch, partition.end_offset


def metadata_epoch(wire: Wire, topic: str) -> int:
    (answer,) = wire.call(metadata([topic])).topics
    (partition,) = answer.partitions
    return int(partition.leader_epoch)


def latest(wire: Wire, topic: str, current: int = -1, timestamp: int = -1) -> tuple[int, int, int]:
    """ListOffsets v8 (latest unless a timestamp is given): error, offset, leader epoch."""
    types = request_types(LIST_OFFSETS, 8)
    partition = build(types.ListOffsetsPartition, partition_index=0, current_leader_epoch=current,
                      timestamp=timestamp)
    request = build(types.ListOffsetsRequest, replica_id=-1, isolation_level=0,
                    topics=(build(types.ListOffsetsTopic, name=topic, partitions=(partition,)),))
    ((answer,),) = [topic.partitions for topic in wire.call(request).topics]
    return answer.error_code, answer.offset, answer.leader_epoch


def fetched_epochs(wire: Wire, topic: str, offset: int, current: int = -1) -> tuple[int, list[int]]:
    """A Fetch v12's error and the partitionLeaderEpochs of the batches it returned (each once).

    Each once: Kafka returns the batches as producers wrote them, the gateway one per read.
    """
    types = request_types(FETCH, 12)
    partition = build(types.FetchPartition, partition=0, fetch_offset=offset, partition_max_bytes=1 << 20,
                      current_leader_epoch=current, last_fetched_epoch=-1, log_start_offset=-1)
    request = build(types.FetchRequest, replica_id=-1, max_wait=datetime.timedelta(0), min_bytes=0,
                    max_bytes=1 << 24, isolation_level=0, session_id=0, session_epoch=-1,
                    topics=(build(types.FetchTopic, topic=topic, partitions=(partition,)),),
                    forgotten_topics_data=(), rack_id="")
    ((answer,),) = [t.partitions for t in wire.call(request).responses]
    epochs = {header.partition_leader_epoch for header, _ in decode_batches(answer.records)}
    return answer.error_code, sorted(epochs)


def test_a_restarted_redis_is_a_new_leader_epoch(own_redis: RedisServer, own_gateway: GatewayProcess,
                                                 topic_name: str) -> None:
    with closing(Wire(own_gateway.bootstrap)) as wire:
        create_topic_raw(wire, topic_name)
        wire.call(produce(topic_name, {0: batch(b"a", b"b", b"c")}))
        assert metadata_epoch(wire, topic_name) == 0
        assert latest(wire, topic_name) == (ErrorCode.none, 3, 0)
        assert fetched_epochs(wire, topic_name, 0) == (ErrorCode.none, [0])
        assert epoch_end(wire, topic_name, 0) == (ErrorCode.none, 0, 3)
    own_redis.stop()
    own_redis.start()  # the append-only file keeps the records; the server is another one
    deadline = time.monotonic() + 30
    while True:
        try:
            with closing(Wire(own_gateway.bootstrap)) as wire:
                if metadata_epoch(wire, topic_name) == 1:
                    break
        except (ConnectionError, OSError):
            pass
        assert time.monotonic() < deadline, "the gateway never reported the new epoch"
        time.sleep(0.2)
    with closing(Wire(own_gateway.bootstrap)) as wire:
        assert latest(wire, topic_name) == (ErrorCode.none, 3, 1)
        assert epoch_end(wire, topic_name, 0) == (ErrorCode.none, 0, 3)
        assert epoch_end(wire, topic_name, 1) == (ErrorCode.none, 1, 3)
        wire.call(produce(topic_name, {0: batch(b"d", b"e")}))
        for version in (2, 3, 4):
            assert epoch_end(wire, topic_name, 0, version=version) == (ErrorCode.none, 0, 3)
            assert epoch_end(wire, topic_name, 1, version=version) == (ErrorCode.none, 1, 5)
        # Each batch carries its last record's epoch; a read from before the
        # change ends in the new epoch.
        assert fetched_epochs(wire, topic_name, 3) == (ErrorCode.none, [1])
        assert fetched_epochs(wire, topic_name, 0, current=1) == (ErrorCode.none, [1])
        # A client that knows only the old epoch is fenced; one ahead is told to wait.
        assert fetched_epochs(wire, topic_name, 3, current=0) == (ErrorCode.fenced_leader_epoch, [])
        assert fetched_epochs(wire, topic_name, 3, current=2) == (ErrorCode.unknown_leader_epoch, [])
        assert latest(wire, topic_name, current=0) == (ErrorCode.fenced_leader_epoch, -1, -1)
        # By time: the epoch of the record found; none found, none.
        assert latest(wire, topic_name, timestamp=0) == (ErrorCode.none, 0, 0)
        assert latest(wire, topic_name, timestamp=0, current=1) == (ErrorCode.none, 0, 0)
        assert latest(wire, topic_name, timestamp=0, current=0) == (ErrorCode.fenced_leader_epoch, -1, -1)
        assert latest(wire, topic_name, timestamp=10**14) == (ErrorCode.none, -1, -1)
        assert latest(wire, topic_name, timestamp=-2) == (ErrorCode.none, 0, 0)
        assert epoch_end(wire, topic_name, 0, current=0)[0] == ErrorCode.fenced_leader_epoch
        assert epoch_end(wire, topic_name, 0, current=2)[0] == ErrorCode.unknown_leader_epoch
        assert epoch_end(wire, topic_name, 0, current=1) == (ErrorCode.none, 0, 3)


def test_a_consumer_detects_a_redis_restarted_from_an_older_snapshot(tmp_path: Path, topic_name: str) -> None:
    """One Redis, no replica: a restart from a snapshot older than the records read is a truncation too."""
    server = RedisServer(tmp_path / "redis", extra_args=["--appendonly", "no", "--save", ""]).start()
    gateway = GatewayProcess(server.url, log_path=tmp_path / "gateway.log").start()
    consumer = None
    try:
        create_topic(AdminClient({"bootstrap.servers": gateway.bootstrap}), topic_name, 1)
        produce_ok(gateway.bootstrap, topic_name, [Rec(0, None, b"kept %d" % i) for i in range(10)])
        client = server.client()
        try:
            client.save()  # the snapshot has the first ten
        finally:
            client.close()
        produce_ok(gateway.bootstrap, topic_name, [Rec(0, None, b"lost %d" % i) for i in range(10)])
        consumer = positioned_consumer(gateway.bootstrap, topic_name, "earliest")
        assert [m.value() for m in consume(consumer, 20)][-1] == b"lost 9"
        server.stop(signal.SIGKILL)
        server.start()  # from the snapshot: ten records, and a new replication ID
        produce_ok(gateway.bootstrap, topic_name, [Rec(0, None, b"after")])
        (after,) = consume(consumer, 1)
        assert (after.offset(), after.value()) == (10, b"after")
    finally:
        if consumer is not None:
            consumer.close()
        gateway.stop()
        server.stop()


# -- a real consumer across a Redis Cluster failover that lost a tail -----------------------


replicated_cluster = module_redis_cluster("replicated_cluster", replicas=True)


@pytest.fixture(scope="module")
def cluster_bootstrap(replicated_cluster: RedisClusterServers,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = Path(tmp_path_factory.mktemp("gateway")) / "gateway.log"
    process = GatewayProcess(replicated_cluster.url, log_path=log, extra_args=["--node-id", "0"]).start()
    yield process.bootstrap
    process.stop()


def replica_entries(replica: RedisServer, stream: str) -> int:
    client = replica.client()
    try:
        client.execute_command("READONLY")
        return int(client.xlen(stream))
    finally:
        client.close()


def wait_until(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def consume(consumer: Consumer, count: int) -> list[Any]:
    """Up to ``count`` records (errors are skipped), within 30 s."""
    got: list[Any] = []
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            got.append(message)
    return got


def positioned_consumer(bootstrap: str, topic: str, reset: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}-{reset}",
                         "enable.auto.commit": False, "auto.offset.reset": reset,
                         "topic.metadata.refresh.interval.ms": 1000})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    return consumer


def truncation_error(consumer: Consumer, timeout: float = 60) -> KafkaError | None:
    """The first error the consumer reports that says the log was truncated."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is not None and "truncation" in message.error().str():
            return message.error()
    return None


def replica_of(cluster: RedisClusterServers, primary: RedisServer) -> RedisServer:
    """The running server that replicates ``primary`` (the topology changes as tests fail over)."""
    for server in [*cluster.nodes, *cluster.replicas]:
        if server.process is None or server is primary:
            continue
        client = server.client()
        try:
            info = client.info("replication")
        finally:
            client.close()
        if info.get("role") == "slave" and int(info.get("master_port", 0)) == primary.port:
            return server
    raise LookupError(f"no replica of {primary.port}")


def cut_off(primary: RedisServer, replica: RedisServer) -> None:
    """The replica gets nothing more: stopped, and its link closed by the primary.

    (A stopped process's socket would still take in what the primary sends,
    and hand it over when the process goes on.)
    """
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)
    client = primary.client()
    try:
        client.execute_command("CLIENT", "KILL", "TYPE", "replica")
    finally:
        client.close()


def fail_over(cluster: RedisClusterServers, stream: str, primary: RedisServer, replica: RedisServer) -> None:
    """Kill the primary; the replica, cut off, goes on and takes over (what it lacks is lost)."""
    try:
        primary.stop(signal.SIGKILL)
    finally:
        assert replica.process is not None
        replica.process.send_signal(signal.SIGCONT)
    client = replica.client()
    try:
        client.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
    finally:
        client.close()
    wait_until(lambda: cluster.node_of(stream) is replica, "the replica never took over")


def write_kept_then_lost(cluster: RedisClusterServers, bootstrap: str,
                         topic: str) -> tuple[str, RedisServer, RedisServer]:
    """Ten records the replica gets, then it is cut off; the stream, its primary and replica."""
    create_topic(AdminClient({"bootstrap.servers": bootstrap}), topic, 1)
    stream = keys.stream(topic, 0)
    primary = cluster.node_of(stream)
    replica = replica_of(cluster, primary)
    produce_ok(bootstrap, topic, [Rec(0, None, b"kept %d" % i) for i in range(10)])
    wait_until(lambda: replica_entries(replica, stream) == 10, "the replica never got the first records")
    cut_off(primary, replica)
    return stream, primary, replica


def test_a_consumer_past_the_promoted_replicas_end_detects_the_truncation(
        replicated_cluster: RedisClusterServers, cluster_bootstrap: str, topic_name: str) -> None:
    stream, primary, replica = write_kept_then_lost(replicated_cluster, cluster_bootstrap, topic_name)
    # librdkafka with auto.offset.reset earliest/latest seeks to where the
    # epoch it read ended; with auto.offset.reset=error it reports the
    # truncation to the application.
    resetting = positioned_consumer(cluster_bootstrap, topic_name, "earliest")
    reporting = positioned_consumer(cluster_bootstrap, topic_name, "error")
    try:
        produce_ok(cluster_bootstrap, topic_name, [Rec(0, None, b"lost %d" % i) for i in range(10)])
        for consumer in (resetting, reporting):
            assert [m.value() for m in consume(consumer, 20)][-1] == b"lost 9"
    finally:
        fail_over(replicated_cluster, stream, primary, replica)
    try:
        # Offsets 10.. now name other records: the first written after the failover.
        produce_ok(cluster_bootstrap, topic_name, [Rec(0, None, b"after")])
        (after,) = consume(resetting, 1)
        assert (after.offset(), after.value()) == (10, b"after")
        # librdkafka names it an automatic reset refused (auto.offset.reset=error).
        error = truncation_error(reporting)
        assert error is not None, "the consumer was not told of the truncation"
        assert error.code() == KafkaError._AUTO_OFFSET_RESET
        assert "Partition log truncation detected at offset 20 (leader epoch 0): " \
               "broker end offset is 10" in error.str()
    finally:
        resetting.close()
        reporting.close()
        primary.start()  # back, as the new primary's replica
    with closing(Wire(cluster_bootstrap)) as wire:
        assert metadata_epoch(wire, topic_name) == 1
        assert epoch_end(wire, topic_name, 0) == (ErrorCode.none, 0, 10)
        assert epoch_end(wire, topic_name, 1) == (ErrorCode.none, 1, 11)


JAVA_BIN = Path("/opt/kafka-java/bin")


class JavaConsoleConsumer:
    """kafka-console-consumer.sh in a group, from the beginning, printing offsets; its lines as they come."""

    def __init__(self, bootstrap: str, topic: str, log: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        env = dict(os.environ, KAFKA_LOG_LEVEL="warn")
        # Its warnings kept for a failure's message: it once printed nothing in 60 s.
        self.log = log
        with open(log, "w") as stderr:
            self.process = subprocess.Popen(
                [str(JAVA_BIN / "kafka-console-consumer.sh"), "--bootstrap-server", bootstrap,
                 "--topic", topic, "--group", f"java-{topic}", "--from-beginning",
                 "--property", "print.offset=true"],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def records(self, count: int, timeout: float = 60) -> list[tuple[int, str]]:
        """The next ``count`` records printed, as (offset, value)."""
        found: list[tuple[int, str]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if printed := re.fullmatch(r"Offset:(\d+)\s+(.*)", line):
                found.append((int(printed[1]), printed[2]))
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.mark.skipif(not (JAVA_BIN / "kafka-console-consumer.sh").exists(),
                    reason=f"no Kafka tools in {JAVA_BIN}")
def test_the_java_console_consumer_resumes_at_the_truncated_end(
        replicated_cluster: RedisClusterServers, cluster_bootstrap: str, topic_name: str,
        tmp_path: Path) -> None:
    stream, primary, replica = write_kept_then_lost(replicated_cluster, cluster_bootstrap, topic_name)
    consumer = JavaConsoleConsumer(cluster_bootstrap, topic_name, tmp_path / "console-consumer.log")
    try:
        try:
            produce_ok(cluster_bootstrap, topic_name, [Rec(0, None, b"lost %d" % i) for i in range(10)])
            printed = consumer.records(20)
            assert printed and printed[-1] == (19, "lost 9"), (printed, consumer.log.read_text()[-3000:])
        finally:
            fail_over(replicated_cluster, stream, primary, replica)
        produce_ok(cluster_bootstrap, topic_name, [Rec(0, None, b"after")])
        # KIP-320: the Java consumer validates its position against the new
        # epoch and goes on from the end of the one it read, offset 10 (without
        # epochs it met OFFSET_OUT_OF_RANGE and read the kept records again).
        assert consumer.records(1) == [(10, "after")]
        assert consumer.records(1, timeout=3) == []
    finally:
        consumer.stop()
        primary.start()
