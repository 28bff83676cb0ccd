"""Produce and consume throughput: one Redis against a Redis Cluster, and 1, 2, 3 gateways on one Redis.

    python benchmarks/cluster_bench.py [redis-cluster] [--records N] [--partitions P]
    python benchmarks/cluster_bench.py gateways [--records N] [--partitions P] [--clients C] [--rounds R]

``redis-cluster`` (the default) starts, on loopback ports, one valkey-server and a cluster of three
(``cluster-enabled yes``, slots by ADDSLOTSRANGE, nodes by MEET), a gateway
on each, and runs the same confluent-kafka workload on both: N records of
100 bytes over P partitions with acks=1, then a consumer reading them all
from offset 0. Prints records per second for each phase.

Every process shares the machine's cores: on a 2-core machine three
primaries, the gateway and the clients compete for the same CPU, so the
cluster cannot show the scaling it has across machines; it shows the
routing's overhead. Figures move with machine load: compare the rows of
one run.

``gateways`` starts one valkey-server and up to three gateways on it (one
Kafka cluster, partition leadership spread over them), and for 1, 2 and 3
live gateways runs C producer processes (N records of 100 bytes in all,
acks=1, every one bootstrapped to every gateway, so each sends to every
partition's leader) and then C consumer processes (each reads its share of
the partitions from offset 0). Aggregate records per second is N over the
time from the first client's start to the last one's end. The same C
processes then write and read the same records with redis-py straight to
Redis (pipelined XADD, XRANGE), the anchor: what Redis does without a
gateway, in the same run. R rounds repeat 1, 2, 3 gateways and the anchor,
so the run shows its own noise.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def start_gateway(redis_url: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "kafka_redis_gateway.gateway",
                                "--listen", f"127.0.0.1:{port}", "--redis-url", redis_url, *extra],
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


VALUE = b"x" * 100


def produce_share(bootstrap: str, topic: str, records: int, partitions: int,
                  start: Any) -> tuple[float, float]:
    """One producer process's share, acks=1; its (start, end) wall-clock times."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                         "batch.size": 262144})
    producer.list_topics(topic, timeout=30)  # connected to every leader before the clock starts
    start.wait()
    began = time.time()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, VALUE, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(300) == 0
    return began, time.time()


