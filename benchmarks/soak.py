"""Soak test: 50 client connections against one gateway, its memory sampled over time.

    python benchmarks/soak.py [--duration 600] [--interval 10] [--work-dir DIR]

Starts a valkey-server and a gateway (gateway/bench/servers.py) on loopback
ports and runs, for ``--duration`` seconds, 50 clients at once:

- 20 confluent-kafka producers, each about 100 records/s of 200-800 bytes;
- 15 consumers in one group, committing automatically;
- 5 consumers with huge fetches (fetch.max.bytes 50 MiB,
  max.partition.fetch.bytes 16 MiB) that go back to the beginning of the
  retained log every 30 s, so they keep asking for the largest responses;
- 3 raw slow readers: Fetch requests with max_bytes 50 MiB from each
  partition's log start, whose responses they read at 256 KiB/s;
- 7 that connect, produce ten records, consume a little and disconnect, over
  and over.

The topic keeps 16 MiB per partition (retention.bytes) so that Redis does
not grow for the whole run. Every ``--interval`` seconds it prints the
gateway's resident set size (VmRSS from /proc), Redis's, and the records
produced and consumed so far; at the end a summary. Exit status 1 only if
the gateway or Redis died during the run; error lines in the gateway's log
are counted and printed, not judged. Not a CI test: docs/guarantees.md
records a run's figures.
"""

from __future__ import annotations

import argparse
import datetime
import random
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_redis_gateway.gateway.bench.servers import LocalServers
from kafka_redis_gateway.protocol.messages import RequestHeader, encode_request, request_schema

TOPIC = "soak"
PARTITIONS = 8
RETENTION_BYTES = 16 << 20
HUGE_FETCH = 50 << 20
SLOW_READ_BYTES_PER_S = 256 << 10
MIX = {"producer": 20, "group consumer": 15, "huge fetcher": 5, "slow reader": 3, "churner": 7}


@dataclass
class Counters:
    produced: int = 0
    consumed: int = 0
    slow_bytes: int = 0
    churns: int = 0
    client_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)


def producer(bootstrap: str, stop: threading.Event, counters: Counters, seed: int) -> None:
    rng = random.Random(seed)
    client = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                                       "compression.type": "lz4", "enable.idempotence": True})

    def delivered(error: Any, _message: Any) -> None:
        counters.add("produced" if error is None else "client_errors")

    while not stop.is_set():
        for _ in range(10):
            try:
                client.produce(TOPIC, key=b"%d" % rng.randrange(1000),
                               value=rng.randbytes(rng.randrange(100, 400)) * 2, on_delivery=delivered)
            except BufferError:
                break
        client.poll(0.1)  # about 100 records/s
    client.flush(30)


def group_consumer(bootstrap: str, stop: threading.Event, counters: Counters, _seed: int) -> None:
    client = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-group",
                                       "auto.offset.reset": "latest"})
    client.subscribe([TOPIC])
    try:
        while not stop.is_set():
            counters.add("consumed", sum(1 for m in client.consume(500, timeout=0.5) if m.error() is None))
    finally:
        client.close()


def huge_fetcher(bootstrap: str, stop: threading.Event, counters: Counters, seed: int) -> None:
    client = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"soak-huge-{seed}", "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "fetch.max.bytes": HUGE_FETCH,
        "max.partition.fetch.bytes": 16 << 20, "receive.message.max.bytes": HUGE_FETCH + (1 << 20),
    })
    beginning = [confluent_kafka.TopicPartition(TOPIC, p, confluent_kafka.OFFSET_BEGINNING)
                 for p in range(PARTITIONS)]
    try:
        while not stop.is_set():
            client.assign(beginning)
            rewind_at = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < rewind_at:
                messages = client.consume(1000, timeout=0.5)
                counters.add("consumed", sum(1 for m in messages if m.error() is None))
    finally:
        client.close()


def fetch_request(correlation_id: int, offsets: dict[int, int]) -> bytes:
    schema = request_schema(1, 12)
    assert schema is not None
    module = sys.modules[schema.__module__]
    partitions = tuple(module.FetchPartition(partition=p, fetch_offset=offset, partition_max_bytes=16 << 20,
                                             current_leader_epoch=-1, last_fetched_epoch=-1,
                                             log_start_offset=-1)
                       for p, offset in offsets.items())
    body = schema(replica_id=-1, max_wait=datetime.timedelta(milliseconds=500), min_bytes=1,
                  max_bytes=HUGE_FETCH, isolation_level=0, session_id=0, session_epoch=-1,
                  topics=(module.FetchTopic(topic=TOPIC, partitions=partitions),),
                  forgotten_topics_data=(), rack_id="")
    payload = encode_request(RequestHeader(1, 12, correlation_id, "soak-slow-reader"), body)
    return struct.pack(">i", len(payload)) + payload


