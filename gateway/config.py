"""Gateway settings: one dataclass, filled from flags or environment.

The parse_* functions turn one flag's or environment variable's text into
its value, raising ValueError with a message that says what was expected
(the command line adds which flag or variable it was).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from .address import HostPort as HostPort
from .security.listeners import DEFAULT_PROTOCOL_MAP, Endpoint, SecurityProtocol
from .security.tls import ClientAuth


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kafka-redis-gateway"


@dataclass(frozen=True, slots=True)
class Config:
    listen: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 9092))
    # What Metadata tells clients to connect to; the listen address by default.
    advertised_listener: HostPort | None = None
    # Kafka's listeners, advertised.listeners and listener.security.protocol.map
    # (docs/security.md); no listeners: one PLAINTEXT listener on `listen`.
    listeners: tuple[Endpoint, ...] = ()
    advertised_listeners: tuple[Endpoint, ...] = ()
    listener_security_protocol_map: tuple[tuple[str, SecurityProtocol], ...] = DEFAULT_PROTOCOL_MAP
    # TLS of SSL and SASL_SSL listeners: PEM files, re-read when they change.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    # CAs that client certificates are checked against (ssl.client.auth).
    ssl_cafile: Path | None = None
    ssl_client_auth: ClientAuth = ClientAuth.NONE
    # Kafka's sasl.enabled.mechanisms, for SASL_PLAINTEXT and SASL_SSL listeners.
    sasl_enabled_mechanisms: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512")
    # Kafka ACLs (docs/security.md): off, every principal may do anything
    # (Kafka without an authorizer); on, Kafka's StandardAuthorizer rules.
    authorizer: bool = False
    # Kafka's super.users: principals ("User:alice") allowed everything.
    super_users: tuple[str, ...] = ()
    # Kafka's allow.everyone.if.no.acl.found: a resource with no ACL at all.
    allow_everyone_if_no_acl_found: bool = False
    # How often a gateway reads the ACL version from Redis: the bound on
    # how long an ACL changed through another gateway takes to apply here.
    acl_refresh_ms: int = 1000
    # None starts an embedded Redis-compatible server under data_dir.
    redis_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    # None: assigned from Redis at start (above Kafka's reserved.broker.max.id).
    node_id: int | None = None
    # Kafka's broker.rack, reported in Metadata and DescribeCluster.
    rack: str | None = None
    # Gateway processes --workers starts on this host, each a broker of its
    # own (gateway/workers.py); 1 runs the gateway in this process.
    workers: int = 1
    # How long a gateway stays in the cluster without renewing its lease
    # (Kafka's broker.session.timeout.ms); renewed several times per lease.
    broker_lease_ms: int = 9000
    auto_create_topics: bool = True
    default_partitions: int = 1
    # Kafka's socket.request.max.bytes.
    max_request_size: int = 100 * 1024 * 1024
    # Request bytes all connections may hold at once (Kafka's
    # queued.max.request.bytes, unbounded there by default): a frame that
    # does not fit waits, and its connection stops reading. At least
    # max_request_size.
    max_buffered_request_bytes: int = 256 * 1024 * 1024
    # Kafka's max.connections (unbounded there): connections beyond it are
    # closed on accept. Finite so that one gateway's memory is bounded
    # (about 20 KiB per idle connection, and up to 2 x 64 KiB of unread
    # input each while it waits); the open-file limit is raised to fit.
    max_connections: int = 4096
    # Requests a connection reads ahead of the one being handled; a full
    # queue stops reading the socket (TCP backpressure). The Java producer's
    # max.in.flight.requests.per.connection, so its pipeline is read whole.
    max_queued_requests: int = 5
    # Records one Produce request may hold, all partitions together: each
    # is appended in Redis calls of at most 5,000 records (storage/steps.py,
    # about 7 s per million minimal records), and the producer waits for all
    # of them. The decompression budget alone would allow about 8 million.
    max_records_per_request: int = 1_000_000
    # Kafka's connections.max.idle.ms: no request and nothing in flight.
    connections_max_idle_ms: int = 600_000
    # Kafka's connections.max.reauth.ms: how long a SASL login lasts before the
    # client must re-authenticate (KIP-368); 0: for as long as the connection.
    connections_max_reauth_ms: int = 0
    # A frame begun must be complete within this (half a frame, then silence).
    request_read_timeout_ms: int = 30_000
    # A response must be taken by the client within this (a client that
    # stopped reading).
    response_write_timeout_ms: int = 30_000
    # HOST:PORT of the Prometheus endpoint; None serves none.
    metrics_listen: HostPort | None = None
    redis_timeout: float = 5.0
    # What acks=all waits for: the local append-only file's fsync, and this
    # many replicas (Kafka's min.insync.replicas minus the leader).
    acks_all_fsync: bool = True
    acks_all_replicas: int = 0
    # Kafka's group.initial.rebalance.delay.ms: how long a group that starts
    # empty waits for more members before its first generation.
    group_initial_rebalance_delay_ms: int = 3000
    # Share groups (KIP-932): Kafka's group.share.record.lock.duration.ms and
    # group.share.delivery.count.limit, the defaults of the group configs.
    group_share_record_lock_duration_ms: int = 30_000
    group_share_delivery_count_limit: int = 5
    # Kafka's log.retention.check.interval.ms: how often topics with
    # retention.ms / retention.bytes set are trimmed.
    retention_check_interval_ms: int = 30_000
    # Kafka's producer.id.expiration.ms: an idempotent producer's state on a
    # partition is forgotten once its newest batch there is this old, and
    # producer.id.expiration.check.interval.ms: how often partitions are swept.
    producer_id_expiration_ms: int = 86_400_000
    producer_id_expiration_check_interval_ms: int = 600_000
    # Kafka's transaction.abort.timed.out.transaction.cleanup.interval.ms:
    # how often transactions past their timeout are looked for and aborted.
    transaction_abort_timed_out_interval_ms: int = 10_000
    # Kafka's transactional.id.expiration.ms: an ID unused this long, with no
    # transaction under way, is forgotten (checked at the same interval).
    transactional_id_expiration_ms: int = 604_800_000
    # Glob patterns of Redis keys that CreateTopics may adopt as partitions
    # (redis.stream.keys). Empty: adoption through the Kafka API is off,
    # since it hands any client every matching stream in the database.
    adopt_streams: tuple[str, ...] = ()
    shutdown_grace: float = 10.0
    # Warnings clients cause (malformed requests, timeouts, refusals) are
    # logged at most once per kind per interval, with a count of the rest.
    warning_interval_ms: int = 10_000
    log_level: str = "INFO"


INT32_MAX = 2_147_483_647
# --workers: far above any host's cores, low enough that a typo is caught.
MAX_WORKERS = 256
# Kafka's reserved.broker.max.id: --node-id goes up to it, and node IDs
# assigned from Redis start above it, so the two never collide.
RESERVED_BROKER_MAX_ID = 1000


def parse_int(minimum: int, maximum: int = INT32_MAX) -> Callable[[str], int]:
    """A parser of whole numbers in [minimum, maximum] (Kafka's settings are int32)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if not minimum <= value <= maximum:
            raise ValueError(f"expected a whole number from {minimum} to {maximum}, got {text!r}")
        return value
    return parse


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"expected a number of seconds above 0, got {text!r}")
    return value


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.upper()


