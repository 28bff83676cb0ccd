"""Several gateways on one Redis as one Kafka cluster (issue #13).

Three gateway processes on a Redis of this module's own (so the session
gateway is not part of their cluster), driven by confluent-kafka's admin
client. Leases are short (flags), so a killed gateway leaves within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic
from kafka_redis_gateway.gateway.embedded import free_port
from kio.schema.errors import ErrorCode

from tests.integration.groups_support import (
    MemberProcess,
    consumed,
    produce_numbered,
    wait_settled,
    wait_until,
)
from tests.integration.operations_support import scrape, value, wait_for_log
from tests.integration.test_groups_protocol import FIND_COORDINATOR, heartbeat, join, stable_member
from tests.integration.test_java_tools import BIN as JAVA_BIN
from tests.integration.test_java_tools import ok as java_ok
from tests.integration.test_java_tools import tool as java_tool
from tests.integration.test_protocol import Wire, build, metadata, request_types
from tests.servers import GatewayProcess, RedisServer, module_redis

LEASE_MS = 1500
PARTITIONS = 6


cluster_redis = module_redis("cluster_redis")


@pytest.fixture
def gateways(cluster_redis: RedisServer, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    cluster_redis.client().flushall()
    started = [GatewayProcess(cluster_redis.url, log_path=tmp_path / f"gateway-{n}.log",
                              extra_args=["--broker-lease-ms", str(LEASE_MS)]).start()
               for n in range(3)]
    # Each learns of those started after it at its next lease renewal.
    for gateway in started:
        wait_for_brokers(gateway.bootstrap, {gateway.bootstrap for gateway in started})
    yield started
    for gateway in started:
        gateway.stop()


def cluster_metadata(bootstrap: str, topic: str | None = None) -> ClusterMetadata:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.list_topics(topic, timeout=10)


def broker_addresses(metadata: ClusterMetadata) -> set[str]:
    return {f"{broker.host}:{broker.port}" for broker in metadata.brokers.values()}


def wait_for_brokers(bootstrap: str, wanted: set[str], timeout: float = 15) -> ClusterMetadata:
    deadline = time.monotonic() + timeout
    while (metadata := cluster_metadata(bootstrap)) and broker_addresses(metadata) != wanted:
        assert time.monotonic() < deadline, f"brokers {broker_addresses(metadata)}, wanted {wanted}"
        time.sleep(0.1)
    return metadata


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS)])[topic].result(10)


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    partitions = cluster_metadata(bootstrap, topic).topics[topic].partitions
    return {index: partition.leader for index, partition in partitions.items()}


def registered_nodes(client: redis.Redis) -> set[int]:
    return {int(node) for node in client.zrange("kafka:{brokers}:leases", 0, -1)}


def test_every_gateway_lists_all_three_and_spreads_leadership(gateways: list[GatewayProcess]) -> None:
    everyone = {gateway.bootstrap for gateway in gateways}
    create_topic(gateways[0].bootstrap, "spread")
    answers = []
    for gateway in gateways:
        # Within the wait: on a loaded 2-core CI machine a renewal of the
        # tests' 1.5 s leases was once late enough for one gateway to drop
        # out of another's view for a moment (seen in a full-suite run).
        metadata = wait_for_brokers(gateway.bootstrap, everyone)
        answers.append((metadata.controller_id, leaders(gateway.bootstrap, "spread")))
    # Every gateway gives the same answer, and it uses every gateway.
    assert answers[0] == answers[1] == answers[2], answers
    controller, led = answers[0]
    metadata = cluster_metadata(gateways[0].bootstrap)
    assert controller == min(metadata.brokers)
    assert set(led.values()) == set(metadata.brokers)
    # Assigned node IDs are above Kafka's reserved.broker.max.id.
    assert all(node > 1000 for node in metadata.brokers)


def test_a_clean_stop_leaves_at_once_and_leadership_moves(gateways: list[GatewayProcess],
                                                          cluster_redis: RedisServer) -> None:
    create_topic(gateways[0].bootstrap, "moving")
    client = cluster_redis.client()
    assert len(registered_nodes(client)) == 3
    leaving = gateways.pop()
    leaving.stop(signal.SIGTERM)
    # Gone from Redis by the time its process has exited, not a lease later.
    assert len(registered_nodes(client)) == 2
    remaining = {gateway.bootstrap for gateway in gateways}
    metadata = wait_for_brokers(gateways[0].bootstrap, remaining)
    wait_for_brokers(gateways[1].bootstrap, remaining)
    assert set(leaders(gateways[0].bootstrap, "moving").values()) == set(metadata.brokers)
    assert leaders(gateways[0].bootstrap, "moving") == leaders(gateways[1].bootstrap, "moving")


def test_a_killed_gateway_leaves_when_its_lease_ends(gateways: list[GatewayProcess],
                                                     cluster_redis: RedisServer,
                                                     tmp_path: Path) -> None:
    client = cluster_redis.client()
    killed = gateways.pop()
    killed.stop(signal.SIGKILL)
    # Nobody removed it: its lease is still running.
    assert len(registered_nodes(client)) == 3
    remaining = {gateway.bootstrap for gateway in gateways}
    wait_for_brokers(gateways[0].bootstrap, remaining, timeout=LEASE_MS / 1000 + 10)
    assert len(registered_nodes(client)) == 2
    # Restarted, it rejoins (as a new node ID).
    restarted = GatewayProcess(cluster_redis.url, port=killed.port, log_path=tmp_path / "restarted.log",
                               extra_args=["--broker-lease-ms", str(LEASE_MS)]).start()
    gateways.append(restarted)
    wait_for_brokers(gateways[0].bootstrap, remaining | {restarted.bootstrap})


def test_a_node_id_held_by_a_live_gateway_is_not_taken(cluster_redis: RedisServer,
                                                       tmp_path: Path) -> None:
    cluster_redis.client().flushall()
    first = GatewayProcess(cluster_redis.url, log_path=tmp_path / "first.log",
                           extra_args=["--node-id", "7", "--broker-lease-ms", str(LEASE_MS)]).start()
    # Started by hand: it does not listen until it holds its node ID.
    second = GatewayProcess(cluster_redis.url,
                            extra_args=["--node-id", "7", "--broker-lease-ms", str(LEASE_MS)])
    try:
        with open(tmp_path / "second.log", "wb") as log:
            second_process = subprocess.Popen(second.command(), stdout=log, stderr=log)
        try:
            # It waits for node 7's lease, which the first keeps renewing (the
            # wait is for the second to start at all: seconds on a loaded machine).
            wait_for_log(tmp_path / "second.log", "registered by another live gateway", timeout=60)
            time.sleep(2 * LEASE_MS / 1000)
            assert second_process.poll() is None, "the second gateway gave up"
            metadata = cluster_metadata(first.bootstrap)
            assert [(b.id, b.port) for b in metadata.brokers.values()] == [(7, first.port)]
        finally:
            second_process.kill()
            second_process.wait()
    finally:
        first.stop()


def test_one_group_through_two_gateways_splits_its_partitions(gateways: list[GatewayProcess]) -> None:
    create_topic(gateways[0].bootstrap, "shared")
    # The reproduction: each member bootstrapped to a different
    # gateway got all the partitions, each gateway running its own group.
    consumers = [Consumer({"bootstrap.servers": gateway.bootstrap, "group.id": "split",
                           "session.timeout.ms": 6000, "auto.offset.reset": "earliest"})
                 for gateway in gateways[:2]]
    try:
        for consumer in consumers:
            consumer.subscribe(["shared"])
        deadline = time.monotonic() + 30
        while True:
            for consumer in consumers:
                consumer.poll(0.2)
            assigned = [{p.partition for p in consumer.assignment()} for consumer in consumers]
            if all(assigned) and sum(map(len, assigned)) == PARTITIONS:
                break
            assert time.monotonic() < deadline, f"assignments never settled: {assigned}"
        assert assigned[0].isdisjoint(assigned[1]), assigned
        assert assigned[0] | assigned[1] == set(range(PARTITIONS)), assigned
    finally:
        for consumer in consumers:
            consumer.close()


def test_group_requests_to_a_gateway_that_does_not_coordinate_get_not_coordinator(
        gateways: list[GatewayProcess]) -> None:
    wires = [Wire(gateway.bootstrap) for gateway in gateways]
    try:
        find = build(request_types(FIND_COORDINATOR, 3).FindCoordinatorRequest, key="g-1", key_type=0)
        answers = {(a.error_code, a.port) for a in (wire.call(find) for wire in wires)}
        # Every gateway names the same coordinator.
        (code, port), = answers
        assert code == ErrorCode.none
        (coordinator,) = [w for w, g in zip(wires, gateways, strict=True) if g.port == port]
        others = [w for w in wires if w is not coordinator]
        member_id, generation = stable_member(coordinator, "g-1")
        for other in others:
            assert other.call(join("g-1", member_id)).error_code == ErrorCode.not_coordinator
            assert other.call(heartbeat("g-1", member_id, generation)).error_code == \
                ErrorCode.not_coordinator
        # The coordinator's group was not disturbed.
        assert coordinator.call(heartbeat("g-1", member_id, generation)).error_code == ErrorCode.none
    finally:
        for wire in wires:
            wire.close()


def test_a_group_continues_on_another_gateway_when_its_coordinator_is_killed(
        gateways: list[GatewayProcess]) -> None:
    group_id = "survivors"
    wire = Wire(gateways[0].bootstrap)
    try:
        answer = wire.call(build(request_types(FIND_COORDINATOR, 3).FindCoordinatorRequest,
                                 key=group_id, key_type=0))
    finally:
        wire.close()
    (coordinator,) = [g for g in gateways if g.port == answer.port]
    others = [g for g in gateways if g is not coordinator]
    create_topic(others[0].bootstrap, "survivors-topic")
    # Members and producer reach the cluster through the gateways that live on.
    members = [MemberProcess("confluent", gateway.bootstrap, "survivors-topic", group_id, f"m{i}",
                             session_timeout_ms=20_000).start() for i, gateway in enumerate(others)]
    try:
        wait_settled(members, PARTITIONS)
        first = produce_numbered(others[0].bootstrap, "survivors-topic", 0, 120, PARTITIONS)
        wait_until(lambda: set(consumed(members)) >= set(first), 60, "the first records")
        coordinator.stop(signal.SIGKILL)
        gateways.remove(coordinator)
        second = produce_numbered(others[1].bootstrap, "survivors-topic", 120, 120, PARTITIONS)
        wait_until(lambda: set(consumed(members)) >= set(first) | set(second), 90,
                   "the group to go on through another coordinator")
        counts = consumed(members)
        assert set(counts) == set(first) | set(second)
        # Each record was committed after it was read: none read twice.
        assert max(counts.values()) == 1, [v for v, n in counts.items() if n > 1][:5]
        # The group's coordinator is now one of the gateways alive.
        wire = Wire(others[0].bootstrap)
        try:
            moved = wire.call(build(request_types(FIND_COORDINATOR, 3).FindCoordinatorRequest,
                                    key=group_id, key_type=0))
        finally:
            wire.close()
        assert moved.port in {g.port for g in others}
    finally:
        for member in members:
            member.stop()


def test_only_the_controller_runs_the_background_sweeps(cluster_redis: RedisServer,
                                                         tmp_path: Path) -> None:
    cluster_redis.client().flushall()
    ports = [free_port() for _ in range(3)]
    started = [GatewayProcess(cluster_redis.url, log_path=tmp_path / f"gateway-{n}.log", extra_args=[
        "--broker-lease-ms", str(LEASE_MS), "--metrics-listen", f"127.0.0.1:{port}",
        "--retention-check-interval-ms", "100", "--producer-id-expiration-check-interval-ms", "100",
    ]).start() for n, port in enumerate(ports)]
    try:
        for gateway in started:
            wait_for_brokers(gateway.bootstrap, {gateway.bootstrap for gateway in started})
        metadata = cluster_metadata(started[0].bootstrap)
        controller_listener = metadata.brokers[metadata.controller_id].port
        (controller_port,) = [port for port, gateway in zip(ports, started, strict=True)
                              if gateway.port == controller_listener]

        def sweeps(port: int) -> list[float]:
            samples = scrape(port)
            return [value(samples, "krg_background_sweeps_total", task=task)
                    for task in ("retention", "compaction", "producer_expiry")]

        wait_until(lambda: min(sweeps(controller_port)) >= 5, 30, "the controller's sweeps")
        assert [sweeps(port) for port in ports if port != controller_port] == [[0, 0, 0], [0, 0, 0]]
    finally:
        for gateway in started:
            gateway.stop()


def test_each_listener_lists_every_gateway_by_its_address_on_that_listener(
        cluster_redis: RedisServer, tmp_path: Path) -> None:
    # compose.yaml's topology: a HOST and an INTERNAL listener per gateway.
    cluster_redis.client().flushall()
    started = []
    for n in range(2):
        host, internal = free_port(), free_port()
        started.append((host, internal, GatewayProcess(
            cluster_redis.url, port=host, log_path=tmp_path / f"gateway-{n}.log",
            listeners=f"HOST://127.0.0.1:{host},INTERNAL://127.0.0.1:{internal}",
            extra_args=["--listener-security-protocol-map", "HOST:PLAINTEXT,INTERNAL:PLAINTEXT",
                        "--advertised-listeners", f"INTERNAL://localhost:{internal}",
                        "--broker-lease-ms", str(LEASE_MS)]).start()))
    try:
        hosts = {f"127.0.0.1:{host}" for host, _, _ in started}
        internals = {f"localhost:{internal}" for _, internal, _ in started}
        for host, internal, _ in started:
            wait_for_brokers(f"127.0.0.1:{host}", hosts)
            with closing(Wire(f"127.0.0.1:{internal}")) as wire:
                deadline = time.monotonic() + 15
                while {f"{b.host}:{b.port}" for b in wire.call(metadata([])).brokers} != internals:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
    finally:
        for _, _, gateway in started:
            gateway.stop()


class PacedProducer:
    """An idempotent acks=all producer writing "r<i>" round-robin over the partitions, at a pace,
    in a thread; it records what was acknowledged, what failed and what its error callback saw."""

    def __init__(self, bootstrap: str, topic: str, count: int, per_second: float, first: int = 0) -> None:
        self.topic, self.count, self.pause, self.first = topic, count, 1 / per_second, first
        self.acked: list[str] = []
        self.failed: list[str] = []
        self.client_errors: list[str] = []
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                  "acks": "all", "linger.ms": 5,
                                  "error_cb": lambda error: self.client_errors.append(str(error))})
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PacedProducer:
        self.thread.start()
        return self

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        (self.failed if error is not None else self.acked).append(message.value().decode())

    def _run(self) -> None:
        for i in range(self.first, self.first + self.count):
            self.producer.produce(self.topic, f"r{i}".encode(), partition=i % PARTITIONS,
                                  on_delivery=self._delivered)
            self.producer.poll(0)
            time.sleep(self.pause)
        self.producer.flush(120)

    def join(self, timeout: float = 180) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the producer did not finish"


def stored(client: redis.Redis, topic: str) -> dict[int, list[str]]:
    """Each partition's values as stored in its stream, in offset order."""
    return {p: [fields[b"value"].decode() for _, fields in client.xrange(f"kafka:{{{topic}:{p}}}")]
            for p in range(PARTITIONS)}


