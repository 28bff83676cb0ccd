"""CPU per produced record of the gateway, Valkey and the client: the gateway against redis-py.

    python benchmarks/produce_cpu_bench.py SIZE COUNT [--rounds 2]

Starts a valkey-server and a gateway as ``bench --start-gateway`` does
(gateway/bench/servers.py), warms both targets up, then per round produces
COUNT records of SIZE bytes through the gateway (``KafkaTarget.produce``:
librdkafka, linger 5 ms, 1 MB batches) and with redis-py's pipelined
``XADD`` (``RedisTarget.produce``), and prints the rate and the CPU each
process spent per record (user + system from /proc/<pid>/stat; the
client's is this process's, librdkafka's threads included). On a shared
2-core machine the sum of the three is what sets the rate
(docs/benchmarks.md, "The targets of issue #18"). Linux only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from kafka_redis_gateway.gateway.bench.servers import LocalServers
from kafka_redis_gateway.gateway.bench.workloads import KafkaTarget, Params, RedisTarget, unique_name

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("size", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalServers(Path(tmp)) as servers:
        assert servers.gateway_process is not None and servers.redis_process is not None
        gateway, valkey = servers.gateway_process.pid, servers.redis_process.pid
        targets = [KafkaTarget("gateway", servers.bootstrap, servers.redis_url),
                   RedisTarget("redis-py", servers.redis_url)]
        for target in targets:
            target.produce(unique_name("warmup"), Params(record_size=100, count=20_000))
        for _ in range(args.rounds):
            for target in targets:
                before = (cpu_seconds(gateway), cpu_seconds(valkey), time.process_time())
                result = target.produce(unique_name("cpu"), Params(record_size=args.size, count=args.count))
                after = (cpu_seconds(gateway), cpu_seconds(valkey), time.process_time())
                per = [(b - a) / args.count * 1e6 for a, b in zip(before, after, strict=True)]
                print(f"{target.name:9s} {args.size:6d} B x {args.count}: {result['records_per_s']:9,.0f} "
                      f"records/s; CPU µs/record: gateway {per[0]:6.2f}, Valkey {per[1]:6.2f}, "
                      f"client {per[2]:6.2f}", flush=True)


if __name__ == "__main__":
    main()
