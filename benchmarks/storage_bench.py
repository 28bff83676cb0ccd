"""Microbenchmark of the gateway's Redis paths against a private valkey-server.

    python benchmarks/storage_bench.py [--batches N]

Starts a valkey-server on a free loopback port (the embedded package's
binary) and measures, for 100-byte records:

* one round trip's CPU in the calling process (uvloop where installed, as
  the gateway): redis-py's asyncio client
  against the gateway's multiplexed hiredis connection (PING);
* Valkey's CPU per appended record (from /proc/<pid>/stat) and the
  caller's hiredis packing time per record: append.lua given a batch's
  records section (the script parses it), for records of the common shape
  (null key, no headers: the parser's fast path) and with a key and a
  header (its general path), and pipelined plain ``XADD`` (what the
  redis-py baseline does);
* one 8,333-entry read: read.lua against a plain ``XRANGE ... COUNT``, wall
  time, caller CPU and Valkey CPU.

Linux only (/proc). Figures move with machine load: compare the rows of one
run, not runs on different days.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hiredis
import redis.asyncio as aioredis
from kafka_redis_gateway.gateway.embedded import (
    find_server_binary,
    free_port,
    server_command,
    wait_for_redis,
)
from kafka_redis_gateway.gateway.storage.multiplex import MultiplexedConnection
from kafka_redis_gateway.gateway.storage.redis_storage import APPEND, READ
from kafka_redis_gateway.gateway.storage.scripts import load_library
from kafka_redis_gateway.protocol.records import Record, encode_records

BATCH = 1000
READ_COUNT = 8333


def server_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().split()
    return (int(fields[13]) + int(fields[14])) / 100


def append_command(key: str, records: Sequence[Record]) -> tuple[Any, ...]:
    """FCALL of append.lua for one batch of ``records``, not idempotent."""
    timestamps = [record.timestamp for record in records]
    return ("FCALL", APPEND.name, 4, key, key + ":idx", key + ":meta", key + ":p",
            1024, 256 * 1024, -1, -1, -1, -1, "-", 0, 0,
            1, len(records), timestamps[0], max(timestamps), 0, encode_records(records))


async def round_trips(url: str, count: int) -> None:
    client = aioredis.Redis.from_url(url)
    fast = MultiplexedConnection(url, timeout=30)
    await client.ping()
    await fast.execute([("PING",)])
    for name, call in (("redis-py asyncio", client.ping),
                       ("multiplexed hiredis", lambda: fast.execute([("PING",)]))):
        started = time.process_time()
        for _ in range(count):
            await call()
        print(f"PING, {name:20s} caller CPU {(time.process_time() - started) / count * 1e6:6.0f} us")
    await client.aclose()
    fast.close()


async def appends(fast: MultiplexedConnection, pid: int, batches: int) -> None:
    records = [Record(1_700_000_000_000 + i // 10, None, b"v" * 100, ()) for i in range(BATCH)]
    keyed = [Record(timestamp, b"key-%d" % i, value, (("trace", b"abc"),))
             for i, (timestamp, _, value, _) in enumerate(records)]

    variants: dict[str, Callable[[str], list[tuple[Any, ...]]]] = {
        "append.lua, value only": lambda key: [append_command(key, records)],
        "append.lua, key, value, header": lambda key: [append_command(key, keyed)],
        "pipelined XADD": lambda key: [("XADD", key, "*", "value", r.value) for r in records],
    }
    await load_library(fast)
    for name, build in variants.items():
        key = f"{{bench-{len(name)}}}"
        packing = 0.0
        before = server_cpu(pid)
        for _ in range(batches):
            commands = build(key)
            started = time.perf_counter()
            for command in commands:
                hiredis.pack_command(command)
            packing += time.perf_counter() - started
            (first, *_) = await fast.execute(commands)
            if isinstance(first, Exception):
                raise first
        per_record = (server_cpu(pid) - before) / (batches * BATCH)
        print(f"{name:36s} Valkey CPU {per_record * 1e6:5.2f} us/record, "
              f"hiredis packing {packing / (batches * BATCH) * 1e9:5.0f} ns/record")


async def reads(fast: MultiplexedConnection, pid: int) -> None:
    key = "{bench-read}"
    records = [Record(1_700_000_000_000, None, b"v" * 100, ())] * BATCH
    for _ in range(READ_COUNT // BATCH + 1):
        await fast.execute([append_command(key, records)])
    variants: dict[str, tuple[Any, ...]] = {
        "read.lua": ("FCALL", READ.name, 3, key, key + ":idx", key + ":meta", 0, READ_COUNT, 10**9, 1024, 64),
        "XRANGE": ("XRANGE", key, "-", "+", "COUNT", READ_COUNT),
    }
    for name, command in variants.items():
        runs = 20
        wall, cpu, before = time.perf_counter(), time.process_time(), server_cpu(pid)
        for _ in range(runs):
            (reply,) = await fast.execute([command])
            if isinstance(reply, Exception):
                raise reply
        elapsed = (time.perf_counter() - wall) / runs
        print(f"read {READ_COUNT} entries, {name:9s} wall {elapsed * 1e3:6.1f} ms, "
              f"caller CPU {(time.process_time() - cpu) / runs * 1e3:5.1f} ms, "
              f"Valkey CPU {(server_cpu(pid) - before) / runs * 1e3:5.1f} ms")


async def run(port: int, pid: int, batches: int) -> None:
    url = f"redis://127.0.0.1:{port}/0"
    await round_trips(url, 2000)
    fast = MultiplexedConnection(url, timeout=60)
    await appends(fast, pid, batches)
    await reads(fast, pid)
    fast.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=40, help="1,000-record batches per append variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        server = subprocess.Popen(server_command(find_server_binary(), port, Path(data), "everysec"),
                                  stdout=subprocess.DEVNULL)
        try:
            wait_for_redis(port, server)
            try:  # the gateway's event loop, where installed
                import uvloop

                uvloop.run(run(port, server.pid, args.batches))
            except ImportError:
                asyncio.run(run(port, server.pid, args.batches))
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
