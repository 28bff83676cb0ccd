"""Produce and consume throughput through the gateway: one Redis against a three-primary Redis Cluster.

    python benchmarks/cluster_bench.py [--records N] [--partitions P]

Starts, on loopback ports, one valkey-server and a cluster of three
(``cluster-enabled yes``, slots by ADDSLOTSRANGE, nodes by MEET), a gateway
on each, and runs the same confluent-kafka workload on both: N records of
100 bytes over P partitions with acks=1, then a consumer reading them all
from offset 0. Prints records per second for each phase.

Every process shares the machine's cores: on a 2-core machine three
primaries, the gateway and the clients compete for the same CPU, so the
cluster cannot show the scaling it has across machines; it shows the
routing's overhead. Figures move with machine load: compare the rows of
one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_redis_gateway.gateway.embedded import (
    find_server_binary,
    free_port,
    server_command,
    wait_for_port,
    wait_for_redis,
)

SLOTS = 16384
CLUSTER_ARGS = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]


def cluster_port() -> int:
    while True:
        port = free_port()
        if port + 10000 <= 65535:
            return port


def start_redis(directory: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True)
    process = subprocess.Popen([*server_command(find_server_binary(), port, directory, "everysec"), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_redis(port, process)
    return process


def form_cluster(ports: list[int]) -> None:
    clients = [redis.Redis(port=port) for port in ports]
    share = SLOTS // len(ports)
    for i, client in enumerate(clients):
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share,
                               SLOTS - 1 if i == len(ports) - 1 else (i + 1) * share - 1)
    for port in ports[1:]:
        clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
    known = f"cluster_known_nodes:{len(ports)}".encode()
    while not all(b"cluster_state:ok" in info and known in info
                  for info in (client.execute_command("CLUSTER", "INFO") for client in clients)):
        time.sleep(0.05)


def start_gateway(redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "kafka_redis_gateway.gateway",
                                "--listen", f"127.0.0.1:{port}", "--redis-url", redis_url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process, f"127.0.0.1:{port}"


def workload(bootstrap: str, records: int, partitions: int) -> tuple[float, float]:
    """Records per second produced (acks=1) and consumed."""
    topic = f"bench-{time.monotonic_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                         "batch.size": 262144})
    value = b"x" * 100
    started = time.perf_counter()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(120) == 0
    produced = records / (time.perf_counter() - started)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.max.bytes": 52428800})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    started = time.perf_counter()
    read, ended = 0, set()
    while len(ended) < partitions:
        for message in consumer.consume(10_000, timeout=1.0):
            error = message.error()
            if error is None:
                read += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
    consumed = read / (time.perf_counter() - started)
    consumer.close()
    assert read == records, (read, records)
    return produced, consumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    options = parser.parse_args()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as work:
        try:
            single = free_port()
            processes.append(start_redis(Path(work) / "single", single, []))
            ports = [cluster_port() for _ in range(3)]
            processes += [start_redis(Path(work) / f"node{i}", port, CLUSTER_ARGS)
                          for i, port in enumerate(ports)]
            form_cluster(ports)
            for name, url in (("one Redis", f"redis://127.0.0.1:{single}/0"),
                              ("Redis Cluster, 3 primaries", f"redis://127.0.0.1:{ports[0]}/0")):
                gateway, bootstrap = start_gateway(url)
                processes.append(gateway)
                produced, consumed = workload(bootstrap, options.records, options.partitions)
                print(f"{name:28} produce {produced:10,.0f} records/s   consume {consumed:10,.0f} records/s")
        finally:
            for process in processes:
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
