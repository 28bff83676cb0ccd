"""Share groups (KIP-932): records per second through share consumers, beside native XREADGROUP workers.

    python benchmarks/share_bench.py [--records N] [--partitions P] [--workers W] [--rounds R]

Starts one valkey-server and a gateway on loopback ports, writes N records
of 100 bytes over P partitions, and drains them, for each round, three ways:

- ``share``: W processes, each a confluent-kafka ShareConsumer (implicit
  acknowledgement: each poll accepts the previous one's records) in one
  share group;
- ``native``: W processes, each a Redis-native worker (XREADGROUP COUNT 100
  over the partitions' streams, then XACK) in one Redis consumer group: the
  anchor, what Redis does without a gateway;
- ``mixed``: W share consumers and W native workers in the same group,
  sharing the records; the share of each kind is printed.

A phase's rate is N over the time from the first worker's start to the
moment the group has every record acknowledged. Every process shares the
machine's cores with Redis and the gateway: compare the rows of one run.
The gateway's log goes to share_bench_gateway.log in the temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from kafka_redis_gateway.gateway.embedded import (
    find_server_binary,
    free_port,
    server_command,
    wait_for_port,
    wait_for_redis,
)

VALUE = b"x" * 100


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(server_command(find_server_binary(), port, directory, "everysec"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_redis(port, process)
    return process, f"redis://127.0.0.1:{port}/0"


def start_gateway(redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(Path(tempfile.gettempdir()) / "share_bench_gateway.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "kafka_redis_gateway.gateway",
                                "--listen", f"127.0.0.1:{port}", "--redis-url", redis_url],
                               stdout=log, stderr=log)
    wait_for_port(port, process)
    return process, f"127.0.0.1:{port}"


def prepare(bootstrap: str, records: int, partitions: int) -> str:
    topic = f"queue-{time.monotonic_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(records):
        producer.produce(topic, value=VALUE, partition=i % partitions)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return topic


def new_group(bootstrap: str, name: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.GROUP, name, incremental_configs=[ConfigEntry(
        "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(30)
    return name


def share_worker(bootstrap: str, topic: str, group: str, done: Any, barrier: Any) -> tuple[float, int]:
    from confluent_kafka import ShareConsumer

    consumer = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    consumer.subscribe([topic])
    barrier.wait()
    began, count = time.time(), 0
    while not done.is_set():
        count += sum(1 for message in consumer.poll(0.2) or [] if message.error() is None)
    consumer.commit_sync()
    consumer.close()
    return began, count


def native_worker(redis_url: str, streams: list[str], group: str, name: str, done: Any,
                  barrier: Any) -> tuple[float, int]:
    client = redis.Redis.from_url(redis_url)
    for stream in streams:  # the group from the start, as share.auto.offset.reset=earliest
        with contextlib.suppress(redis.ResponseError):  # created already (by a share consumer, too)
            client.xgroup_create(stream, group, id="0")
    barrier.wait()
    began, count = time.time(), 0
    while not done.is_set():
        reply = client.xreadgroup(group, name, {stream: ">" for stream in streams}, count=100, block=200)
        for stream, entries in reply or []:
            client.xack(stream, group, *[entry_id for entry_id, _ in entries])
            count += len(entries)
    return began, count


def drained(client: redis.Redis, streams: list[str], group: str, records: int) -> bool:
    """Every record delivered and acknowledged."""
    read = pending = 0
    for stream in streams:
        for info in client.xinfo_groups(stream):
            if info["name"].decode() == group:
                read += info["entries-read"] or 0
                pending += info["pending"]
    return read >= records and pending == 0


def phase(redis_url: str, bootstrap: str, topic: str, streams: list[str], records: int, workers: int,
          kinds: tuple[str, ...], group: str) -> tuple[float, dict[str, int]]:
    context = multiprocessing.get_context("spawn")
    client = redis.Redis.from_url(redis_url)
    with context.Manager() as manager:
        done = manager.Event()
        jobs: list[tuple[str, Any, tuple[Any, ...]]] = []
        for kind in kinds:
            for index in range(workers):
                if kind == "share":
                    jobs.append((kind, share_worker, (bootstrap, topic, group, done)))
                else:
                    jobs.append((kind, native_worker, (redis_url, streams, group, f"native-{index}", done)))
        barrier = manager.Barrier(len(jobs) + 1)
        with context.Pool(len(jobs)) as pool:
            pending = [pool.apply_async(function, (*args, barrier)) for _, function, args in jobs]
            barrier.wait()
            began = time.time()
            while not drained(client, streams, group, records):
                time.sleep(0.02)
            ended = time.time()
            done.set()
            results = [result.get(timeout=120) for result in pending]
    counts: dict[str, int] = {}
    for (kind, _, _), (_, count) in zip(jobs, results, strict=True):
        counts[kind] = counts.get(kind, 0) + count
    return records / (ended - began), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        redis_process, redis_url = start_redis(Path(work))
        gateway, bootstrap = start_gateway(redis_url)
        try:
            topic = prepare(bootstrap, options.records, options.partitions)
            streams = [f"kafka:{{{topic}:{p}}}" for p in range(options.partitions)]
            print(f"{options.records} records of 100 bytes, {options.partitions} partitions, "
                  f"{options.workers} workers of each kind")
            for round_number in range(options.rounds):
                for kinds in (("share",), ("native",), ("share", "native")):
                    group = new_group(bootstrap, f"g-{round_number}-{'-'.join(kinds)}")
                    rate, counts = phase(redis_url, bootstrap, topic, streams, options.records,
                                         options.workers, kinds, group)
                    split = ", ".join(f"{kind} {count}" for kind, count in counts.items())
                    print(f"round {round_number + 1} {'+'.join(kinds):13} {rate:9.0f} records/s  ({split})")
        finally:
            gateway.terminate()
            gateway.wait()
            redis_process.terminate()
            redis_process.wait()


if __name__ == "__main__":
    main()