def consume_share(bootstrap: str, topic: str, partitions: list[int],
                  start: Any) -> tuple[float, float, int]:
    """One consumer process's partitions from offset 0 to their end; (start, end, records read)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.max.bytes": 52428800})
    consumer.list_topics(topic, timeout=30)
    start.wait()
    began = time.time()
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    read, ended = 0, set()
    while len(ended) < len(partitions):
        for message in consumer.consume(10_000, timeout=1.0):
            error = message.error()
            if error is None:
                read += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
    finished = time.time()
    consumer.close()
    return began, finished, read


def xadd_share(redis_url: str, prefix: str, records: int, partitions: int,
               start: Any) -> tuple[float, float]:
    """The anchor's produce: the same records as stream entries, pipelined XADD, 1,000 a round trip."""
    client = redis.Redis.from_url(redis_url)
    client.ping()
    start.wait()
    began = time.time()
    for first in range(0, records, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(first, min(first + 1000, records)):
            pipe.xadd(f"{prefix}:{{{i % partitions}}}", {"value": VALUE})
        pipe.execute()
    return began, time.time()


def xrange_share(redis_url: str, prefix: str, partitions: list[int],
                 start: Any) -> tuple[float, float, int]:
    """The anchor's consume: each stream read from the start with XRANGE, 10,000 entries a call."""
    client = redis.Redis.from_url(redis_url)
    client.ping()
    start.wait()
    began = time.time()
    read = 0
    for partition in partitions:
        low = "-"
        while entries := client.xrange(f"{prefix}:{{{partition}}}", low, "+", count=10_000):
            read += len(entries)
            low = "(" + entries[-1][0].decode()
    return began, time.time(), read


def in_parallel(jobs: list[tuple[object, tuple[object, ...]]]) -> list[tuple[float, ...]]:
    """Run each (function, args) in a process of its own, started together behind one barrier."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(len(jobs))
        with context.Pool(len(jobs)) as pool:
            pending = [pool.apply_async(function, (*args, barrier)) for function, args in jobs]
            return [result.get(timeout=600) for result in pending]


def aggregate(records: int, spans: list[tuple[float, ...]]) -> float:
    """Records per second from the first start to the last end."""
    return records / (max(span[1] for span in spans) - min(span[0] for span in spans))


def shares(total: int, clients: int) -> list[int]:
    return [total // clients + (1 if i < total % clients else 0) for i in range(clients)]


def partitions_of(client: int, clients: int, partitions: int) -> list[int]:
    return [p for p in range(partitions) if p % clients == client]


def kafka_round(bootstraps: list[str], records: int, partitions: int, clients: int) -> tuple[float, float]:
    bootstrap = ",".join(bootstraps)
    topic = f"bench-{time.monotonic_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic].result()
    leaders = {p.leader for p in admin.list_topics(topic, timeout=30).topics[topic].partitions.values()}
    assert len(leaders) == len(bootstraps), f"{len(leaders)} leaders for {len(bootstraps)} gateways"
    produced = aggregate(records, in_parallel([
        (produce_share, (bootstrap, topic, share, partitions)) for share in shares(records, clients)]))
    spans = in_parallel([(consume_share, (bootstrap, topic, partitions_of(c, clients, partitions)))
                         for c in range(clients)])
    assert sum(int(span[2]) for span in spans) == records
    return produced, aggregate(records, spans)


def redis_round(redis_url: str, records: int, partitions: int, clients: int) -> tuple[float, float]:
    prefix = f"anchor-{time.monotonic_ns()}"
    produced = aggregate(records, in_parallel([
        (xadd_share, (redis_url, prefix, share, partitions)) for share in shares(records, clients)]))
    spans = in_parallel([(xrange_share, (redis_url, prefix, partitions_of(c, clients, partitions)))
                         for c in range(clients)])
    assert sum(int(span[2]) for span in spans) == records
    return produced, aggregate(records, spans)


def wait_for_gateways(bootstraps: list[str]) -> None:
    """Until every gateway's Metadata lists every one: then all compute the same leaders."""
    wanted = set(bootstraps)
    for bootstrap in bootstraps:
        deadline = time.monotonic() + 60
        while {f"{b.host}:{b.port}" for b in AdminClient({"bootstrap.servers": bootstrap})
               .list_topics(timeout=30).brokers.values()} != wanted:
            assert time.monotonic() < deadline, f"{bootstrap} does not list {wanted}"
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare_gateways(options: argparse.Namespace, work: Path,
                     processes: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    processes.append(start_redis(work / "redis", port, []))
    redis_pid = processes[-1].pid
    url = f"redis://127.0.0.1:{port}/0"
    gateways: list[tuple[subprocess.Popen[bytes], str]] = []
    print(f"{options.records:,} records of 100 bytes, {options.partitions} partitions, "
          f"{options.clients} client processes, acks=1; aggregate records/s; CPU seconds that "
          f"Redis and the gateways used in the round ({os.cpu_count()} cores)")
    for round_number in range(1, options.rounds + 1):
        for count in (1, 2, 3):
            while len(gateways) > count:  # a clean stop leaves the cluster at once
                process, _ = gateways.pop()
                process.terminate()
                process.wait(30)
            while len(gateways) < count:
                gateways.append(start_gateway(url, "--broker-lease-ms", "3000"))
                processes.append(gateways[-1][0])
            bootstraps = [bootstrap for _, bootstrap in gateways]
            wait_for_gateways(bootstraps)
            pids = [process.pid for process, _ in gateways]
            cpu_before = cpu_seconds(redis_pid), sum(map(cpu_seconds, pids))
            produced, consumed = kafka_round(bootstraps, options.records, options.partitions,
                                             options.clients)
            redis_cpu = cpu_seconds(redis_pid) - cpu_before[0]
            gateways_cpu = sum(map(cpu_seconds, pids)) - cpu_before[1]
            print(f"round {round_number}  {count} gateway{'s' if count > 1 else ' '}        "
                  f"produce {produced:10,.0f}   consume {consumed:10,.0f}   "
                  f"CPU s: Redis {redis_cpu:5.1f}, gateways {gateways_cpu:5.1f}", flush=True)
        redis_before = cpu_seconds(redis_pid)
        produced, consumed = redis_round(url, options.records, options.partitions, options.clients)
        print(f"round {round_number}  redis-py (anchor) "
              f"produce {produced:10,.0f}   consume {consumed:10,.0f}   "
              f"CPU s: Redis {cpu_seconds(redis_pid) - redis_before:5.1f}", flush=True)


def compare_redis_cluster(options: argparse.Namespace, work: Path,
                          processes: list[subprocess.Popen[bytes]]) -> None:
    single = free_port()
    processes.append(start_redis(work / "single", single, []))
    ports = [cluster_port() for _ in range(3)]
    processes += [start_redis(work / f"node{i}", port, CLUSTER_ARGS) for i, port in enumerate(ports)]
    form_cluster(ports)
    for name, url in (("one Redis", f"redis://127.0.0.1:{single}/0"),
                      ("Redis Cluster, 3 primaries", f"redis://127.0.0.1:{ports[0]}/0")):
        gateway, bootstrap = start_gateway(url)
        processes.append(gateway)
        produced, consumed = workload(bootstrap, options.records, options.partitions)
        print(f"{name:28} produce {produced:10,.0f} records/s   consume {consumed:10,.0f} records/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("compare", nargs="?", choices=("redis-cluster", "gateways"), default="redis-cluster")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--clients", type=int, default=2, help="client processes (gateways)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of 1, 2, 3 gateways (gateways)")
    options = parser.parse_args()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as work:
        try:
            if options.compare == "gateways":
                compare_gateways(options, Path(work), processes)
            else:
                compare_redis_cluster(options, Path(work), processes)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(30)


if __name__ == "__main__":
    main()
