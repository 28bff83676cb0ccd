"""``kafka-redis-gateway bench``: one workload, several targets, one report.

Targets are Kafka bootstrap addresses (the gateway, a Kafka broker, any
Kafka-compatible broker), driven by confluent-kafka, and Redis servers driven
by redis-py as the hand-written baseline. ``--start-gateway`` starts a
valkey-server and a gateway on free loopback ports and benchmarks the gateway
and redis-py on that same Redis; ``--start-kafka`` starts the Apache Kafka
broker built into /opt/kafka-broker beside them (target ``kafka``).
docs/benchmarks.md describes the workloads.
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

WORKLOADS = ("produce", "consume", "group", "rebalance", "latency", "recovery")


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
    add("--start-kafka", action="store_true",
        help="start the Apache Kafka broker of /opt/kafka-broker (KRaft, one node) on free loopback "
             "ports with a temporary data directory (target 'kafka'); stopped and removed at the end")
    add("--kafka-config", action="append", type=_named, default=[], metavar="KEY=VALUE",
        help="extra server.properties setting of the broker --start-kafka starts (repeatable), "
             "e.g. log.flush.interval.messages=1 to fsync every write")
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
    add("--partitions", type=_ints, default=[1],
        help="partitions of each produced topic (round robin), comma-separated: each value is a "
             "produce/consume layout of its own (paired with --producers)")
    add("--producers", type=_ints, default=[1],
        help="concurrent producers of the produce workload, one thread and connection each, "
             "comma-separated; paired with --partitions (one list may be a single value)")
    add("--warmup", type=int, default=20_000,
        help="100-byte records each Kafka target gets and gives back, untimed, before the first step")
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
    add("--recovery-timeout", type=float, default=120.0,
        help="seconds the recovery workload waits for a restarted server's first acknowledged write")
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
    if not (kafka or redis_targets or args.start_gateway or args.start_kafka):
        build_parser().error("no targets: give --start-gateway, --start-kafka, --kafka, --redis or --config")
    if len(args.partitions) != len(args.producers) and 1 not in (len(args.partitions), len(args.producers)):
        build_parser().error("--partitions and --producers: lists of one length, or one a single value")

    from .servers import KafkaBroker, LocalServers, kafka_available

    if args.start_kafka and not kafka_available():
        build_parser().error("--start-kafka: no broker at /opt/kafka-broker "
                             "(build it with ../shared/kafka-broker/build.sh)")
    servers: LocalServers | None = None
    broker: KafkaBroker | None = None
    extra: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="krg-bench-") as tmp:
        try:
            if args.start_kafka:
                broker = start_broker(Path(tmp) / "kafka", args, extra)
            if args.start_gateway:
                args.out.mkdir(parents=True, exist_ok=True)
                servers = LocalServers(Path(tmp), appendfsync=args.appendfsync).start()
                extra["redis server"] = f"{servers.server_version()} (appendfsync {args.appendfsync})"
                extra["gateway pid"] = str(servers.gateway_process.pid if servers.gateway_process else "")
                print(f"gateway pid {extra['gateway pid']} on {servers.bootstrap}, "
                      f"redis on {servers.redis_url}", file=sys.stderr, flush=True)
            run = execute(args, workloads, kafka, redis_targets, servers, extra, broker)
        finally:
            if broker is not None:
                broker.stop()
            if servers is not None:
                servers.stop()
    from .report import write

    for path in write(run, args.out):
        print(path)
    return 0


def start_broker(work_dir: Path, args: argparse.Namespace, extra: dict[str, str]) -> Any:
    """The --start-kafka broker, its settings written into the report's environment."""
    from .servers import KafkaBroker

    configs = [f"{key}={value}" for key, value in args.kafka_config]
    broker = KafkaBroker(work_dir, configs=configs)
    print(f"starting Kafka on {broker.bootstrap} (about 10-20 s)", file=sys.stderr, flush=True)
    broker.start()
    flush = ", ".join(configs) or ("log.flush.interval.messages/ms unset: no fsync per write, "
                                   "the OS writes the page cache back")
    extra["kafka broker"] = f"{broker.version()} (KRaft, one node; {flush})"
    extra["kafka pid"] = str(broker.process.pid if broker.process else "")
    extra["kafka bootstrap"] = broker.bootstrap
    return broker


