"""Several gateways on one Redis as one Kafka cluster (issue #13).

Three gateway processes on a Redis of this module's own (so the session
gateway is not part of their cluster), driven by confluent-kafka's admin
client. Leases are short (flags), so a killed gateway leaves within seconds.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer
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
from tests.integration.operations_support import scrape, value
from tests.integration.test_groups_protocol import FIND_COORDINATOR, heartbeat, join, stable_member
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
            time.sleep(3 * LEASE_MS / 1000)
            # It waits for node 7's lease, which the first keeps renewing.
            metadata = cluster_metadata(first.bootstrap)
            assert [(b.id, b.port) for b in metadata.brokers.values()] == [(7, first.port)]
            assert "registered by another live gateway" in (tmp_path / "second.log").read_text()
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
