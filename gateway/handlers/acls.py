"""DescribeAcls (key 29), CreateAcls (30) and DeleteAcls (31), v1-v3.

The ACLs live in Redis (storage/acls.py) and every gateway enforces them
(security/authorizer.py). As Kafka: without an authorizer (--authorizer
off) these APIs answer SECURITY_DISABLED; describing needs DESCRIBE on the
cluster and creating or deleting ALTER, else CLUSTER_AUTHORIZATION_FAILED;
a binding Kafka would refuse (AclControlManager.validateNewAcl, the
CLUSTER resource named other than kafka-cluster) or a filter with UNKNOWN
parts is INVALID_REQUEST; creating an ACL that exists succeeds.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, TypeVar

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import (
    CLUSTER_NAME,
    AclBinding,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from ..storage import StorageUnavailable
from ..storage.acls import TooManyAcls
from ._build import NO_THROTTLE, make, response_types

E = TypeVar("E", bound=IntEnum)
Outcome = tuple[ErrorCode, str | None]
NO_AUTHORIZER: Outcome = (ErrorCode.security_disabled, "No Authorizer is configured.")
OK: Outcome = (ErrorCode.none, None)


def _code(kind: type[E], value: int) -> E:
    """The enum member of a wire code; codes Kafka does not know read as UNKNOWN (0)."""
    try:
        return kind(value)
    except ValueError:
        return kind(0)


def _binding(creation: Any) -> AclBinding:
    return AclBinding(_code(ResourceType, creation.resource_type), creation.resource_name,
                      _code(PatternType, creation.resource_pattern_type), creation.principal,
                      creation.host, _code(Operation, creation.operation),
                      _code(Permission, creation.permission_type))


def _filter(item: Any) -> AclFilter:
    return AclFilter(_code(ResourceType, item.resource_type_filter), item.resource_name_filter,
                     _code(PatternType, item.pattern_type_filter), item.principal_filter,
                     item.host_filter, _code(Operation, item.operation),
                     _code(Permission, item.permission_type))


def _creation_problem(binding: AclBinding) -> str | None:
    if binding.resource_type == ResourceType.CLUSTER and binding.name != CLUSTER_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
    return binding.invalid()


def _access_problem(context: RequestContext, operation: Operation) -> Outcome | None:
    if not context.authorizer.enabled:
        return NO_AUTHORIZER
    if not context.authorize_cluster(operation):
        return ErrorCode.cluster_authorization_failed, "Cluster authorization failed."
    return None


async def handle_describe(context: RequestContext, request: Any) -> Any:
    types = response_types(context)

    def answer(outcome: Outcome, resources: tuple[Any, ...] = ()) -> Any:
        return make(types.DescribeAclsResponse, throttle_time=NO_THROTTLE, error_code=outcome[0],
                    error_message=outcome[1], resources=resources)

    problem = _access_problem(context, Operation.DESCRIBE)
    if problem is not None:
        return answer(problem)
    acl_filter = _filter(request)
    invalid = acl_filter.invalid()
    if invalid is not None:
        return answer((ErrorCode.invalid_request, invalid))
    grouped: dict[tuple[ResourceType, str, PatternType], list[AclBinding]] = {}
    for acl in context.authorizer.acls.matching(acl_filter):
        grouped.setdefault((acl.resource_type, acl.name, acl.pattern_type), []).append(acl)
    resources = tuple(
        make(types.DescribeAclsResource, resource_type=rtype, resource_name=name, pattern_type=ptype,
             acls=tuple(make(types.AclDescription, principal=acl.principal, host=acl.host,
                             operation=acl.operation, permission_type=acl.permission)
                        for acl in acls))
        for (rtype, name, ptype), acls in grouped.items())
    return answer(OK, resources)


async def handle_create(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    bindings = [_binding(creation) for creation in request.creations]
    problem = _access_problem(context, Operation.ALTER)
    outcomes = [problem] * len(bindings) if problem is not None else await _create(context, bindings)
    return make(types.CreateAclsResponse, throttle_time=NO_THROTTLE, results=tuple(
        make(types.AclCreationResult, error_code=code, error_message=message)
        for code, message in outcomes))


async def _create(context: RequestContext, bindings: list[AclBinding]) -> list[Outcome]:
    """Create the valid bindings (all in one MULTI); each binding's outcome."""
    invalid = [_creation_problem(binding) for binding in bindings]
    outcomes = [OK if why is None else (ErrorCode.invalid_request, why) for why in invalid]
    valid = list(dict.fromkeys(binding for binding, why in zip(bindings, invalid, strict=True)
                               if why is None))
    try:
        await context.authorizer.create(valid)
    except (StorageUnavailable, TooManyAcls) as exc:
        code = ErrorCode.unknown_server_error if isinstance(exc, StorageUnavailable) \
            else ErrorCode.invalid_request
        outcomes = [(code, str(exc)) if outcome == OK else outcome for outcome in outcomes]
    return outcomes


async def handle_delete(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    filters = [_filter(item) for item in request.filters]

    def result(outcome: Outcome, matched: tuple[Any, ...] = ()) -> Any:
        return make(types.DeleteAclsFilterResult, error_code=outcome[0], error_message=outcome[1],
                    matching_acls=matched)

    def answer(results: list[Any]) -> Any:
        return make(types.DeleteAclsResponse, throttle_time=NO_THROTTLE, filter_results=tuple(results))

    problem = _access_problem(context, Operation.ALTER)
    if problem is not None:
        return answer([result(problem) for _ in filters])
    try:
        # The set as Redis holds it now, not as last cached: what is deleted
        # is what matches at this moment.
        current = await context.authorizer.store.load()
        matched = [[] if acl_filter.invalid() else current.matching(acl_filter) for acl_filter in filters]
        await context.authorizer.delete(list(dict.fromkeys(acl for acls in matched for acl in acls)))
    except StorageUnavailable as exc:
        return answer([result((ErrorCode.unknown_server_error, str(exc))) for _ in filters])
    results = []
    for acl_filter, acls in zip(filters, matched, strict=True):
        invalid = acl_filter.invalid()
        if invalid is not None:
            results.append(result((ErrorCode.invalid_request, invalid)))
            continue
        results.append(result(OK, tuple(
            make(types.DeleteAclsMatchingAcl, error_code=ErrorCode.none, error_message=None,
                 resource_type=acl.resource_type, resource_name=acl.name, pattern_type=acl.pattern_type,
                 principal=acl.principal, host=acl.host, operation=acl.operation,
                 permission_type=acl.permission)
            for acl in acls)))
    return answer(results)


ROUTES = (
    Route(29, 1, 3, handle_describe, Access.AUTHORIZED),
    Route(30, 1, 3, handle_create, Access.AUTHORIZED),
    Route(31, 1, 3, handle_delete, Access.AUTHORIZED),
)