def assert_stored_once_in_order(client: redis.Redis, topic: str, acked: list[str]) -> None:
    partitions = stored(client, topic)
    everything = Counter(value for values in partitions.values() for value in values)
    assert not [value for value in acked if everything[value] != 1], "acknowledged records lost or doubled"
    assert max(everything.values()) == 1, [v for v, n in everything.items() if n > 1][:5]
    for values in partitions.values():
        numbers = [int(value[1:]) for value in values]
        assert numbers == sorted(numbers), "a partition's records out of order"


def coordinator_of(gateways: list[GatewayProcess], group_id: str) -> GatewayProcess:
    with closing(Wire(gateways[0].bootstrap)) as wire:
        answer = wire.call(build(request_types(FIND_COORDINATOR, 3).FindCoordinatorRequest,
                                 key=group_id, key_type=0))
    (coordinator,) = [g for g in gateways if g.port == answer.port]
    return coordinator


def test_killing_the_coordinator_under_an_idempotent_producer_and_a_group_loses_nothing(
        gateways: list[GatewayProcess], cluster_redis: RedisServer, tmp_path: Path) -> None:
    group_id, topic = "kill-under-load", "kill-under-load"
    everyone = ",".join(gateway.bootstrap for gateway in gateways)
    coordinator = coordinator_of(gateways, group_id)
    others = [g for g in gateways if g is not coordinator]
    create_topic(others[0].bootstrap, topic)
    # The coordinator leads some of the topic's partitions too.
    assert coordinator.port in {b.port for node, b in cluster_metadata(everyone).brokers.items()
                                if node in leaders(everyone, topic).values()}
    members = [MemberProcess("confluent", gateway.bootstrap, topic, group_id, f"m{i}",
                             session_timeout_ms=20_000).start() for i, gateway in enumerate(others)]
    try:
        wait_settled(members, PARTITIONS)
        producer = PacedProducer(everyone, topic, 600, per_second=60).start()
        wait_until(lambda: len(producer.acked) >= 150, 60, "records acknowledged before the kill")
        coordinator.stop(signal.SIGKILL)
        gateways.remove(coordinator)
        producer.join()
        assert producer.failed == [], producer.failed[:5]
        assert len(producer.acked) == 600
        assert_stored_once_in_order(cluster_redis.client(), topic, producer.acked)
        wait_until(lambda: set(consumed(members)) >= set(producer.acked), 90,
                   "the group to process every acknowledged record")
        # Each record was committed after it was read: none was processed twice.
        counts = consumed(members)
        assert max(counts.values()) == 1, [v for v, n in counts.items() if n > 1][:5]

        # Restarted, the killed gateway rejoins: listed, leading partitions, serving the group.
        restarted = GatewayProcess(cluster_redis.url, port=coordinator.port,
                                   log_path=tmp_path / "restarted.log",
                                   extra_args=["--broker-lease-ms", str(LEASE_MS)]).start()
        gateways.append(restarted)
        everyone_now = {gateway.bootstrap for gateway in gateways}
        for gateway in gateways:
            wait_for_brokers(gateway.bootstrap, everyone_now)
        metadata = cluster_metadata(restarted.bootstrap)
        (restarted_id,) = [node for node, b in metadata.brokers.items() if b.port == restarted.port]
        assert restarted_id in leaders(restarted.bootstrap, topic).values()
        after = PacedProducer(restarted.bootstrap, topic, 60, per_second=200, first=600).start()
        after.join()
        assert after.failed == [] and len(after.acked) == 60
        wait_until(lambda: set(consumed(members)) >= set(after.acked), 90,
                   "the group to go on after the rejoin")
        assert max(consumed(members).values()) == 1
    finally:
        for member in members:
            member.stop()


