"""The one table from API key to handler.

Each handler module exports ``ROUTES``; :class:`Router` joins them, refuses a
key registered twice or a version kio has no schema for, and is the source
ApiVersions answers from, so what is advertised is exactly what is routed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafka_redis_gateway.protocol.messages import request_schema, response_schema

if TYPE_CHECKING:
    from .context import RequestContext

# A handler returns the response entity, or None when Kafka sends no response
# (Produce with acks=0).
Handler = Callable[["RequestContext", Any], Awaitable[Any | None]]


class CloseConnection(Exception):
    """The request cannot be answered; Kafka closes the connection.

    A handler raises it where Kafka closes the connection on purpose (a
    failed Produce with acks=0, whose client expects no response and learns
    of the failure only from the closed connection).
    """


@dataclass(frozen=True, slots=True)
class Route:
    api_key: int
    min_version: int
    max_version: int
    handler: Handler
    # Advertised minimum when it differs from the served one. Kafka 4.0 still
    # advertises Produce v0 though it refuses v0-v2 (KAFKA-18659), because
    # librdkafka before 2.11.1 reads "Produce v0 supported" as "compression
    # supported" and would otherwise send every batch uncompressed.
    advertised_min_version: int | None = None

    def supports(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version

    @property
    def advertised_min(self) -> int:
        if self.advertised_min_version is None:
            return self.min_version
        return self.advertised_min_version


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes: dict[int, Route] = {}
        for route in routes:
            if route.api_key in self._routes:
                raise ValueError(f"API key {route.api_key} registered twice")
            for version in range(route.min_version, route.max_version + 1):
                if request_schema(route.api_key, version) is None:
                    raise ValueError(f"no schema for API key {route.api_key} v{version}")
                response_schema(route.api_key, version)
            self._routes[route.api_key] = route

    def get(self, api_key: int) -> Route | None:
        return self._routes.get(api_key)

    def __iter__(self) -> Any:
        return iter(sorted(self._routes.values(), key=lambda route: route.api_key))