def layouts(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(partitions, producers) pairs of the produce and consume steps."""
    count = max(len(args.partitions), len(args.producers))
    partitions = args.partitions * count if len(args.partitions) == 1 else args.partitions
    producers = args.producers * count if len(args.producers) == 1 else args.producers
    return [(max(1, p), max(1, n)) for p, n in zip(partitions, producers, strict=True)]


def execute(args: argparse.Namespace, workloads: list[str], kafka: dict[str, str],
            redis_targets: dict[str, str], servers: Any, extra: dict[str, str],
            broker: Any = None) -> dict[str, Any]:
    from .workloads import KafkaTarget, Params, RedisTarget, Target

    targets: list[Target] = []
    if servers is not None:
        targets.append(KafkaTarget("gateway", servers.bootstrap, servers.redis_url))
    if broker is not None:
        targets.append(KafkaTarget("kafka", broker.bootstrap, log_bytes=broker.log_bytes))
    if servers is not None:
        targets.append(RedisTarget("redis-py", servers.redis_url))
    targets += [KafkaTarget(name, address) for name, address in kafka.items()]
    targets += [RedisTarget(name, url) for name, url in redis_targets.items()]

    first_partitions, first_producers = layouts(args)[0]
    base = Params(partitions=first_partitions, producers=first_producers, acks=args.acks,
                  compression=args.compression,
                  batch_size=args.batch_size, linger_ms=args.linger_ms, redis_pipeline=args.redis_pipeline,
                  latency_linger_ms=args.latency_linger_ms, step_timeout=args.step_timeout,
                  extra=dict(args.producer_config))
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    Step = tuple[str, Target, int, tuple[int, int]]
    steps: list[Step] = []
    needs_data = any(w in workloads for w in ("produce", "consume", "group"))
    first = (first_partitions, first_producers)
    if args.warmup > 0 and set(workloads) - {"recovery"}:
        steps += [("warmup", target, 100, first) for target in targets if target.kind == "kafka"]
    for layout in layouts(args) if needs_data else []:
        for size in args.record_sizes:
            for target in targets:
                for workload in ("produce", "consume", "group"):
                    if workload in workloads or (workload == "produce" and needs_data):
                        steps.append((workload, target, size, layout))
    if "rebalance" in workloads:
        steps += [("rebalance", target, 0, first) for target in targets]
    if "latency" in workloads:
        for rate in args.rates:
            for target in targets:
                steps.append(("latency", target, rate, first))
    if "recovery" in workloads:
        by_name = {target.name: target for target in targets}
        steps += [("recovery", by_name[name], 0, first) for name in ("kafka", "gateway")
                  if name in by_name and (broker if name == "kafka" else servers) is not None]

    from tqdm import tqdm

    results: list[dict[str, Any]] = []
    produced: dict[tuple[str, int, tuple[int, int]], tuple[str, int]] = {}
    progress = tqdm(steps, unit="step", disable=args.no_progress, file=sys.stderr)
    for workload, target, number, (partitions, producers) in progress:
        progress.set_description(f"{workload} {target.name} {number}")
        row: dict[str, Any] = {"workload": workload, "target": target.name, "kind": target.kind}
        layout = _with(base, partitions=partitions, producers=producers)
        try:
            if workload == "warmup":
                from .workloads import unique_name

                warm = _with(base, record_size=100, count=args.warmup)
                topic = unique_name("warmup")
                target.produce(topic, warm)
                target.consume(topic, warm, args.warmup)
                continue
            if workload == "recovery":
                results += recover(target.name, servers, broker, args.recovery_timeout)
                continue
            if workload == "rebalance":
                row.update(target.rebalance(base))
            elif workload == "latency":
                params = _with(base, record_size=args.latency_size)
                row["record_size"] = args.latency_size
                row.update(target.latency(number, args.duration, params))
            else:
                count = max(1, min(args.count, args.max_bytes // number))
                params = _with(layout, record_size=number, count=count)
                row["record_size"] = number
                row["producers"], row["partitions"] = params.producers, params.partitions
                if workload == "produce":
                    from .workloads import unique_name

                    topic = unique_name(f"produce-{number}")
                    row["topic"] = topic
                    row.update(target.produce(topic, params))
                    produced[(target.name, number, (partitions, producers))] = (topic, count)
                    row.update(target.memory(topic, params, count))
                else:
                    if (target.name, number, (partitions, producers)) not in produced:
                        raise RuntimeError("nothing produced to read")
                    topic, count = produced[(target.name, number, (partitions, producers))]
                    read = target.consume if workload == "consume" else target.group_consume
                    row.update(read(topic, params, count))
                    if workload == "group":
                        row["workload"] = "group"
        except Exception as exc:  # one failed step does not lose the rest of the run
            row["error"] = f"{type(exc).__name__}: {exc}"
            if workload == "warmup":
                row["workload"] = "produce"
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


def recover(name: str, servers: Any, broker: Any, timeout: float) -> list[dict[str, Any]]:
    """The recovery workload's rows for the started server behind target ``name``.

    The gateway's turn kills the gateway and then Redis (one row each, plus
    redis-py's row from that same Redis kill); redis-py's turn adds nothing.
    """
    from . import recovery

    rows: list[dict[str, Any]] = []

    def row(target: str, measure: Any) -> None:
        entry: dict[str, Any] = {"workload": "recovery", "target": target,
                                 "kind": "redis" if target == "redis-py" else "kafka"}
        try:
            entry.update(measure())
        except Exception as exc:  # reported in the row, the run goes on
            entry["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(entry)

    if name == "kafka":
        row("kafka", lambda: recovery.kafka_broker(broker, timeout))
    elif name == "gateway":
        row("gateway", lambda: recovery.gateway_process(servers, timeout))
        try:
            both = recovery.redis_server(servers, timeout)
        except Exception as exc:  # reported in the rows, the run goes on
            failed = {"killed": "redis", "error": f"{type(exc).__name__}: {exc}"}
            both = {"gateway": dict(failed), "redis-py": dict(failed)}
        for target in ("gateway", "redis-py"):
            row(target, lambda t=target: both[t])
    return rows


def _with(params: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(params, **changes)
