"""The authorizer's decision, as StandardAuthorizer makes it."""

from __future__ import annotations

from kafka_redis_gateway.gateway.dispatch import PUBLIC_API_KEYS, Access
from kafka_redis_gateway.gateway.handlers import ROUTES
from kafka_redis_gateway.gateway.security.acls import (
    AclBinding,
    AclFilter,
    AclSet,
    Operation,
    PatternType,
    Permission,
    Policy,
    ResourceType,
    decide,
    decide_any,
)

TOPIC, LITERAL, PREFIXED = ResourceType.TOPIC, PatternType.LITERAL, PatternType.PREFIXED
ON = Policy(enabled=True, super_users=frozenset({"User:root"}))


def acl(name: str, operation: Operation, permission: Permission = Permission.ALLOW,
        pattern: PatternType = LITERAL, principal: str = "User:bob", host: str = "*") -> AclBinding:
    return AclBinding(TOPIC, name, pattern, principal, host, operation, permission)


def may(acls: list[AclBinding], operation: Operation, name: str, principal: str = "User:bob",
        policy: Policy = ON, host: str = "10.0.0.1") -> bool:
    return decide(policy, AclSet.of(1, acls), principal, host, operation, TOPIC, name)


def test_literal_prefixed_and_wildcard_names() -> None:
    assert may([acl("orders", Operation.READ)], Operation.READ, "orders")
    assert not may([acl("orders", Operation.READ)], Operation.READ, "orders2")
    assert may([acl("ord", Operation.READ, pattern=PREFIXED)], Operation.READ, "orders2")
    assert not may([acl("ord", Operation.READ)], Operation.READ, "orders")
    assert may([acl("*", Operation.READ)], Operation.READ, "anything")


def test_deny_beats_allow_and_all_covers_every_operation() -> None:
    acls = [acl("o", Operation.ALL, pattern=PREFIXED), acl("orders", Operation.WRITE, Permission.DENY)]
    assert may(acls, Operation.READ, "orders")
    assert not may(acls, Operation.WRITE, "orders")
    assert not may([acl("*", Operation.ALL, Permission.DENY), acl("orders", Operation.READ)],
                   Operation.READ, "orders")


def test_allow_implies_describe_but_deny_does_not() -> None:
    assert may([acl("orders", Operation.WRITE)], Operation.DESCRIBE, "orders")
    assert may([acl("orders", Operation.ALTER_CONFIGS)], Operation.DESCRIBE_CONFIGS, "orders")
    assert not may([acl("orders", Operation.CREATE)], Operation.DESCRIBE, "orders")
    denied_read = [acl("orders", Operation.DESCRIBE), acl("orders", Operation.READ, Permission.DENY)]
    assert may(denied_read, Operation.DESCRIBE, "orders")


def test_principal_and_host() -> None:
    assert may([acl("orders", Operation.READ, principal="User:*")], Operation.READ, "orders")
    assert not may([acl("orders", Operation.READ, principal="User:alice")], Operation.READ, "orders")
    assert may([acl("orders", Operation.READ, host="10.0.0.1")], Operation.READ, "orders")
    assert not may([acl("orders", Operation.READ, host="10.0.0.2")], Operation.READ, "orders")


def test_no_acl_super_users_and_authorizer_off() -> None:
    assert not may([], Operation.READ, "orders")
    assert may([], Operation.READ, "orders", policy=Policy(enabled=True, allow_if_no_acl=True))
    # An ACL for someone else on the resource: the no-ACL rule no longer applies.
    assert not may([acl("orders", Operation.READ, principal="User:alice")], Operation.READ, "orders",
                   policy=Policy(enabled=True, allow_if_no_acl=True))
    assert may([acl("*", Operation.ALL, Permission.DENY)], Operation.READ, "orders", principal="User:root")
    assert may([], Operation.DELETE, "orders", policy=Policy())


def test_by_resource_type() -> None:
    def may_write_some(acls: list[AclBinding]) -> bool:
        return decide_any(ON, AclSet.of(1, acls), "User:bob", "h", Operation.WRITE, TOPIC)
    assert not may_write_some([])
    assert may_write_some([acl("a", Operation.WRITE)])
    assert not may_write_some([acl("a", Operation.WRITE), acl("a", Operation.WRITE, Permission.DENY)])
    assert not may_write_some([acl("ab", Operation.WRITE),
                               acl("a", Operation.WRITE, Permission.DENY, PREFIXED)])


def test_filters_match_as_kafkas() -> None:
    prefixed = acl("ord", Operation.READ, pattern=PREFIXED)
    literal = acl("orders", Operation.READ)
    def find(name: str | None, pattern: PatternType) -> list[AclBinding]:
        return AclSet.of(1, [prefixed, literal]).matching(AclFilter(
            ResourceType.ANY, name, pattern, None, None, Operation.ANY, Permission.ANY))
    assert find("orders", PatternType.MATCH) == sorted([prefixed, literal])
    assert find("orders", PatternType.ANY) == [literal]
    assert find(None, PREFIXED) == [prefixed]


def test_encoding_round_trips() -> None:
    binding = acl("a.b-c", Operation.IDEMPOTENT_WRITE, Permission.DENY, PREFIXED, "User:CN=x,O=y")
    assert AclBinding.decode(binding.encode()) == binding


def test_only_version_discovery_and_sasl_are_public() -> None:
    assert {route.api_key for route in ROUTES if route.access is Access.PUBLIC} == PUBLIC_API_KEYS