def test_a_clean_stop_hands_leadership_over_with_no_client_error(
        gateways: list[GatewayProcess], cluster_redis: RedisServer) -> None:
    topic = "handover"
    everyone = ",".join(gateway.bootstrap for gateway in gateways)
    create_topic(gateways[0].bootstrap, topic)
    metadata = cluster_metadata(everyone)
    controller = metadata.controller_id
    # A gateway that leads partitions and is not the controller.
    leaving = next(g for g in gateways if g.port != metadata.brokers[controller].port)
    (leaving_id,) = [node for node, b in metadata.brokers.items() if b.port == leaving.port]
    assert leaving_id in leaders(everyone, topic).values()
    consumer_errors: list[str] = []
    consumer = Consumer({"bootstrap.servers": everyone, "group.id": "handover-reader",
                         "enable.auto.commit": False,
                         "error_cb": lambda error: consumer_errors.append(str(error))})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    read: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    producer = PacedProducer(everyone, topic, 400, per_second=80).start()
    try:
        stopped = False
        deadline = time.monotonic() + 120
        while sum(map(len, read.values())) < 400:
            assert time.monotonic() < deadline, f"read {sum(map(len, read.values()))} of 400"
            for message in consumer.consume(100, timeout=0.2):
                if message.error() is not None:
                    consumer_errors.append(str(message.error()))
                else:
                    read[message.partition()].append(message.value().decode())
            if not stopped and len(producer.acked) >= 100:
                assert leaving.stop(signal.SIGTERM) == 0
                gateways.remove(leaving)
                stopped = True
        producer.join()
    finally:
        consumer.close()
    assert stopped
    assert producer.failed == [], producer.failed[:5]
    assert producer.client_errors == [], producer.client_errors
    assert consumer_errors == [], consumer_errors
    assert read == {p: [f"r{i}" for i in range(p, 400, PARTITIONS)] for p in range(PARTITIONS)}
    assert_stored_once_in_order(cluster_redis.client(), topic, producer.acked)
    assert leaving_id not in leaders(gateways[0].bootstrap, topic).values()


