"""Gateway settings: one dataclass, filled from flags or environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kafka-redis-gateway"


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPort:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host.strip("[]") or "0.0.0.0", int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Config:
    listen: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 9092))
    # What Metadata tells clients to connect to; the listen address by default.
    advertised_listener: HostPort | None = None
    # None starts an embedded Redis-compatible server under data_dir.
    redis_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    node_id: int = 0
    auto_create_topics: bool = True
    default_partitions: int = 1
    # Kafka's socket.request.max.bytes.
    max_request_size: int = 100 * 1024 * 1024
    # Kafka's max.connections: connections beyond it are closed on accept.
    max_connections: int = 2_147_483_647
    # Requests a connection reads ahead of the one being handled; a full
    # queue stops reading the socket (TCP backpressure). The Java producer's
    # max.in.flight.requests.per.connection, so its pipeline is read whole.
    max_queued_requests: int = 5
    # Kafka's connections.max.idle.ms: no request and nothing in flight.
    connections_max_idle_ms: int = 600_000
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
    # Kafka's log.retention.check.interval.ms: how often topics with
    # retention.ms / retention.bytes set are trimmed.
    retention_check_interval_ms: int = 30_000
    # Glob patterns of Redis keys that CreateTopics may adopt as partitions
    # (redis.stream.keys). Empty: adoption through the Kafka API is off,
    # since it hands any client every matching stream in the database.
    adopt_streams: tuple[str, ...] = ()
    shutdown_grace: float = 10.0
    # Warnings clients cause (malformed requests, timeouts, refusals) are
    # logged at most once per kind per interval, with a count of the rest.
    warning_interval_ms: int = 10_000
    log_level: str = "INFO"

    @property
    def advertised(self) -> HostPort:
        if self.advertised_listener is not None:
            return self.advertised_listener
        if self.listen.host in ("0.0.0.0", "::", ""):
            return HostPort("127.0.0.1", self.listen.port)
        return self.listen
