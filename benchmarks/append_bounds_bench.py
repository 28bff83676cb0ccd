"""The worst produce batch the gateway accepts, and the longest Redis command it causes.

One Produce request with one zstd batch of N minimal records (null key,
empty value, no headers: the most records per byte; 1,000,000 of them
compress to well under the default max.message.bytes of 1 MiB) is sent
raw to a gateway started here on its own valkey-server. Printed: the
request's size, the Produce latency, the append.lua calls it took (FCALL
count from INFO commandstats) and the longest commands in SLOWLOG (every
command over 1 ms is logged during the run). Issue #12's bar: no command
over 100 ms.

    python benchmarks/append_bounds_bench.py [--records 1000000] [--headers 0]
"""

from __future__ import annotations

import argparse
import datetime
import socket
import struct
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import redis
from kafka_redis_gateway.gateway.bench.servers import LocalServers
from kafka_redis_gateway.protocol.framing import frame
from kafka_redis_gateway.protocol.messages import (
    RequestHeader,
    encode_request,
    request_schema,
    response_schema,
)
from kafka_redis_gateway.protocol.records import Compression, Record, encode_batch
from kio.serial import entity_reader

PRODUCE, CREATE_TOPICS = 0, 19


def build(cls: Any, **values: Any) -> Any:
    names = {field.name for field in fields(cls)}
    return cls(**{name: value for name, value in values.items() if name in names})


def call(sock: socket.socket, api_key: int, version: int, body: Any) -> Any:
    header = RequestHeader(api_key, version, 1, "append-bounds-bench")
    sock.sendall(frame(encode_request(header, body)))
    (size,) = struct.unpack(">i", receive(sock, 4))
    payload = receive(sock, size)
    schema = response_schema(api_key, version)
    offset = 5 if schema.__header_schema__.__flexible__ else 4
    response, _ = entity_reader(schema)(payload, offset)
    return response


def receive(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("gateway closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def create_topic(sock: socket.socket, name: str) -> None:
    types = request_schema(CREATE_TOPICS, 7)
    module = __import__(types.__module__, fromlist=["CreatableTopic"])
    topic = build(module.CreatableTopic, name=name, num_partitions=1, replication_factor=1,
                  assignments=(), configs=())
    call(sock, CREATE_TOPICS, 7, build(types, topics=(topic,), timeout=datetime.timedelta(seconds=10),
                                       validate_only=False))


def produce(sock: socket.socket, topic: str, batch: bytes) -> Any:
    types = request_schema(PRODUCE, 9)
    module = __import__(types.__module__, fromlist=["PartitionProduceData"])
    partition = build(module.PartitionProduceData, index=0, records=batch)
    request = build(types, transactional_id=None, acks=1, timeout=datetime.timedelta(seconds=120),
                    topic_data=(build(module.TopicProduceData, name=topic, partition_data=(partition,)),))
    return call(sock, PRODUCE, 9, request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--headers", type=int, default=0, help="empty headers per record")
    args = parser.parse_args()
    headers = tuple(("", b"") for _ in range(args.headers))
    records = [Record(0, None, b"", headers)] * args.records
    batch = encode_batch(0, records, compression=Compression.ZSTD)
    with tempfile.TemporaryDirectory() as work, LocalServers(Path(work)) as servers:
        client = redis.Redis.from_url(servers.redis_url)
        client.config_set("slowlog-log-slower-than", 1000)
        client.config_set("slowlog-max-len", 10_000)
        host, port = servers.bootstrap.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=300) as sock:
            create_topic(sock, "bounds")
            client.slowlog_reset()
            calls_before = fcalls(client)
            started = time.perf_counter()
            response = produce(sock, "bounds", batch)
            elapsed = time.perf_counter() - started
            busy = wait_while_busy(client)
        (answer,) = response.responses
        (partition,) = answer.partition_responses
        inflated = len(encode_batch(0, records[:1000])) * len(records) // 1000
        print(f"{args.records:,} records x {args.headers} headers, zstd batch of {len(batch):,} bytes "
              f"(about {inflated:,} inflated)")
        print(f"Produce: error code {partition.error_code}, base offset {partition.base_offset}, "
              f"{elapsed * 1000:,.0f} ms; stream length {client.xlen('kafka:{bounds:0}'):,}")
        if busy:
            print(f"Redis answered BUSY to this benchmark's client for {busy:.1f} s after the response")
        print(f"append.lua calls (checks + pieces): {fcalls(client) - calls_before}")
        slowest = sorted(client.slowlog_get(10_000), key=lambda entry: -entry["duration"])[:3]
        for entry in slowest:
            command = entry["command"]
            words = command.split()[:2] if isinstance(command, bytes) else [b"?"]
            name = b" ".join(words).decode(errors="replace")
            print(f"  SLOWLOG {entry['duration'] / 1000:7.1f} ms  {name}")
        if not slowest:
            print("  SLOWLOG: no command over 1 ms")


def wait_while_busy(client: redis.Redis) -> float:
    """Seconds for which Redis answered BUSY (a script still running after the response)."""
    started = time.perf_counter()
    while True:
        try:
            client.ping()
            break
        except redis.ResponseError as exc:
            if "BUSY" not in str(exc):
                raise
            time.sleep(0.1)
    waited = time.perf_counter() - started
    return waited if waited > 0.05 else 0.0


def fcalls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_fcall", {}).get("calls", 0))


if __name__ == "__main__":
    main()