def test_each_group_is_listed_once_with_its_coordinators_state_through_any_gateway(
        gateways: list[GatewayProcess]) -> None:
    create_topic(gateways[0].bootstrap, "listed")
    member = MemberProcess("confluent", gateways[1].bootstrap, "listed", "listed-group", "m0").start()
    try:
        wait_settled([member], PARTITIONS)
        for gateway in gateways:
            admin = AdminClient({"bootstrap.servers": gateway.bootstrap})
            listed = [(g.group_id, g.state.name) for g in admin.list_consumer_groups().result(30).valid
                      if g.group_id == "listed-group"]
            assert listed == [("listed-group", "STABLE")], (gateway.bootstrap, listed)
            (described,) = admin.describe_consumer_groups(["listed-group"])["listed-group"].result(30),
            assert described.state.name == "STABLE"
            assert [m.client_id for m in described.members] == ["m0"]
    finally:
        member.stop()


@pytest.mark.skipif(not (JAVA_BIN / "kafka-consumer-groups.sh").exists(),
                    reason=f"no Kafka tools in {JAVA_BIN}")
def test_the_java_console_consumer_and_consumer_groups_show_one_group_through_any_gateway(
        gateways: list[GatewayProcess]) -> None:
    topic, group = "java-seen", "java-seen-group"
    create_topic(gateways[0].bootstrap, topic)
    produce_numbered(gateways[0].bootstrap, topic, 0, 60, PARTITIONS)
    lines: list[str] = []
    consumer = subprocess.Popen(
        [str(JAVA_BIN / "kafka-console-consumer.sh"), "--bootstrap-server", gateways[2].bootstrap,
         "--topic", topic, "--group", group, "--from-beginning", "--timeout-ms", "120000",
         "--consumer-property", "client.id=java-console",
         "--consumer-property", "auto.commit.interval.ms=200"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        env=dict(os.environ, KAFKA_LOG_LEVEL="warn"))
    assert consumer.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(consumer.stdout or ()), daemon=True)
    reader.start()

    def described(bootstrap: str) -> list[tuple[str, ...]]:
        out = java_ok(java_tool("kafka-consumer-groups.sh", "--bootstrap-server", bootstrap,
                                "--describe", "--group", group))
        # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
        return sorted(tuple(line.split()) for line in out.splitlines() if line.startswith(group))

    try:
        wait_until(lambda: len(lines) >= 60, 120, "the console consumer to print every record")
        wait_until(lambda: [row[5] for row in described(gateways[0].bootstrap)] == ["0"] * PARTITIONS,
                   60, "the console consumer's commits")
        seen = [described(gateway.bootstrap) for gateway in gateways]
        assert seen[0] == seen[1] == seen[2], seen
        assert {(row[1], row[3], row[4], row[-1]) for row in seen[0]} == {
            (topic, "10", "10", "java-console")}
        for gateway in gateways:
            listed = java_ok(java_tool("kafka-consumer-groups.sh", "--bootstrap-server", gateway.bootstrap,
                                       "--list")).split()
            assert listed.count(group) == 1, listed
            state = java_ok(java_tool("kafka-consumer-groups.sh", "--bootstrap-server", gateway.bootstrap,
                                      "--describe", "--group", group, "--state"))
            assert "Stable" in state, state
    finally:
        consumer.terminate()
        consumer.wait(60)
    assert sorted(line.strip() for line in lines) == sorted(f"r{i}" for i in range(60))


