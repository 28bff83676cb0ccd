"""Compaction throughput and the Redis memory it gives back.

    python benchmarks/compaction_bench.py [--records N] [--keys K] [--value-bytes B]

Starts a valkey-server and a gateway on loopback (gateway/bench/servers.py),
creates a compacted topic whose min.compaction.lag.ms keeps the gateway's
own compaction away, produces N records over K keys (confluent-kafka,
lz4, linger 5 ms) plus one newest record, then compacts the partition
through the storage layer (RedisStorage.compact, the calls the controller
makes) and prints: entries examined and removed, script calls, wall time,
records examined per second, the longest compact.lua call (Valkey's
SLOWLOG), MEMORY USAGE of the stream and of the key map before and after,
and the cost of compacting the partition again (nothing dirty).

Figures move with machine load: compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import confluent_kafka
import redis
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_redis_gateway.gateway.bench.servers import LocalServers
from kafka_redis_gateway.gateway.storage import CompactionSettings, RedisStorage, keys

TOPIC = "compaction-bench"
SETTINGS = CompactionSettings(min_lag_ms=0, max_lag_ms=2**63 - 1, segment_ms=0, min_dirty_ratio=0.5,
                              delete_retention_ms=86_400_000)


def produce(bootstrap: str, records: int, key_count: int, value_bytes: int) -> None:
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000})
    value = b"v" * value_bytes
    for i in range(records):
        while True:
            try:
                producer.produce(TOPIC, value, b"key-%d" % (i % key_count))
                break
            except BufferError:
                producer.poll(0.1)
    producer.produce(TOPIC, b"newest", b"newest")
    assert producer.flush(120) == 0


def memory(client: redis.Redis, key: str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def call_durations_ms(client: redis.Redis) -> list[float]:
    """The compact.lua calls' durations (SLOWLOG), in ms, longest first."""
    calls = [entry for entry in client.slowlog_get(100_000)
             if entry["command"].startswith(b"FCALL") and b"_compact " in entry["command"]]
    return sorted((entry["duration"] / 1000 for entry in calls), reverse=True)


async def compact(url: str) -> tuple[float, int, int, int]:
    storage = RedisStorage(url)
    try:
        await storage.topics()  # learn the topic
        started = time.perf_counter()
        stats = await storage.compact(TOPIC, 0, SETTINGS)
        return time.perf_counter() - started, stats.examined, stats.removed, stats.calls
    finally:
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, LocalServers(Path(work)) as servers:
        client = redis.Redis.from_url(servers.redis_url)
        admin = AdminClient({"bootstrap.servers": servers.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 1, config={
            "cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"})])[TOPIC].result(30)
        produce(servers.bootstrap, args.records, args.keys, args.value_bytes)
        stream, latest = keys.stream(TOPIC, 0), keys.latest_by_key(TOPIC, 0)
        before = memory(client, stream)
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 100_000)  # (Valkey may keep fewer: the count is printed)
        client.slowlog_reset()
        seconds, examined, removed, calls = asyncio.run(compact(servers.redis_url))
        durations = call_durations_ms(client)
        after, map_bytes = memory(client, stream), memory(client, latest)
        client.slowlog_reset()
        again, examined_again, _, calls_again = asyncio.run(compact(servers.redis_url))
        (longest_again, *_) = call_durations_ms(client) or [0.0]
        print(f"records {args.records:,} over {args.keys:,} keys, {args.value_bytes}-byte values "
              f"({servers.server_version()})")
        print(f"compaction: examined {examined:,}, removed {removed:,}, {calls} calls "
              f"{seconds:.2f} s, {examined / seconds:,.0f} records examined/s; "
              f"{len(durations)} calls in SLOWLOG: longest {durations[0]:.1f} ms, "
              f"median {durations[len(durations) // 2]:.1f} ms, "
              f"all {sum(durations):.0f} ms")
        print(f"stream MEMORY USAGE: {before:,} B before, {after:,} B after ({before / max(after, 1):.1f}x); "
              f"key map {map_bytes:,} B; XLEN {client.xlen(stream):,}")
        print(f"again: examined {examined_again}, {calls_again} call, {again * 1000:.2f} ms "
              f"(longest call {longest_again:.2f} ms)")


if __name__ == "__main__":
    main()
