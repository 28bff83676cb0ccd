"""The gateway's Prometheus metrics, all defined here (docs/design.md#metrics).

The metrics are module-level objects in prometheus-client's default
registry, so any layer may import this module without importing the server
(storage times its Redis calls here). Several gateways in one process (the
bench tool can start one) share them and add up; nothing is registered
twice. Updates are per request or per Redis call, never per record.

``--metrics-listen HOST:PORT`` serves them with prometheus-client's own
HTTP server, on a daemon thread of its own, so a scrape never waits for the
event loop; what it reads from the loop's objects (the consumer groups) is
a snapshot taken in one step.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Requests take from well under a millisecond (ApiVersions) to the seconds a
# long-polling Fetch or a parked JoinGroup waits.
_REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, 30.0)
_REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0, 5.0)

REQUESTS = Counter("krg_requests", "Kafka requests handled, by API", ["api"])
REQUEST_ERRORS = Counter(
    "krg_request_errors",
    "Requests that closed their connection (handler failure, malformed or unsupported) "
    "or were answered with a non-zero top-level error code, by API",
    ["api"],
)
REQUEST_LATENCY = Histogram(
    "krg_request_duration_seconds",
    "Time from a request's decoding to its response being handed to the socket, by API",
    ["api"], buckets=_REQUEST_BUCKETS,
)
BYTES_IN = Counter("krg_received_bytes", "Request bytes read from clients, size prefixes included")
BYTES_OUT = Counter("krg_sent_bytes", "Response bytes written to clients, size prefixes included")
OPEN_CONNECTIONS = Gauge("krg_open_connections", "Client connections open now")
BUFFERED_REQUEST_BYTES = Gauge(
    "krg_buffered_request_bytes",
    "Request bytes reserved by all connections: frames being read, queued or being handled")
IN_FLIGHT = Gauge("krg_in_flight_requests",
                  "Requests read from clients and not yet answered (queued or being handled)")
CONNECTIONS_REFUSED = Counter(
    "krg_connections_refused", "Connections closed on accept because --max-connections were open")
CONNECTIONS_TIMED_OUT = Counter(
    "krg_connections_timed_out",
    "Connections closed by a timeout: idle, request_read (half a frame) or response_write "
    "(a client not reading)",
    ["reason"],
)
REDIS_LATENCY = Histogram(
    "krg_redis_duration_seconds",
    "Round trip of one Redis operation (a command, pipeline or script round), long polls excluded",
    buckets=_REDIS_BUCKETS,
)
BACKGROUND_SWEEPS = Counter(
    "krg_background_sweeps",
    "Sweeps run by this gateway: retention, compaction, producer_expiry (of every partition, only on "
    "the cluster's controller), transaction_timeouts (of the transactional IDs it coordinates, on each)",
    ["task"],
)
REDIS_RECONNECTS = Counter(
    "krg_redis_reconnects",
    "Redis operations that found Redis unreachable; the idle pooled connections are dropped and "
    "the next operations connect afresh",
)



@dataclass(frozen=True, slots=True)
class ApiMetrics:
    """One API's children of the per-API metrics, looked up once, not per request."""

    requests: Counter
    errors: Counter
    latency: Histogram


@cache
def api(name: str) -> ApiMetrics:
    return ApiMetrics(REQUESTS.labels(name), REQUEST_ERRORS.labels(name), REQUEST_LATENCY.labels(name))


for _reason in ("idle", "request_read", "response_write"):
    CONNECTIONS_TIMED_OUT.labels(_reason)  # exported as 0 before the first one

GroupStates = Callable[[], Iterable[str]]


class _GroupCollector(Collector):
    """Consumer groups by state, read from each running coordinator at scrape time."""

    def __init__(self) -> None:
        self._sources: list[GroupStates] = []
        self._lock = threading.Lock()

    def add(self, source: GroupStates) -> None:
        with self._lock:
            self._sources.append(source)

    def remove(self, source: GroupStates) -> None:
        with self._lock:
            if source in self._sources:
                self._sources.remove(source)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            sources = list(self._sources)
        states: Tally[str] = Tally()
        for source in sources:
            states.update(source())
        family = GaugeMetricFamily("krg_consumer_groups",
                                   "Consumer groups the coordinator holds, by state", labels=["state"])
        for state, count in sorted(states.items()):
            family.add_metric([state], count)
        yield family


GROUPS = _GroupCollector()
REGISTRY.register(GROUPS)


class MetricsServer:
    """The HTTP endpoint Prometheus scrapes (``/metrics``, or any path)."""

    def __init__(self, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host)
        log.info("serving Prometheus metrics on http://%s:%d/metrics", host, self.port)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def stop(self) -> None:
        """Stop serving; blocks until the server thread's loop has ended (up to half a second)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
