"""Command line: ``kafka-redis-gateway [flags]``.

Every flag has an environment variable (shown in ``--help``) so the gateway
configures the same way in a shell, a container or a unit file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from .address import HostPort
from .config import (
    LOG_LEVELS,
    MAX_WORKERS,
    RESERVED_BROKER_MAX_ID,
    Config,
    default_data_dir,
    parse_bool,
    parse_data_dir,
    parse_file,
    parse_int,
    parse_log_level,
    parse_patterns,
    parse_principals,
    parse_rack,
    parse_redis_url,
    parse_seconds,
)
from .data_dir import DataDirInUse
from .security.listeners import parse_endpoints, parse_protocol_map, resolve, tls_files
from .security.sasl import parse_mechanisms
from .security.tls import parse_client_auth, server_context
from .workers import check_workers

# Config is a slots dataclass: its class attributes are slot descriptors, so
# the defaults are read from an instance.
_DEFAULTS = Config()


@dataclass(frozen=True)
class Flag:
    """One setting: its flag, its KRG_* environment variable, how its text is read."""

    name: str
    metavar: str
    env: str
    parse: Callable[[str], object]
    # The text parsed when neither the flag nor the variable is given; None
    # leaves Config's own default (an optional setting that is off).
    default: str | None
    help: str

    @property
    def dest(self) -> str:
        """The Config field (and argparse attribute) it sets."""
        return self.name.removeprefix("--").replace("-", "_")

    @property
    def variable(self) -> str:
        return f"KRG_{self.env}"


FLAGS: tuple[Flag, ...] = (
    Flag("--listen", "HOST:PORT", "LISTEN", HostPort.parse, "127.0.0.1:9092",
         "address to serve Kafka clients on"),
    Flag("--advertised-listener", "HOST:PORT", "ADVERTISED_LISTENER", HostPort.parse, None,
         "HOST:PORT that Metadata tells clients to connect to (default: the listen address)"),
    Flag("--listeners", "NAME://HOST:PORT[,...]", "LISTENERS", parse_endpoints, None,
         "listeners as Kafka's listeners, each with its security protocol from "
         "--listener-security-protocol-map (default: one PLAINTEXT listener on --listen)"),
    Flag("--advertised-listeners", "NAME://HOST:PORT[,...]", "ADVERTISED_LISTENERS", parse_endpoints,
         None, "what Metadata tells clients of each listener to connect to "
         "(default: the listener's own address)"),
    Flag("--listener-security-protocol-map", "NAME:PROTOCOL[,...]", "LISTENER_SECURITY_PROTOCOL_MAP",
         parse_protocol_map, "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
         "the security protocol of each listener name: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    Flag("--ssl-certfile", "FILE", "SSL_CERTFILE", parse_file, None,
         "PEM certificate chain of SSL and SASL_SSL listeners; re-read when it changes"),
    Flag("--ssl-keyfile", "FILE", "SSL_KEYFILE", parse_file, None,
         "PEM private key of that certificate (unencrypted); re-read when it changes"),
    Flag("--ssl-cafile", "FILE", "SSL_CAFILE", parse_file, None,
         "PEM certificates of the CAs that client certificates are checked against"),
    Flag("--ssl-client-auth", "MODE", "SSL_CLIENT_AUTH", parse_client_auth, "none",
         "client certificates on TLS listeners: none, requested or required (Kafka's ssl.client.auth)"),
    Flag("--sasl-enabled-mechanisms", "MECHANISM[,...]", "SASL_ENABLED_MECHANISMS", parse_mechanisms,
         "SCRAM-SHA-256,SCRAM-SHA-512",
         "SASL mechanisms of SASL listeners: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN "
         "(Kafka's sasl.enabled.mechanisms; users are the SCRAM users in Redis)"),
    Flag("--authorizer", "BOOL", "AUTHORIZER", parse_bool, "false",
         "enforce Kafka ACLs (stored in Redis) on every request; off: everyone may do anything "
         "and the ACL APIs answer SECURITY_DISABLED, as Kafka without an authorizer"),
    Flag("--super-users", "PRINCIPAL[;...]", "SUPER_USERS", parse_principals, None,
         "principals allowed everything whatever the ACLs, e.g. 'User:alice;User:bob' "
         "(Kafka's super.users)"),
    Flag("--allow-everyone-if-no-acl-found", "BOOL", "ALLOW_EVERYONE_IF_NO_ACL_FOUND", parse_bool,
         "false", "let everyone act on a resource that has no ACL at all "
         "(Kafka's allow.everyone.if.no.acl.found)"),
    Flag("--acl-refresh-ms", "MS", "ACL_REFRESH_MS", parse_int(10), str(_DEFAULTS.acl_refresh_ms),
         "how often the ACL version is read from Redis: ACLs changed through another gateway "
         "apply here within this"),
    Flag("--redis-url", "URL", "REDIS_URL", parse_redis_url, None,
         "redis://[user:password@]HOST:PORT/DB of the Redis to store in (default: start an "
         "embedded server); rediss://...?ssl_ca_certs=FILE[&ssl_certfile=FILE&ssl_keyfile=FILE] "
         "for TLS"),
    Flag("--data-dir", "DIR", "DATA_DIR", parse_data_dir, str(default_data_dir()),
         "where the embedded server keeps its data"),
    Flag("--node-id", "N", "NODE_ID", parse_int(0, RESERVED_BROKER_MAX_ID), None,
         f"this gateway's Kafka broker ID, 0 to {RESERVED_BROKER_MAX_ID} (default: one assigned "
         f"from Redis, above {RESERVED_BROKER_MAX_ID}, new at every start)"),
    Flag("--rack", "RACK", "RACK", parse_rack, None,
         "this gateway's rack, reported to clients (Kafka's broker.rack; default: none)"),
    Flag("--workers", "N", "WORKERS", parse_int(1, MAX_WORKERS), "1",
         "gateway processes to run, each a broker of its own: worker i listens on every port given "
         "plus i and has --node-id plus i; one per core uses the whole host (docs/operations.md)"),
    Flag("--broker-lease-ms", "MS", "BROKER_LEASE_MS", parse_int(300), str(_DEFAULTS.broker_lease_ms),
         "a gateway that stops renewing its registration leaves the cluster after this "
         "(Kafka's broker.session.timeout.ms)"),
    Flag("--auto-create-topics", "BOOL", "AUTO_CREATE_TOPICS", parse_bool, "true",
         "create unknown topics on Metadata and Produce"),
    Flag("--default-partitions", "N", "DEFAULT_PARTITIONS", parse_int(1), "1",
         "partitions of auto-created topics and of CreateTopics asking for -1"),
    Flag("--max-request-size", "BYTES", "MAX_REQUEST_SIZE", parse_int(1), str(_DEFAULTS.max_request_size),
         "largest request accepted, bytes (Kafka's socket.request.max.bytes)"),
    Flag("--max-buffered-request-bytes", "BYTES", "MAX_BUFFERED_REQUEST_BYTES", parse_int(1, 2**62),
         str(_DEFAULTS.max_buffered_request_bytes),
         "request bytes all connections may hold at once (frames being read, queued or handled); "
         "a frame that does not fit waits and its connection stops reading; at least "
         "--max-request-size (Kafka's queued.max.request.bytes)"),
    Flag("--max-connections", "N", "MAX_CONNECTIONS", parse_int(1), str(_DEFAULTS.max_connections),
         "client connections open at once; more are closed on accept (Kafka's max.connections)"),
    Flag("--max-queued-requests", "N", "MAX_QUEUED_REQUESTS", parse_int(1),
         str(_DEFAULTS.max_queued_requests),
         "requests a connection reads ahead of the one being handled before it stops reading"),
    Flag("--max-records-per-request", "N", "MAX_RECORDS_PER_REQUEST", parse_int(1),
         str(_DEFAULTS.max_records_per_request),
         "records one Produce request may hold, all partitions together; the partitions beyond get "
         "RECORD_LIST_TOO_LARGE"),
    Flag("--connections-max-idle-ms", "MS", "CONNECTIONS_MAX_IDLE_MS", parse_int(1),
         str(_DEFAULTS.connections_max_idle_ms),
         "close a connection with no request and nothing in flight for this long "
         "(Kafka's connections.max.idle.ms)"),
    Flag("--connections-max-reauth-ms", "MS", "CONNECTIONS_MAX_REAUTH_MS", parse_int(0),
         str(_DEFAULTS.connections_max_reauth_ms),
         "how long a SASL login lasts before the client must re-authenticate on its connection "
         "(Kafka's connections.max.reauth.ms, KIP-368; 0: no limit)"),
    Flag("--request-read-timeout-ms", "MS", "REQUEST_READ_TIMEOUT_MS", parse_int(1),
         str(_DEFAULTS.request_read_timeout_ms),
         "close a connection whose request, once begun, is not complete within this"),
    Flag("--response-write-timeout-ms", "MS", "RESPONSE_WRITE_TIMEOUT_MS", parse_int(1),
         str(_DEFAULTS.response_write_timeout_ms),
         "close a connection that does not take a response within this (a client not reading)"),
    Flag("--metrics-listen", "HOST:PORT", "METRICS_LISTEN", HostPort.parse, None,
         "HOST:PORT to serve Prometheus metrics on (default: no metrics endpoint)"),
    Flag("--redis-timeout", "SECONDS", "REDIS_TIMEOUT", parse_seconds, "5",
         "seconds to wait for Redis before a retriable error"),
    Flag("--acks-all-fsync", "BOOL", "ACKS_ALL_FSYNC", parse_bool, "true",
         "acks=all waits for Redis to fsync the write to its append-only file"),
    Flag("--acks-all-replicas", "N", "ACKS_ALL_REPLICAS", parse_int(0), "0",
         "acks=all waits for this many Redis replicas to have the write"),
    Flag("--group-initial-rebalance-delay-ms", "MS", "GROUP_INITIAL_REBALANCE_DELAY_MS", parse_int(0),
         str(_DEFAULTS.group_initial_rebalance_delay_ms),
         "how long a consumer group that starts empty waits for more members before its first "
         "generation (Kafka's group.initial.rebalance.delay.ms)"),
    Flag("--group-share-record-lock-duration-ms", "MS", "GROUP_SHARE_RECORD_LOCK_DURATION_MS",
         parse_int(1000, 3_600_000), str(_DEFAULTS.group_share_record_lock_duration_ms),
         "how long a share-group member holds a record it acquired before others may have it "
         "(Kafka's group.share.record.lock.duration.ms; a group config overrides it)"),
    Flag("--group-share-delivery-count-limit", "N", "GROUP_SHARE_DELIVERY_COUNT_LIMIT", parse_int(2, 10),
         str(_DEFAULTS.group_share_delivery_count_limit),
         "deliveries of a record to a share group before it is archived "
         "(Kafka's group.share.delivery.count.limit; a group config overrides it)"),
    Flag("--retention-check-interval-ms", "MS", "RETENTION_CHECK_INTERVAL_MS", parse_int(1),
         str(_DEFAULTS.retention_check_interval_ms),
         "how often topics with retention.ms or retention.bytes are trimmed "
         "(Kafka's log.retention.check.interval.ms) and compacted topics compacted"),
    Flag("--producer-id-expiration-ms", "MS", "PRODUCER_ID_EXPIRATION_MS", parse_int(1),
         str(_DEFAULTS.producer_id_expiration_ms),
         "forget an idempotent producer's state on a partition once its newest batch there is "
         "this old (Kafka's producer.id.expiration.ms; no topic-level override, as in Kafka)"),
    Flag("--producer-id-expiration-check-interval-ms", "MS", "PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS",
         parse_int(1), str(_DEFAULTS.producer_id_expiration_check_interval_ms),
         "how often idle producers' state is swept (Kafka's producer.id.expiration.check.interval.ms)"),
    Flag("--transaction-abort-timed-out-interval-ms", "MS", "TRANSACTION_ABORT_TIMED_OUT_INTERVAL_MS",
         parse_int(1), str(_DEFAULTS.transaction_abort_timed_out_interval_ms),
         "how often transactions past their transaction.timeout.ms are aborted (Kafka's "
         "transaction.abort.timed.out.transaction.cleanup.interval.ms)"),
    Flag("--transactional-id-expiration-ms", "MS", "TRANSACTIONAL_ID_EXPIRATION_MS", parse_int(1),
         str(_DEFAULTS.transactional_id_expiration_ms),
         "forget a transactional ID unused this long with no transaction under way (Kafka's "
         "transactional.id.expiration.ms)"),
    Flag("--adopt-streams", "PATTERN[,PATTERN...]", "ADOPT_STREAMS", parse_patterns, "",
         "glob patterns of existing Redis stream keys that CreateTopics may "
         "adopt with redis.stream.keys (default: none; the adopt subcommand always can)"),
    Flag("--warning-interval-ms", "MS", "WARNING_INTERVAL_MS", parse_int(1),
         str(_DEFAULTS.warning_interval_ms),
         "log warnings that clients cause (malformed requests, timeouts, refused connections) "
         "at most once per kind per this interval, counting the rest"),
    Flag("--log-level", "LEVEL", "LOG_LEVEL", parse_log_level, "INFO", ", ".join(LOG_LEVELS)),
)

SUBCOMMANDS = """\
subcommands (each with its own --help):
  kafka-redis-gateway inspect [TOPIC]         how topics map onto Redis streams, groups, lag
  kafka-redis-gateway adopt TOPIC STREAM...   existing Redis streams as a topic
  kafka-redis-gateway bench                   benchmark the gateway, Kafka and redis-py
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, naming the flag or variable; argparse's usage block
        # would bury it.
        self.exit(2, f"{self.prog}: error: {message} (--help lists the flags)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kafka-redis-gateway",
        description="A Kafka broker whose log is Redis Streams. Every flag can also be set "
                    "through its environment variable; a flag given wins.",
        epilog=SUBCOMMANDS, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag in FLAGS:
        default = f"; default {flag.default}" if flag.default else ""
        parser.add_argument(flag.name, metavar=flag.metavar, default=None,
                            help=f"{flag.help} [env {flag.variable}{default}]")
    return parser


def parse_config(argv: Sequence[str] | None = None) -> Config:
    """The flags, else their environment variables, else the defaults, as a Config.

    A bad value ends the process with status 2 and one line naming the flag
    or variable it came from.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    explicit: set[str] = set()
    for flag in FLAGS:
        source, text = _setting(flag, getattr(args, flag.dest))
        if text is None or (text == "" and flag.default is None):
            continue  # an optional setting left off
        if getattr(args, flag.dest) is not None or flag.variable in os.environ:
            explicit.add(flag.name)
        try:
            values[flag.dest] = flag.parse(text)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
    if {"--listen", "--listeners"} <= explicit:
        parser.error("--listen and --listeners both given: --listen is the one-PLAINTEXT-listener "
                     "form of --listeners; give one of them")
    config = Config(**values)
    if config.max_buffered_request_bytes < config.max_request_size:
        # As Kafka requires: else a frame of the largest size could never be read.
        parser.error(f"--max-buffered-request-bytes ({config.max_buffered_request_bytes}) must be "
                     f"at least --max-request-size ({config.max_request_size})")
    try:
        resolve(config)
        check_workers(config)
    except ValueError as exc:
        parser.error(str(exc))
    _check_redis_tls(parser, config)
    files = tls_files(config)
    if files is not None:
        try:
            server_context(files)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"the TLS files (--ssl-certfile, --ssl-keyfile, --ssl-cafile) do not load: {exc}")
    return config


def _check_redis_tls(parser: argparse.ArgumentParser, config: Config) -> None:
    """The Redis URL's TLS files load (a missing CA file is said now, not at the first connection)."""
    from .storage.redis_tls import client_context

    if config.redis_url is None:
        return
    try:
        client_context(config.redis_url)
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"--redis-url: the TLS files (ssl_ca_certs, ssl_certfile, ssl_keyfile) do not "
                     f"load: {exc}")