def test_a_paused_gateway_leaves_when_its_lease_ends_and_rejoins_when_resumed(
        gateways: list[GatewayProcess], cluster_redis: RedisServer) -> None:
    topic = "paused"
    everyone = ",".join(gateway.bootstrap for gateway in gateways)
    create_topic(gateways[0].bootstrap, topic)
    paused = gateways[2]
    producer = PacedProducer(everyone, topic, 300, per_second=30).start()
    wait_until(lambda: len(producer.acked) >= 60, 60, "records acknowledged before the pause")
    assert paused.process is not None
    paused.process.send_signal(signal.SIGSTOP)
    try:
        # It stops renewing: the others drop it when its lease ends, as if it had died.
        remaining = {gateway.bootstrap for gateway in gateways if gateway is not paused}
        wait_for_brokers(gateways[0].bootstrap, remaining, timeout=LEASE_MS / 1000 + 10)
        acked = len(producer.acked)
        wait_until(lambda: len(producer.acked) >= acked + 30, 60,
                   "records acknowledged through the others while it is paused")
    finally:
        paused.process.send_signal(signal.SIGCONT)
    # Resumed, it registers again at its next renewal and is listed by every gateway.
    for gateway in gateways:
        wait_for_brokers(gateway.bootstrap, {gateway.bootstrap for gateway in gateways})
    producer.join()
    assert producer.failed == [], producer.failed[:5]
    assert len(producer.acked) == 300
    assert_stored_once_in_order(cluster_redis.client(), topic, producer.acked)


