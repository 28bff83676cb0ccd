"""Prototype: one stream entry per Kafka record batch, against today's one entry per record.

    python benchmarks/batch_entry_bench.py [--batches 200] [--records 1000] [--size 100]

Issue #18 asks what a different entry format could give for topics that no
Redis-native code reads. Today every record is its own entry (append.lua
parses the batch and runs one XADD per record); the prototype keeps the
producer's batch as one entry, compressed as it came, with the base offset
taken from the stream itself in the same call:

    batch.lua:  last = XREVRANGE key + - COUNT 1   -> base = last.base + last.n (0 if none)
                XADD key * base <base> n <count> b <batch bytes>

and a fetch returns the stored batches with their base offset (the first 8
bytes, outside the CRC) patched in, with no per-record work at all.

Starts a valkey-server on a free loopback port and measures, for the same
batches: produce (records/s and Valkey CPU per record), a read from the
beginning (records/s, including the gateway's encode of today's format),
and ``MEMORY USAGE`` per record. Not part of the gateway: the prototype
has no idempotence, no retention, no LogAppendTime, no native-reader view
and no seek within a batch (a fetch from an offset inside a batch returns
the whole batch, which Kafka clients accept: they skip the records below
their position). Linux only (/proc). Figures move with machine load:
compare the rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from kafka_redis_gateway.gateway.embedded import find_server_binary, free_port, server_command, wait_for_redis
from kafka_redis_gateway.gateway.storage import RedisStorage, keys
from kafka_redis_gateway.gateway.storage.base import AppendBatch, AppendRequest, ReadRequest
from kafka_redis_gateway.protocol.records import Compression, Record, encode_batch, encode_encoded_batch

BATCH_LUA = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local base = 0
if last[1] then
  local f = last[1][2]
  base = tonumber(f[2]) + tonumber(f[4])
end
redis.call('XADD', KEYS[1], '*', 'base', base, 'n', ARGV[1], 'b', ARGV[2])
return base
"""
PIPELINE = 10  # batches in flight, for both formats


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def make_batches(count: int, records: int, size: int) -> list[list[Record]]:
    """Values of random hex digits: about 2:1 for zstd, as text payloads compress, not 50:1."""
    now = int(time.time() * 1000)
    rng = random.Random(18)
    return [[Record(now + i, None, rng.randbytes(size // 2 + 1).hex()[:size].encode(), ())
             for _ in range(records)] for i in range(count)]


async def today_produce(storage: RedisStorage, topic: str, batches: list[list[Record]]) -> None:
    requests = [AppendRequest(topic, 0, [AppendBatch.of_records(batch)]) for batch in batches]
    for start in range(0, len(requests), PIPELINE):
        results = await asyncio.gather(*(storage.append([r]) for r in requests[start:start + PIPELINE]))
        for (result,) in results:
            if isinstance(result, Exception):
                raise result


async def today_read(storage: RedisStorage, topic: str, total: int) -> int:
    """Fetch-sized reads from 0, each turned into the batch a Fetch response carries."""
    offset = size = 0
    while offset < total:
        (result,) = await storage.read([ReadRequest(topic, 0, offset, 1 << 20, encoded=True)])
        assert not isinstance(result, Exception) and result.encoded is not None
        size += len(encode_encoded_batch(offset, result.encoded))
        offset += result.encoded.count
    return size


def prototype_produce(client: redis.Redis, key: str, wire: list[tuple[int, bytes]]) -> None:
    script = client.register_script(BATCH_LUA)
    for start in range(0, len(wire), PIPELINE):
        pipe = client.pipeline(transaction=False)
        for count, data in wire[start:start + PIPELINE]:
            script(keys=[key], args=[count, data], client=pipe)
        pipe.execute()


def prototype_read(client: redis.Redis, key: str) -> tuple[int, int]:
    """Entries of up to 1 MiB of batches per call, base offsets patched in: (records, bytes)."""
    last, records, size = "-", 0, 0
    while True:
        entries = client.xrange(key, min=last, max="+", count=16)
        if not entries:
            return records, size
        out = []
        for _entry_id, fields in entries:
            base = int(fields[b"base"])
            out.append(struct.pack(">q", base) + fields[b"b"][8:])
            records += int(fields[b"n"])
        size += len(b"".join(out))
        last = "(" + entries[-1][0].decode()


def report(name: str, records: int, wall: float, cpu: float) -> None:
    """One line; Valkey's CPU comes in 10 ms clock ticks, so short steps show 0."""
    print(f"    {name:7s} {records / wall:10,.0f} records/s   Valkey {cpu / records * 1e6:6.2f} µs/record")


def measure(name: str, pid: int, records: int, run: Callable[[], object]) -> float:
    cpu, wall = server_cpu(pid), time.perf_counter()
    run()
    wall, cpu = time.perf_counter() - wall, server_cpu(pid) - cpu
    report(name, records, wall, cpu)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--records", type=int, default=1000, help="records per batch")
    parser.add_argument("--size", type=int, default=100, help="value bytes")
    args = parser.parse_args()
    total = args.batches * args.records
    batches = make_batches(args.batches, args.records, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = subprocess.Popen(server_command(find_server_binary(), port, Path(tmp), "everysec"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_redis(port, server)
            url = f"redis://127.0.0.1:{port}/0"
            client = redis.Redis.from_url(url)
            print(f"{args.batches} batches of {args.records} records of {args.size} bytes "
                  f"({total:,} records)")

            async def today() -> None:
                storage = RedisStorage(url)
                try:
                    await storage.create_topic("today", 1, {})
                    print("  today: append.lua, one entry per record")
                    cpu, wall = server_cpu(server.pid), time.perf_counter()
                    await today_produce(storage, "today", batches)
                    report("produce", total, time.perf_counter() - wall, server_cpu(server.pid) - cpu)
                    cpu, wall = server_cpu(server.pid), time.perf_counter()
                    await today_read(storage, "today", total)
                    report("read", total, time.perf_counter() - wall, server_cpu(server.pid) - cpu)
                finally:
                    await storage.close()

            asyncio.run(today())
            memory = sum(int(client.memory_usage(k, samples=0) or 0)
                         for k in (keys.stream("today", 0), keys.offset_index("today", 0),
                                   keys.partition_meta("today", 0)))
            print(f"    memory  {memory / total:10.1f} bytes/record")
            for codec in (Compression.NONE, Compression.ZSTD):
                key = f"proto:{{{codec.name.lower()}:0}}"
                wire = [(len(batch), encode_batch(0, batch, compression=codec)) for batch in batches]
                print(f"  prototype: one entry per batch, {codec.name.lower()}")
                produce_s = measure("produce", server.pid, total,
                                    lambda key=key, wire=wire: prototype_produce(client, key, wire))
                read_s = measure("read", server.pid, total, lambda key=key: prototype_read(client, key))
                memory = int(client.memory_usage(key, samples=0) or 0)
                print(f"    memory  {memory / total:10.1f} bytes/record"
                      f"  (produce {produce_s:.2f} s, read {read_s:.2f} s)")
            client.close()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
