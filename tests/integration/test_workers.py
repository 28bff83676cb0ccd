"""``--workers N``: one command runs N gateways on one host, each a broker of its own.

The command runs as a user runs it, with confluent-kafka as the client, on
a Redis of this module's own (its workers form a cluster of their own) or on
the embedded server the parent starts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_redis_gateway.gateway.embedded import free_port, wait_for_port

from tests.integration.groups_support import wait_until
from tests.servers import TEST_GATEWAY_ARGS, RedisServer, module_redis

PARTITIONS = 4


workers_redis = module_redis("workers_redis")


def consecutive_free_ports(count: int) -> int:
    """A port such that it and the next count - 1 are free."""
    while True:
        first = free_port()
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


class Workers:
    """``kafka-redis-gateway --workers N`` as a child process."""

    def __init__(self, count: int, log_path: Path, *args: str) -> None:
        self.first_port = consecutive_free_ports(count)
        self.bootstraps = [f"127.0.0.1:{self.first_port + i}" for i in range(count)]
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kafka_redis_gateway.gateway", "--workers", str(count),
                 "--listen", self.bootstraps[0], *TEST_GATEWAY_ARGS, *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        for i in range(count):
            wait_for_port(self.first_port + i, self.process, timeout=60)

    def children(self) -> set[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in path.read_text().split()}

    def worker_pids(self) -> set[int]:
        """The children that are gateway workers (the embedded server is a child too)."""
        return {pid for pid in self.children()
                if b"gateway.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()}

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in self.children():
                os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()
            raise


def brokers_seen(bootstrap: str) -> set[str]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {f"{broker.host}:{broker.port}" for broker in metadata.brokers.values()}


def wait_for_cluster(workers: Workers) -> None:
    for bootstrap in workers.bootstraps:
        wait_until(lambda b=bootstrap: brokers_seen(b) == set(workers.bootstraps), 30,
                   f"Metadata from {bootstrap} to list every worker")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: it only waits for its parent to read its status.
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"


def produce_and_consume_through_both(workers: Workers, topic: str, count: int = 400) -> None:
    """Partitions led by each worker, produced through one and consumed through the other."""
    admin = AdminClient({"bootstrap.servers": workers.bootstraps[0]})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS)])[topic].result(10)
    metadata = admin.list_topics(topic, timeout=10)
    leaders = {partition.leader for partition in metadata.topics[topic].partitions.values()}
    assert leaders == set(metadata.brokers), (leaders, metadata.brokers)
    producer = Producer({"bootstrap.servers": workers.bootstraps[0], "enable.idempotence": True,
                         "acks": "all"})
    for i in range(count):
        producer.produce(topic, str(i).encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": workers.bootstraps[1], "group.id": f"{topic}-reader",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    read: list[int] = []
    ended: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(ended) < PARTITIONS:
            assert time.monotonic() < deadline, (len(read), ended)
            for message in consumer.consume(500, timeout=1.0):
                error = message.error()
                if error is None:
                    read.append(int(message.value()))
                else:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    ended.add(message.partition())
    finally:
        consumer.close()
    assert sorted(read) == list(range(count))


def test_two_workers_on_a_redis_are_two_brokers_and_sigterm_stops_both(
        workers_redis: RedisServer, tmp_path: Path) -> None:
    workers_redis.client().flushall()
    workers = Workers(2, tmp_path / "workers.log", "--redis-url", workers_redis.url)
    try:
        wait_for_cluster(workers)
        produce_and_consume_through_both(workers, "through-both")
        pids = workers.worker_pids()
        assert len(pids) == 2
    finally:
        code = workers.stop()
    assert code == 0, workers.log_path.read_text()
    assert all(gone(pid) for pid in pids)
    # Both left the broker registry on their way out.
    assert workers_redis.client().zcard("kafka:{brokers}:leases") == 0


def test_a_killed_worker_is_restarted_on_its_port(workers_redis: RedisServer, tmp_path: Path) -> None:
    workers_redis.client().flushall()
    workers = Workers(2, tmp_path / "workers.log", "--redis-url", workers_redis.url)
    try:
        wait_for_cluster(workers)
        (first, second) = sorted(workers.worker_pids())
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: len(workers.worker_pids() - {first, second}) == 1, 30, "a new worker")
        # The new one serves on the killed one's port; the others list it again.
        wait_for_cluster(workers)
        assert "exited with status -9; restarting it" in workers.log_path.read_text()
    finally:
        assert workers.stop() == 0


def test_workers_share_the_embedded_server_and_stop_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    workers = Workers(2, tmp_path / "workers.log", "--data-dir", str(data_dir))
    try:
        wait_for_cluster(workers)
        produce_and_consume_through_both(workers, "embedded-both", count=100)
        (server,) = workers.children() - workers.worker_pids()
        assert (data_dir / "redis-url").exists()
    finally:
        code = workers.stop(signal.SIGINT)
    assert code == 0, workers.log_path.read_text()
    assert gone(server)
    assert not (data_dir / "redis-url").exists()


def test_workers_die_with_a_killed_parent(workers_redis: RedisServer, tmp_path: Path) -> None:
    workers_redis.client().flushall()
    workers = Workers(2, tmp_path / "workers.log", "--redis-url", workers_redis.url)
    pids = workers.worker_pids()
    workers.stop(signal.SIGKILL)
    wait_until(lambda: all(gone(pid) for pid in pids), 30, "the workers to stop with their parent")


def test_a_worker_port_past_65535_is_refused_before_anything_starts() -> None:
    result = subprocess.run([sys.executable, "-m", "kafka_redis_gateway.gateway", "--workers", "3",
                             "--listen", "127.0.0.1:65534"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "--workers 3: port 65534 + 2 is above 65535" in result.stderr


def test_a_worker_that_cannot_start_stops_them_all(workers_redis: RedisServer, tmp_path: Path) -> None:
    """A worker's port already taken: restarting it would fail again, so the command fails."""
    workers_redis.client().flushall()
    first_port = consecutive_free_ports(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first_port + 1))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "kafka_redis_gateway.gateway", "--workers", "2",
             "--listen", f"127.0.0.1:{first_port}", *TEST_GATEWAY_ARGS, "--redis-url", workers_redis.url],
            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert "worker 1 could not start (exit status 1); stopping every worker" in result.stderr
    assert "restarting it" not in result.stderr