def _setting(flag: Flag, given: str | None) -> tuple[str, str | None]:
    """Where the setting's text comes from, and the text."""
    if given is not None:
        return f"argument {flag.name}", given
    if flag.variable in os.environ:
        return f"environment variable {flag.variable}", os.environ[flag.variable]
    return f"the default of {flag.name}", flag.default


def _on_redis(name: str, tool: Callable[[Sequence[str]], int], arguments: Sequence[str]) -> int:
    """Run a subcommand that works on Redis directly; Redis out of reach is one line, status 1."""
    from .storage import StorageUnavailable

    try:
        return tool(arguments)
    except StorageUnavailable as exc:
        print(f"kafka-redis-gateway {name}: error: cannot reach Redis: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:  # benchmark tool, gateway/bench/ (docs/benchmarks.md)
        from .bench import main as bench_main

        return bench_main(arguments[1:])
    if arguments[:1] == ["inspect"]:  # the topic-to-stream mapping, gateway/inspect.py
        from .inspect import main as inspect_main

        return _on_redis("inspect", inspect_main, arguments[1:])
    if arguments[:1] == ["adopt"]:  # existing streams as a topic, gateway/adopt.py
        from .adopt import main as adopt_main

        return _on_redis("adopt", adopt_main, arguments[1:])
    config = parse_config(argv)
    if config.workers > 1:
        _configure_logging(config, "supervisor ")
        from .workers import supervise

        try:
            return asyncio.run(supervise(config))
        except DataDirInUse as exc:
            print(f"kafka-redis-gateway: error: {exc}", file=sys.stderr)
            return 1
    return serve(config)


def _configure_logging(config: Config, prefix: str = "") -> None:
    # The prefix tells apart the lines of --workers' processes, which share stderr.
    logging.basicConfig(
        level=config.log_level,
        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
        stream=sys.stderr,
    )


def serve(config: Config, log_prefix: str = "") -> int:
    """Run one gateway until it is stopped; the exit status."""
    _configure_logging(config, log_prefix)
    from .server import Gateway
    from .storage.redis_tls import RedisTlsFailed

    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        run = asyncio.run
    else:
        run = uvloop.run
    try:
        run(Gateway(config).serve_forever())
    except (DataDirInUse, RedisTlsFailed) as exc:
        print(f"kafka-redis-gateway: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