def slow_reader(bootstrap: str, stop: threading.Event, counters: Counters, _seed: int) -> None:
    """Asks for 50 MiB from the start of every partition, reads the answer slowly."""
    host, port = bootstrap.rsplit(":", 1)
    correlation_id = 0
    while not stop.is_set():
        try:
            with socket.create_connection((host, int(port)), timeout=60) as sock:
                correlation_id += 1
                sock.sendall(fetch_request(correlation_id, dict.fromkeys(range(PARTITIONS), 0)))
                (size,) = struct.unpack(">i", read_slowly(sock, 4, stop))
                counters.add("slow_bytes", len(read_slowly(sock, size, stop)))
        except (OSError, struct.error):
            counters.add("client_errors")
            time.sleep(1)


def read_slowly(sock: socket.socket, size: int, stop: threading.Event) -> bytes:
    chunks: list[bytes] = []
    left = size
    chunk = SLOW_READ_BYTES_PER_S // 10
    while left and not stop.is_set():
        data = sock.recv(min(chunk, left))
        if not data:
            raise OSError("closed by the gateway")
        chunks.append(data)
        left -= len(data)
        time.sleep(len(data) / SLOW_READ_BYTES_PER_S)
    return b"".join(chunks)


def churner(bootstrap: str, stop: threading.Event, counters: Counters, seed: int) -> None:
    while not stop.is_set():
        client = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        for index in range(10):
            client.produce(TOPIC, value=b"churn %d %d" % (seed, index))
        if client.flush(30) == 0:
            counters.add("produced", 10)
        consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-churn-{seed}",
                                             "auto.offset.reset": "latest"})
        consumer.subscribe([TOPIC])
        counters.add("consumed", sum(1 for m in consumer.consume(100, timeout=2) if m.error() is None))
        consumer.close()
        counters.add("churns")
        stop.wait(1)


WORKERS = {"producer": producer, "group consumer": group_consumer, "huge fetcher": huge_fetcher,
           "slow reader": slow_reader, "churner": churner}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1,
                     config={"retention.bytes": str(RETENTION_BYTES)})
    admin.create_topics([topic])[TOPIC].result(30)


def run(duration: float, interval: float, work_dir: Path) -> int:
    servers = LocalServers(work_dir, gateway_args=["--retention-check-interval-ms", "10000"]).start()
    assert servers.gateway_process is not None and servers.redis_process is not None
    gateway_pid, redis_pid = servers.gateway_process.pid, servers.redis_process.pid
    stop = threading.Event()
    counters = Counters()
    crashed = ""
    samples: list[tuple[float, int, int, int, int]] = []
    threads: list[threading.Thread] = []
    try:
        create_topic(servers.bootstrap)
        for kind, count in MIX.items():
            for index in range(count):
                thread = threading.Thread(target=WORKERS[kind], name=f"{kind} {index}", daemon=True,
                                          args=(servers.bootstrap, stop, counters, len(threads)))
                thread.start()
                threads.append(thread)
        print(f"{len(threads)} clients ({', '.join(f'{n} {k}s' for k, n in MIX.items())}) "
              f"for {duration:.0f} s; gateway pid {gateway_pid}, log {work_dir / 'gateway.log'}")
        print(f"{'t (s)':>6} {'gateway RSS MiB':>16} {'Redis RSS MiB':>14} {'produced':>10} {'consumed':>10} "
              f"{'slow-read MiB':>14}")
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            if servers.gateway_process.poll() is not None or servers.redis_process.poll() is not None:
                crashed = (f"gateway exit {servers.gateway_process.poll()}, "
                           f"Redis exit {servers.redis_process.poll()}")
                break
            sample = (elapsed, rss_kib(gateway_pid), rss_kib(redis_pid), counters.produced, counters.consumed)
            samples.append(sample)
            print(f"{elapsed:6.0f} {sample[1] / 1024:16.1f} {sample[2] / 1024:14.1f} {sample[3]:10d} "
                  f"{sample[4]:10d} {counters.slow_bytes / (1 << 20):14.1f}", flush=True)
            if elapsed >= duration:
                break
            time.sleep(min(interval, max(0.0, duration - elapsed)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        servers.stop()
    summarise(samples, counters, work_dir / "gateway.log", crashed)
    return 1 if crashed else 0


def summarise(samples: list[tuple[float, int, int, int, int]], counters: Counters, log: Path,
              crashed: str) -> None:
    rss = [sample[1] for sample in samples]
    errors = sum(1 for line in log.read_text(errors="replace").splitlines()
                 if "Traceback" in line or " ERROR " in line)
    print()
    print(f"gateway RSS: start {rss[0] / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB, "
          f"end {rss[-1] / 1024:.1f} MiB (after {samples[-1][0]:.0f} s)")
    print(f"records produced {counters.produced}, consumed {counters.consumed}, "
          f"slow-read {counters.slow_bytes / (1 << 20):.1f} MiB, "
          f"connect/disconnect rounds {counters.churns}, "
          f"client-side errors {counters.client_errors}")
    print(f"ERROR/Traceback lines in the gateway log: {errors}")
    print(f"crashed: {crashed}" if crashed else "no crash")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--interval", type=float, default=10, help="seconds between samples (default 10)")
    parser.add_argument("--work-dir", type=Path,
                        help="for Redis's data and the gateway's log (default: a temp dir)")
    args = parser.parse_args()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="krg-soak-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    sys.exit(run(args.duration, args.interval, work_dir))


if __name__ == "__main__":
    main()
