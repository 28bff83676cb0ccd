"""DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (key 51), v0.

SCRAM users live in Redis (storage/credentials.py), so a user made through
one gateway logs in at every gateway on the same Redis. The checks and
error codes are Kafka's ScramControlManager's: a user named twice is
DUPLICATE_RESOURCE, an unknown user or credential RESOURCE_NOT_FOUND, an
unknown mechanism UNSUPPORTED_SASL_MECHANISM, iterations outside
4096-16384 or an empty name UNACCEPTABLE_CREDENTIAL. A user with any bad
alteration has none of its alterations applied; the others' are applied
each user's in one MULTI, up to 1000 users per MULTI
(storage/credentials.py). Describing needs DESCRIBE on the cluster (else
the response's CLUSTER_AUTHORIZATION_FAILED), altering ALTER (else each
user's). Only salted hashes arrive (the client salts the
password) and only StoredKey and ServerKey are kept.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import Operation
from ..security.scram import (
    MAX_ITERATIONS,
    MECHANISM_TYPES,
    MIN_ITERATIONS,
    TYPE_OF_MECHANISM,
    credential_from_salted_password,
)
from ..storage import StorageUnavailable
from ..storage.credentials import CredentialChange
from ._build import NO_THROTTLE, make, response_types

Problem = tuple[ErrorCode, str]
# (A Kafka broker forwards the alteration to its controller, whose refusal's message quotes
# the whole forwarded request: not reproduced.)
CLUSTER_REFUSED = "Cluster authorization failed."


async def handle_describe(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    names = [user.name for user in request.users or ()]
    if not context.authorize_cluster(Operation.DESCRIBE):
        # Kafka's error response (DescribeUserScramCredentialsRequest.getErrorResponse): the
        # code at the top and once per user named, with no message (ApiError.fromThrowable
        # drops generic ones) and no user name (it sets none). (librdkafka 2.16's AdminClient
        # aborts on this answer, from Kafka as from here.)
        refused = ErrorCode.cluster_authorization_failed
        return make(types.DescribeUserScramCredentialsResponse, throttle_time=NO_THROTTLE,
                    error_code=refused, error_message=None, results=tuple(
                        make(types.DescribeUserScramCredentialsResult, user="", error_code=refused,
                             error_message=None, credential_infos=())
                        for _ in names))
    try:
        found = await (context.credentials.mechanisms_of(list(dict.fromkeys(names))) if names
                       else context.credentials.all_users())
    except StorageUnavailable as exc:
        return make(types.DescribeUserScramCredentialsResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.unknown_server_error, error_message=str(exc), results=())
    counts = Counter(names)
    results = []
    for user in (dict.fromkeys(names) if names else sorted(found)):
        code, message = ErrorCode.none, None
        if counts[user] > 1:
            code, message = ErrorCode.duplicate_resource, (
                f"Cannot describe SCRAM credentials for the same user twice in a single request: {user}")
        elif user not in found:
            code, message = ErrorCode.resource_not_found, (
                f"Attempt to describe a user credential that does not exist: {user}")
        infos = () if code != ErrorCode.none else tuple(
            make(types.CredentialInfo, mechanism=TYPE_OF_MECHANISM[mechanism], iterations=iterations)
            for mechanism, iterations in sorted(found[user].items()))
        results.append(make(types.DescribeUserScramCredentialsResult, user=user, error_code=code,
                            error_message=message, credential_infos=infos))
    return make(types.DescribeUserScramCredentialsResponse, throttle_time=NO_THROTTLE,
                error_code=ErrorCode.none, error_message=None, results=tuple(results))


def _upsertion_problem(upsertion: Any) -> Problem | None:
    if upsertion.mechanism not in MECHANISM_TYPES:
        return ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism"
    if not upsertion.name:
        return ErrorCode.unacceptable_credential, "Username must not be empty"
    if upsertion.iterations < MIN_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too few iterations"
    if upsertion.iterations > MAX_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too many iterations"
    if not upsertion.salt or not upsertion.salted_password:
        return ErrorCode.unacceptable_credential, "The salt and the salted password must not be empty"
    return None


async def _problems(context: RequestContext, request: Any) -> dict[str, Problem]:
    """Each user whose alterations cannot all be applied -> why (Kafka's order of checks)."""
    problems: dict[str, Problem] = {}
    pairs = Counter((change.name, change.mechanism) for change in (*request.deletions, *request.upsertions))
    for (user, _), count in pairs.items():
        if count > 1:
            problems.setdefault(user, (ErrorCode.duplicate_resource,
                                       "A user credential cannot be altered twice in the same request"))
    for deletion in request.deletions:
        if deletion.mechanism not in MECHANISM_TYPES:
            problems.setdefault(deletion.name,
                                (ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism"))
    for upsertion in request.upsertions:
        problem = _upsertion_problem(upsertion)
        if problem is not None:
            problems.setdefault(upsertion.name, problem)
    wanted = [(deletion.name, MECHANISM_TYPES[deletion.mechanism]) for deletion in request.deletions
              if deletion.name not in problems]
    existing = await context.credentials.existing(wanted)
    for user, mechanism in wanted:
        if (user, mechanism) not in existing:
            problems.setdefault(user, (ErrorCode.resource_not_found,
                                       "Attempt to delete a user credential that does not exist"))
    return problems


def _changes(request: Any, problems: dict[str, Problem]) -> list[CredentialChange]:
    changes = [CredentialChange(deletion.name, MECHANISM_TYPES[deletion.mechanism], None)
               for deletion in request.deletions if deletion.name not in problems]
    for upsertion in request.upsertions:
        if upsertion.name in problems:
            continue
        mechanism = MECHANISM_TYPES[upsertion.mechanism]
        credential = credential_from_salted_password(mechanism, upsertion.salted_password,
                                                     upsertion.salt, upsertion.iterations)
        changes.append(CredentialChange(upsertion.name, mechanism, credential))
    return changes


async def handle_alter(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    users = list(dict.fromkeys(change.name for change in (*request.deletions, *request.upsertions)))
    problems: dict[str, Problem]
    if not context.authorize_cluster(Operation.ALTER):
        problems = {user: (ErrorCode.cluster_authorization_failed, CLUSTER_REFUSED) for user in users}
    else:
        try:
            problems = await _problems(context, request)
            await context.credentials.apply(_changes(request, problems))
        except StorageUnavailable as exc:
            problems = {user: (ErrorCode.unknown_server_error, str(exc)) for user in users}
    results = tuple(
        make(types.AlterUserScramCredentialsResult, user=user,
             error_code=problems.get(user, (ErrorCode.none, None))[0],
             error_message=problems.get(user, (ErrorCode.none, None))[1])
        for user in users)
    return make(types.AlterUserScramCredentialsResponse, throttle_time=NO_THROTTLE, results=results)


ROUTES = (
    Route(50, 0, 0, handle_describe, Access.AUTHORIZED),
    Route(51, 0, 0, handle_alter, Access.AUTHORIZED),
)
