"""DescribeClientQuotas (key 48), v0-v1: no quota is configured, so none is described.

The gateway enforces no client quotas (every response's throttle time is
zero), so the truthful answer to any valid filter is no entries at all,
which is what Kafka answers when no quota is configured. The filter is
still checked as Kafka's ClientQuotasImage.describe checks it, with its
codes: an empty or repeated entity type, a match string where the match
type wants none (or none where it wants one), an unknown match type, or
``ip`` with ``user``/``client-id`` is INVALID_REQUEST; an entity type
other than user, client-id and ip is UNSUPPORTED_VERSION. Both answer
null entries, as Kafka's error response does (each filter's answer is
compared with a Kafka 4 broker's in test_differential). Describing needs
DESCRIBE_CONFIGS on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

AlterClientQuotas (key 49) is not served and not advertised: accepting a
quota the gateway does not enforce would be a lie.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import Operation
from ._build import NO_THROTTLE, make, response_types

USER, CLIENT_ID, IP = "user", "client-id", "ip"
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2


class FilterRefused(Exception):
    """A filter Kafka refuses: the error code and Kafka's message for it."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _check_component(component: Any, seen: set[str]) -> None:
    entity_type = component.entity_type
    if not entity_type:
        raise FilterRefused(ErrorCode.invalid_request, "Invalid empty entity type.")
    if entity_type in seen:
        raise FilterRefused(ErrorCode.invalid_request,
                            f"Entity type {entity_type} cannot appear more than once in the filter.")
    if entity_type not in (USER, CLIENT_ID, IP):
        raise FilterRefused(ErrorCode.unsupported_version, f"Unsupported entity type {entity_type}")
    if component.match_type == MATCH_EXACT:
        if component.match is None:
            raise FilterRefused(ErrorCode.invalid_request,
                                "Request specified MATCH_TYPE_EXACT, but set match string to null.")
    elif component.match_type == MATCH_DEFAULT:
        if component.match is not None:
            raise FilterRefused(ErrorCode.invalid_request,
                                "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
    elif component.match_type == MATCH_SPECIFIED:
        if component.match is not None:
            raise FilterRefused(ErrorCode.invalid_request,
                                "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")
    else:
        raise FilterRefused(ErrorCode.invalid_request, f"Unknown match type {component.match_type}")
    seen.add(entity_type)


def check_filter(components: Any) -> None:
    """Raise FilterRefused where Kafka's ClientQuotasImage.describe refuses the filter.

    One pass over the components, which the request's size bounds.
    """
    seen: set[str] = set()
    for component in components:
        _check_component(component, seen)
    if IP in seen and (USER in seen or CLIENT_ID in seen):
        raise FilterRefused(ErrorCode.invalid_request,
                            "Invalid entity filter component combination. IP filter component should "
                            "not be used with user or clientId filter component.")


async def handle_describe(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    if not context.authorize_cluster(Operation.DESCRIBE_CONFIGS):
        # No message: Kafka's ApiError.fromThrowable leaves out an error's generic one.
        return make(types.DescribeClientQuotasResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.cluster_authorization_failed, error_message=None, entries=None)
    try:
        check_filter(request.components)
    except FilterRefused as refused:
        return make(types.DescribeClientQuotasResponse, throttle_time=NO_THROTTLE,
                    error_code=refused.code, error_message=str(refused), entries=None)
    # No quota is configured on any entity, so no entity matches (strict or not). The empty
    # message is Kafka's (the schema's default for ErrorMessage), not null.
    return make(types.DescribeClientQuotasResponse, throttle_time=NO_THROTTLE,
                error_code=ErrorCode.none, error_message="", entries=())


ROUTES = (Route(48, 0, 1, handle_describe, Access.AUTHORIZED),)
