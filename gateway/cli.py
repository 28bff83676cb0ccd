"""Command line: ``kafka-redis-gateway [flags]``.

Every flag has an environment variable (shown in ``--help``) so the gateway
configures the same way in a shell, a container or a unit file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import Config, HostPort, default_data_dir


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"KRG_{name}", default)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# Config is a slots dataclass: its class attributes are slot descriptors, so
# the defaults are read from an instance.
_DEFAULTS = Config()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafka-redis-gateway",
        description="A Kafka broker whose log is Redis Streams.",
    )

    def flag(name: str, env: str, help_text: str, **kwargs: object) -> None:
        default = _env(env, kwargs.pop("default", None))  # type: ignore[arg-type]
        parser.add_argument(name, default=default, help=f"{help_text} [env KRG_{env}]", **kwargs)  # type: ignore[arg-type]

    flag("--listen", "LISTEN", "address to serve Kafka clients on", default="127.0.0.1:9092")
    flag("--advertised-listener", "ADVERTISED_LISTENER",
         "HOST:PORT that Metadata tells clients to connect to (default: the listen address)")
    flag("--redis-url", "REDIS_URL",
         "redis://HOST:PORT/DB of the Redis to store in; without it an embedded server starts")
    flag("--data-dir", "DATA_DIR", "where the embedded server keeps its data",
         default=str(default_data_dir()))
    flag("--node-id", "NODE_ID", "this gateway's Kafka broker ID", default="0")
    flag("--auto-create-topics", "AUTO_CREATE_TOPICS",
         "create unknown topics on Metadata and Produce", default="true")
    flag("--default-partitions", "DEFAULT_PARTITIONS",
         "partitions of auto-created topics and of CreateTopics asking for -1", default="1")
    flag("--max-request-size", "MAX_REQUEST_SIZE", "largest request accepted, bytes",
         default=str(100 * 1024 * 1024))
    flag("--max-connections", "MAX_CONNECTIONS",
         "client connections open at once; more are closed on accept (Kafka's max.connections)",
         default=str(_DEFAULTS.max_connections))
    flag("--max-queued-requests", "MAX_QUEUED_REQUESTS",
         "requests a connection reads ahead of the one being handled before it stops reading",
         default=str(_DEFAULTS.max_queued_requests))
    flag("--connections-max-idle-ms", "CONNECTIONS_MAX_IDLE_MS",
         "close a connection with no request and nothing in flight for this long "
         "(Kafka's connections.max.idle.ms)", default=str(_DEFAULTS.connections_max_idle_ms))
    flag("--request-read-timeout-ms", "REQUEST_READ_TIMEOUT_MS",
         "close a connection whose request, once begun, is not complete within this",
         default=str(_DEFAULTS.request_read_timeout_ms))
    flag("--response-write-timeout-ms", "RESPONSE_WRITE_TIMEOUT_MS",
         "close a connection that does not take a response within this (a client not reading)",
         default=str(_DEFAULTS.response_write_timeout_ms))
    flag("--metrics-listen", "METRICS_LISTEN",
         "HOST:PORT to serve Prometheus metrics on (default: no metrics endpoint)")
    flag("--redis-timeout", "REDIS_TIMEOUT", "seconds to wait for Redis before a retriable error",
         default="5")
    flag("--acks-all-fsync", "ACKS_ALL_FSYNC",
         "acks=all waits for Redis to fsync the write to its append-only file", default="true")
    flag("--acks-all-replicas", "ACKS_ALL_REPLICAS",
         "acks=all waits for this many Redis replicas to have the write", default="0")
    flag("--group-initial-rebalance-delay-ms", "GROUP_INITIAL_REBALANCE_DELAY_MS",
         "how long a consumer group that starts empty waits for more members before its first "
         "generation (Kafka's group.initial.rebalance.delay.ms)", default="3000")
    flag("--retention-check-interval-ms", "RETENTION_CHECK_INTERVAL_MS",
         "how often topics with retention.ms or retention.bytes are trimmed "
         "(Kafka's log.retention.check.interval.ms)", default="30000")
    flag("--adopt-streams", "ADOPT_STREAMS",
         "PATTERN[,PATTERN...]: glob patterns of existing Redis stream keys that CreateTopics may "
         "adopt with redis.stream.keys (default: none; the adopt subcommand always can)",
         default="")
    flag("--warning-interval-ms", "WARNING_INTERVAL_MS",
         "log warnings that clients cause (malformed requests, timeouts, refused connections) "
         "at most once per kind per this interval, counting the rest",
         default=str(_DEFAULTS.warning_interval_ms))
    flag("--log-level", "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR", default="INFO")
    return parser


def parse_config(argv: Sequence[str] | None = None) -> Config:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return Config(
            listen=HostPort.parse(args.listen),
            advertised_listener=(
                HostPort.parse(args.advertised_listener) if args.advertised_listener else None
            ),
            redis_url=args.redis_url or None,
            data_dir=Path(args.data_dir),
            node_id=int(args.node_id),
            auto_create_topics=_bool(args.auto_create_topics),
            default_partitions=int(args.default_partitions),
            max_request_size=int(args.max_request_size),
            max_connections=_positive(args.max_connections),
            max_queued_requests=_positive(args.max_queued_requests),
            connections_max_idle_ms=_positive(args.connections_max_idle_ms),
            request_read_timeout_ms=_positive(args.request_read_timeout_ms),
            response_write_timeout_ms=_positive(args.response_write_timeout_ms),
            metrics_listen=HostPort.parse(args.metrics_listen) if args.metrics_listen else None,
            redis_timeout=float(args.redis_timeout),
            acks_all_fsync=_bool(args.acks_all_fsync),
            acks_all_replicas=int(args.acks_all_replicas),
            group_initial_rebalance_delay_ms=int(args.group_initial_rebalance_delay_ms),
            retention_check_interval_ms=int(args.retention_check_interval_ms),
            adopt_streams=tuple(p for p in args.adopt_streams.split(",") if p),
            warning_interval_ms=_positive(args.warning_interval_ms),
            log_level=args.log_level.upper(),
        )
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:  # benchmark tool, gateway/bench/ (docs/benchmarks.md)
        from .bench import main as bench_main

        return bench_main(arguments[1:])
    if arguments[:1] == ["inspect"]:  # the topic-to-stream mapping, gateway/inspect.py
        from .inspect import main as inspect_main

        return inspect_main(arguments[1:])
    if arguments[:1] == ["adopt"]:  # existing streams as a topic, gateway/adopt.py
        from .adopt import main as adopt_main

        return adopt_main(arguments[1:])
    config = parse_config(argv)
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from .data_dir import DataDirInUse
    from .server import Gateway

    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        run = asyncio.run
    else:
        run = uvloop.run
    try:
        run(Gateway(config).serve_forever())
    except DataDirInUse as exc:
        print(f"kafka-redis-gateway: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
