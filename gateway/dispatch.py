"""The one table from API key to handler.

Each handler module exports ``ROUTES``; :class:`Router` joins them, refuses a
key registered twice or a version kio has no schema for, and is the source
ApiVersions answers from, so what is advertised is exactly what is routed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
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


class Access(Enum):
    """How a route is authorized; every route must say (there is no default).

    Kafka authorizes inside each API's handler (KafkaApis), because what is
    refused is per resource (a topic, a group) and how it is said differs
    per API. So do we: an AUTHORIZED handler asks ``context.authorize*``
    for every resource it acts on before acting, and answers Kafka's
    *_AUTHORIZATION_FAILED codes. PUBLIC is for what Kafka never
    authorizes: version discovery and the SASL exchange itself.
    """

    PUBLIC = "not authorized (ApiVersions, SASL)"
    AUTHORIZED = "the handler authorizes each resource through RequestContext.authorize*"


@dataclass(frozen=True, slots=True)
class Route:
    api_key: int
    min_version: int
    max_version: int
    handler: Handler
    access: Access
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


# ApiVersions, SaslHandshake, SaslAuthenticate: all a client may need before
# it has a principal to authorize.
PUBLIC_API_KEYS = frozenset({18, 17, 36})


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes: dict[int, Route] = {}
        for route in routes:
            if route.access is Access.PUBLIC and route.api_key not in PUBLIC_API_KEYS:
                raise ValueError(f"API key {route.api_key} must be authorized")
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