def test_a_clean_stop_of_a_groups_coordinator_is_not_seen_by_its_members(
        gateways: list[GatewayProcess]) -> None:
    topic = "handover-group"
    metadata = cluster_metadata(gateways[0].bootstrap)
    controller_port = metadata.brokers[metadata.controller_id].port
    # A group coordinated by a gateway that is not the controller (any would do; this keeps
    # the controller's background work out of the picture).
    group_id = next(g for g in (f"handover-{i}" for i in range(100))
                    if coordinator_of(gateways, g).port != controller_port)
    leaving = coordinator_of(gateways, group_id)
    staying = [g for g in gateways if g is not leaving]
    create_topic(staying[0].bootstrap, topic)
    members = [MemberProcess("confluent", ",".join(g.bootstrap for g in gateways), topic, group_id,
                             f"m{i}", session_timeout_ms=20_000).start() for i in range(2)]
    try:
        wait_settled(members, PARTITIONS)
        producer = PacedProducer(staying[0].bootstrap, topic, 300, per_second=60).start()
        wait_until(lambda: len(consumed(members)) >= 60, 60, "records processed before the stop")
        assert leaving.stop(signal.SIGTERM) == 0
        gateways.remove(leaving)
        producer.join()
        assert producer.failed == [] and len(producer.acked) == 300
        wait_until(lambda: set(consumed(members)) >= set(producer.acked), 90,
                   "the group to process every record")
        assert max(consumed(members).values()) == 1
        # The group went on in its generation: no rebalance, no client error.
        assert [m.assignment_changes() for m in members] == [1, 1]
        assert [m.revocations() for m in members] == [[], []]
        assert [e for m in members for e in m.events if e["event"] == "client-error"] == []
        # A synchronous commit sent while the coordinator moves may fail with librdkafka's
        # retriable "waiting for coordinator" (as when a Kafka coordinator moves; seen once
        # in three runs); the member's next commit covers its offsets, so nothing is read twice.
        failed = [e["error"] for m in members for e in m.events if e["event"] == "commit-failed"]
        assert all("_WAIT_COORD" in error or "NOT_COORDINATOR" in error for error in failed), failed
        assert coordinator_of(gateways, group_id) in staying
    finally:
        for member in members:
            member.stop()
