"""``kafka-redis-gateway bench``: one workload, several targets, one report.

Targets are Kafka bootstrap addresses (the gateway, a Kafka broker, any
Kafka-compatible broker), driven by confluent-kafka, and Redis servers driven
by redis-py as the hand-written baseline. ``--start-gateway`` starts a
valkey-server and a gateway on free loopback ports and benchmarks the gateway
and redis-py on that same Redis. docs/benchmarks.md describes the workloads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

WORKLOADS = ("produce", "consume", "group", "rebalance", "latency")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _named(text: str) -> tuple[str, str]:
    name, sep, address = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=ADDRESS, got {text!r}")
    return name, address


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafka-redis-gateway bench",
        description="Run named workloads against Kafka bootstrap addresses (confluent-kafka) and "
                    "Redis servers (redis-py) and write a Markdown/JSON/PNG report.",
    )
    add = parser.add_argument
    add("--start-gateway", action="store_true",
        help="start a valkey-server and a gateway on free loopback ports; bench the gateway "
             "(target 'gateway') and redis-py (target 'redis-py') on the same Redis")
    add("--kafka", action="append", type=_named, default=[], metavar="NAME=HOST:PORT",
        help="a Kafka-compatible target (repeatable)")
    add("--redis", action="append", type=_named, default=[], metavar="NAME=URL",
        help="a redis-py baseline target, e.g. redis=redis://127.0.0.1:6379/0 (repeatable)")
    add("--config", type=Path, help='JSON file: {"kafka": {"name": "host:port"}, "redis": {"name": "url"}}')
    add("--workloads", default="produce,consume,latency",
        help=f"comma-separated, of {', '.join(WORKLOADS)} (consume and group read what produce wrote)")
    add("--record-sizes", type=_ints, default=[100, 1000, 10000], help="bytes, comma-separated")
    add("--count", type=int, default=200_000, help="records per produce step")
    add("--max-bytes", type=int, default=200_000_000,
        help="cap on count x record size per produce step (large records get fewer)")
    add("--partitions", type=int, default=1, help="partitions of each produced topic (round robin)")
    add("--producers", type=int, default=1,
        help="concurrent producers of the produce workload, one thread and connection each")
    add("--acks", default="1", choices=["0", "1", "all", "-1"])
    add("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    add("--batch-size", type=int, default=1_000_000, help="librdkafka batch.size (bytes)")
    add("--linger-ms", type=float, default=5.0, help="librdkafka linger.ms for produce throughput")
    add("--producer-config", action="append", type=_named, default=[], metavar="KEY=VALUE",
        help="extra librdkafka producer setting (repeatable)")
    add("--redis-pipeline", type=int, default=1000, help="XADDs per redis-py pipeline")
    add("--rates", type=_ints, default=[1000, 10000], help="offered records/s for the latency workload")
    add("--duration", type=float, default=5.0, help="seconds per latency step")
    add("--latency-linger-ms", type=float, default=1.0, help="librdkafka linger.ms for the latency workload")
    add("--latency-size", type=int, default=100, help="record size of the latency workload")
    add("--step-timeout", type=float, default=120.0, help="seconds before a step is abandoned")
    add("--appendfsync", default="everysec", choices=["always", "everysec", "no"],
        help="appendfsync of the Redis that --start-gateway starts")
    add("--out", type=Path, default=Path("bench-results"), help="report directory")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser


def _version(name: str) -> str:
    try:
        return dist_version(name)
    except PackageNotFoundError:
        return "not installed"


def environment(extra: dict[str, str]) -> dict[str, str]:
    env = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
    }
    try:
        import confluent_kafka

        # confluent_kafka.version() returned the string "2.16.1" here, so its
        # [0] printed "2"; the package metadata says the same on every version.
        env["confluent-kafka / librdkafka"] = (
            f"{_version('confluent-kafka')} / {confluent_kafka.libversion()[0]}")
    except ImportError:
        pass
    for name in ("redis", "hiredis", "kafka-redis-gateway"):
        env[name] = _version(name)
    env.update(extra)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        build_parser().error(f"unknown workloads: {', '.join(sorted(unknown))}")
    kafka: dict[str, str] = dict(args.kafka)
    redis_targets: dict[str, str] = dict(args.redis)
    if args.config:
        config = json.loads(args.config.read_text())
        kafka.update(config.get("kafka", {}))
        redis_targets.update(config.get("redis", {}))
    if not (kafka or redis_targets or args.start_gateway):
        build_parser().error("no targets: give --start-gateway, --kafka, --redis or --config")

    from .servers import LocalServers

    servers: LocalServers | None = None
    extra: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="krg-bench-") as tmp:
        try:
            if args.start_gateway:
                args.out.mkdir(parents=True, exist_ok=True)
                servers = LocalServers(Path(tmp), appendfsync=args.appendfsync).start()
                extra["redis server"] = f"{servers.server_version()} (appendfsync {args.appendfsync})"
                extra["gateway pid"] = str(servers.gateway_process.pid if servers.gateway_process else "")
                print(f"gateway pid {extra['gateway pid']} on {servers.bootstrap}, "
                      f"redis on {servers.redis_url}", file=sys.stderr, flush=True)
            run = execute(args, workloads, kafka, redis_targets, servers, extra)
        finally:
            if servers is not None:
                servers.stop()
    from .report import write

    for path in write(run, args.out):
        print(path)
    return 0


def execute(args: argparse.Namespace, workloads: list[str], kafka: dict[str, str],
            redis_targets: dict[str, str], servers: Any, extra: dict[str, str]) -> dict[str, Any]:
    from .workloads import KafkaTarget, Params, RedisTarget, Target

    targets: list[Target] = []
    if servers is not None:
        targets.append(KafkaTarget("gateway", servers.bootstrap, servers.redis_url))
        targets.append(RedisTarget("redis-py", servers.redis_url))
    targets += [KafkaTarget(name, address) for name, address in kafka.items()]
    targets += [RedisTarget(name, url) for name, url in redis_targets.items()]

    base = Params(partitions=args.partitions, producers=max(1, args.producers), acks=args.acks,
                  compression=args.compression,
                  batch_size=args.batch_size, linger_ms=args.linger_ms, redis_pipeline=args.redis_pipeline,
                  latency_linger_ms=args.latency_linger_ms, step_timeout=args.step_timeout,
                  extra=dict(args.producer_config))
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    steps: list[tuple[str, Target, int]] = []
    needs_data = any(w in workloads for w in ("produce", "consume", "group"))
    for size in args.record_sizes if needs_data else []:
        for target in targets:
            for workload in ("produce", "consume", "group"):
                if workload in workloads or (workload == "produce" and needs_data):
                    steps.append((workload, target, size))
    if "rebalance" in workloads:
        steps += [("rebalance", target, 0) for target in targets]
    if "latency" in workloads:
        for rate in args.rates:
            for target in targets:
                steps.append(("latency", target, rate))

    from tqdm import tqdm

    results: list[dict[str, Any]] = []
    produced: dict[tuple[str, int], tuple[str, int]] = {}
    progress = tqdm(steps, unit="step", disable=args.no_progress, file=sys.stderr)
    for workload, target, number in progress:
        progress.set_description(f"{workload} {target.name} {number}")
        row: dict[str, Any] = {"workload": workload, "target": target.name, "kind": target.kind}
        try:
            if workload == "rebalance":
                row.update(target.rebalance(base))
            elif workload == "latency":
                params = _with(base, record_size=args.latency_size)
                row["record_size"] = args.latency_size
                row.update(target.latency(number, args.duration, params))
            else:
                count = max(1, min(args.count, args.max_bytes // number))
                params = _with(base, record_size=number, count=count)
                row["record_size"] = number
                if workload == "produce":
                    from .workloads import unique_name

                    topic = unique_name(f"produce-{number}")
                    row["topic"] = topic
                    row["producers"], row["partitions"] = params.producers, params.partitions
                    row.update(target.produce(topic, params))
                    produced[(target.name, number)] = (topic, count)
                    row.update(target.memory(topic, params, count))
                else:
                    if (target.name, number) not in produced:
                        raise RuntimeError("nothing produced to read")
                    topic, count = produced[(target.name, number)]
                    read = target.consume if workload == "consume" else target.group_consume
                    row.update(read(topic, params, count))
                    if workload == "group":
                        row["workload"] = "group"
        except Exception as exc:  # one failed step does not lose the rest of the run
            row["error"] = f"{type(exc).__name__}: {exc}"
        results.append(row)
    progress.close()
    if "produce" not in workloads:
        results = [row for row in results if row["workload"] != "produce"]
    return {
        "started": started,
        "command": "kafka-redis-gateway bench " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["bench"]
                                                             else sys.argv[1:]),
        "environment": environment(extra) | {
            "load average (1/5/15 min) at start": load_at_start,
            "load average at end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "targets": {t.name: t.kind for t in targets},
        "results": results,
    }


def _with(params: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(params, **changes)
