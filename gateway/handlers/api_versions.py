"""ApiVersions (key 18), v0-v4.

The advertised ranges come from the router, so they always match what is
served. A request newer than v4 gets a v0 response with UNSUPPORTED_VERSION
and ApiVersions' own range (KIP-511), from which the client retries.
v3+ requests carry the client's software name and version; malformed ones
get INVALID_REQUEST as in Kafka. No features are advertised.
"""

from __future__ import annotations

import re
from typing import Any

from kio.schema.api_versions.v0.response import ApiVersion as ApiVersionV0
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.errors import ErrorCode
from kio.static.primitive import i16

from ..context import RequestContext
from ..dispatch import Access, Route
from ._build import NO_THROTTLE, make, response_types

API_KEY = 18
MIN_VERSION, MAX_VERSION = 0, 4

# Kafka's rule for client_software_name and client_software_version.
_SOFTWARE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


async def handle(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    code = ErrorCode.none
    if context.api_version >= 3 and not (
        _SOFTWARE.fullmatch(request.client_software_name)
        and _SOFTWARE.fullmatch(request.client_software_version)
    ):
        code = ErrorCode.invalid_request
    keys = tuple(
        make(types.ApiVersion, api_key=route.api_key, min_version=route.advertised_min,
             max_version=route.max_version)
        for route in context.router
    )
    return make(
        types.ApiVersionsResponse,
        error_code=code,
        api_keys=keys,
        throttle_time=NO_THROTTLE,
        supported_features=(),
        finalized_features_epoch=-1,
        finalized_features=(),
        zk_migration_ready=False,
    )


def unsupported_version(route: Route) -> Any:
    return ApiVersionsResponseV0(
        error_code=ErrorCode.unsupported_version,
        api_keys=(ApiVersionV0(api_key=i16(API_KEY), min_version=i16(route.advertised_min),
                               max_version=i16(route.max_version)),),
    )


ROUTES = (Route(API_KEY, MIN_VERSION, MAX_VERSION, handle, Access.PUBLIC),)