# TLS to Redis (rediss:// only), as query parameters of --redis-url under
# redis-py's names, so every client the gateway opens reads one URL
# (storage/redis_tls.py, docs/security.md#tls-to-redis).
REDIS_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
REDIS_TLS_PARAMETERS = (*REDIS_TLS_FILES, "ssl_check_hostname")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
REDIS_URL_FORM = ("redis[s]://[user:password@]HOST:PORT/DB[?ssl_ca_certs=FILE&ssl_certfile=FILE"
                  "&ssl_keyfile=FILE&ssl_check_hostname=false]")


def parse_redis_url(text: str) -> str:
    """A URL redis-py can connect with: redis[s]://[user:password@]HOST[:PORT][/DB][?TLS] or unix://PATH."""
    if not _valid_redis_url(text):
        # The text is not echoed when it may hold a password.
        shown = "" if "@" in text else f", got {text!r}"
        raise ValueError(f"expected {REDIS_URL_FORM}{shown}")
    problem = _redis_tls_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def redis_tls_parameters(url: str) -> dict[str, str]:
    """The TLS query parameters of a Redis URL (the last of a repeated one)."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def redis_check_hostname(parameters: dict[str, str]) -> bool:
    return _BOOLEANS[parameters.get("ssl_check_hostname", "true").lower()]


def _redis_tls_problem(text: str) -> str | None:
    parameters = redis_tls_parameters(text)
    unknown = sorted(set(parameters) - set(REDIS_TLS_PARAMETERS))
    if unknown:
        return f"unknown query parameter {unknown[0]!r}; a Redis URL takes {', '.join(REDIS_TLS_PARAMETERS)}"
    if parameters and urlsplit(text).scheme != "rediss":
        return f"{', '.join(sorted(parameters))}: TLS settings need a rediss:// URL"
    empty = [name for name in REDIS_TLS_FILES if name in parameters and not parameters[name]]
    if empty:
        return f"{empty[0]}: expected a file, got an empty value"
    if "ssl_keyfile" in parameters and "ssl_certfile" not in parameters:
        return "ssl_keyfile without ssl_certfile: a client key needs its certificate"
    if parameters.get("ssl_check_hostname", "true").lower() not in _BOOLEANS:
        return f"ssl_check_hostname: expected true or false, got {parameters['ssl_check_hostname']!r}"
    return None


def _valid_redis_url(text: str) -> bool:
    try:
        url = urlsplit(text)
        port = url.port  # raises ValueError when not a number from 0 to 65535
    except ValueError:
        return False
    if url.scheme == "unix":
        return bool(url.path)
    if url.scheme not in ("redis", "rediss") or not url.hostname or port == 0:
        return False
    database = url.path.strip("/")
    return database == "" or database.isdigit()


def parse_rack(text: str) -> str:
    if not text:
        raise ValueError("expected a rack name, got an empty value")
    return text


def parse_data_dir(text: str) -> Path:
    if not text:
        raise ValueError("expected a directory, got an empty value")
    return Path(text).expanduser()


def parse_file(text: str) -> Path:
    if not text:
        raise ValueError("expected a file, got an empty value")
    return Path(text).expanduser()


def parse_principals(text: str) -> tuple[str, ...]:
    """Kafka's super.users: TYPE:NAME[;TYPE:NAME...] ("User:alice;User:bob")."""
    principals = tuple(item.strip() for item in text.split(";") if item.strip())
    bad = [item for item in principals if ":" not in item]
    if bad:
        raise ValueError(f"expected principals as User:NAME separated by ';', got {text!r}")
    return principals


def parse_patterns(text: str) -> tuple[str, ...]:
    """PATTERN[,PATTERN...]; empty items are dropped."""
    return tuple(pattern for pattern in text.split(",") if pattern)
