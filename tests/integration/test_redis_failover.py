"""acks=all on a Redis Cluster with replicas: a primary killed, its replica promoted.

The gateway runs with --acks-all-replicas 1, so an acks=all append is
acknowledged only once WAITAOF confirms it in the append-only file of the
primary and of one replica. SIGKILL of a primary under an idempotent
producer's load: every acknowledged record is read back once, in order.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient
from kafka_redis_gateway.gateway.storage import keys

from tests.integration.test_confluent import (
    Rec,
    create_topic,
    make_producer,
    produce,
    produce_ok,
    read_to_end,
)
from tests.redis_cluster import RedisClusterServers, module_redis_cluster
from tests.servers import GatewayProcess, RedisServer

PARTITIONS = 3
# The record written while the node the gateway's URL names is down.
MARK = b"during the failover"


replicated_cluster = module_redis_cluster("replicated_cluster", replicas=True)


@pytest.fixture(scope="module")
def bootstrap(replicated_cluster: RedisClusterServers,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = Path(tmp_path_factory.mktemp("gateway")) / "gateway.log"
    process = GatewayProcess(replicated_cluster.url, log_path=log, extra_args=[
        "--node-id", "0", "--acks-all-replicas", "1"]).start()
    yield process.bootstrap
    process.stop()


def test_acknowledged_records_survive_a_primary_killed(
        replicated_cluster: RedisClusterServers, bootstrap: str, topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # The node the gateway's URL names is the victim: the gateway must find the
    # new map from the others. A name is drawn until one of the topic's
    # partitions hashes there (with three primaries, none of four does for
    # about one name in five).
    topic_name = next(name for name in (f"{topic_name}-{n}" for n in range(1000))
                      if any(replicated_cluster.node_of(keys.stream(name, p)) is replicated_cluster.nodes[0]
                             for p in range(PARTITIONS)))
    create_topic(admin, topic_name, PARTITIONS)
    victim_partition = next(p for p in range(PARTITIONS)
                            if replicated_cluster.node_of(keys.stream(topic_name, p))
                            is replicated_cluster.nodes[0])
    victim_stream = keys.stream(topic_name, victim_partition)
    victim = replicated_cluster.node_of(victim_stream)
    count = 3000
    reports: list[Message] = []
    errors: list[Exception] = []

    def write() -> None:
        try:
            with make_producer(bootstrap, **{"enable.idempotence": True, "acks": "all",
                                             "linger.ms": 1}) as producer:
                reports.extend(produce(producer, topic_name,
                                       [Rec(i % PARTITIONS, None, b"%d" % i) for i in range(count)]))
        except Exception as exc:  # reported below, on the test's thread
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    client = victim.client()
    try:
        while int(client.xlen(victim_stream)) < 200:  # the producer is writing to the victim
            time.sleep(0.01)
    finally:
        client.close()
    victim.stop(signal.SIGKILL)
    promoted = wait_for_promotion(replicated_cluster, victim_stream, victim)
    # With the node its URL names still down, the gateway finds the promoted
    # replica from the other nodes it knows: an acks=1 append there goes in.
    produce_ok(bootstrap, topic_name, [Rec(victim_partition, None, MARK)],
               **{"acks": "1", "message.timeout.ms": 30_000})
    # The promoted replica has no replica of its own, so acks=all appends there are
    # not confirmed (REQUEST_TIMED_OUT, retried) until the killed node is back, as
    # the new primary's replica.
    victim.start()
    writer.join(180)
    assert not writer.is_alive() and not errors, errors
    acknowledged = {(r.partition(), r.value()) for r in reports if r.error() is None}
    found = read_to_end(bootstrap, topic_name, PARTITIONS, timeout=60)
    for partition, messages in found.items():
        values = [m.value() for m in messages if m.value() != MARK]
        assert sum(m.value() == MARK for m in messages) == (partition == victim_partition)
        assert len(values) == len(set(values)), "a record was stored twice"
        assert values == sorted(values, key=int), "records out of order"
        assert [m.offset() for m in messages] == list(range(len(messages)))
        lost = {v for p, v in acknowledged if p == partition} - set(values)
        assert not lost, f"{len(lost)} acknowledged records lost on partition {partition}"
    # The idempotent producer retried through the failover: nothing failed for good.
    assert len(acknowledged) == count
    assert replicated_cluster.node_of(victim_stream) is promoted


def wait_for_promotion(cluster: RedisClusterServers, stream: str, victim: RedisServer) -> RedisServer:
    """The replica that took over the victim's slots (Redis Cluster's own failover)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        client = next(node for node in cluster.nodes if node is not victim).client()
        try:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", stream))
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end) and int(primary[1]) != victim.port:
                    return next(node for node in cluster.replicas if node.port == int(primary[1]))
        finally:
            client.close()
        time.sleep(0.1)
    raise AssertionError("no replica took over")
