"""Kafka ACLs: the bindings, the filters that find them, and the authorizer's decision.

The codes are Kafka's (org.apache.kafka.common.resource.ResourceType,
PatternType, acl.AclOperation, AclPermissionType), so they travel on the
wire and into Redis unchanged. The decision is StandardAuthorizer's
(StandardAuthorizerData.findAclRule/findResult): a super user may do
anything; otherwise the ACLs of the resource are those whose pattern
matches its name (LITERAL equal, LITERAL "*", PREFIXED a prefix of it);
a matching DENY (for the operation or ALL) wins, then a matching ALLOW
(where READ, WRITE, DELETE and ALTER imply DESCRIBE and ALTER_CONFIGS
implies DESCRIBE_CONFIGS, for ALLOW only); a resource with no ACL at all
(for anyone) takes --allow-everyone-if-no-acl-found, and one with ACLs
for others only is denied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum

WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"
CLUSTER_NAME = "kafka-cluster"
# Kafka's "authorized operations not requested" (Integer.MIN_VALUE).
NOT_REQUESTED = -(2**31)


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


_IMPLIES_DESCRIBE = frozenset({Operation.DESCRIBE, Operation.READ, Operation.WRITE,
                               Operation.DELETE, Operation.ALTER})
_IMPLIES_DESCRIBE_CONFIGS = frozenset({Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS})

# What authorized-operations fields report per resource type (Kafka's
# ResourceType-specific supportedOperations in KafkaApis / GroupCoordinator).
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[Operation, ...]] = {
    ResourceType.TOPIC: (Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE,
                         Operation.DELETE, Operation.ALTER, Operation.DESCRIBE_CONFIGS,
                         Operation.ALTER_CONFIGS),
    ResourceType.GROUP: (Operation.DELETE, Operation.DESCRIBE, Operation.READ),
    ResourceType.CLUSTER: (Operation.CREATE, Operation.CLUSTER_ACTION, Operation.DESCRIBE_CONFIGS,
                           Operation.ALTER_CONFIGS, Operation.IDEMPOTENT_WRITE, Operation.ALTER,
                           Operation.DESCRIBE),
}


@dataclass(frozen=True, slots=True, order=True)
class AclBinding:
    """One ACL: a resource pattern and an access control entry."""

    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def encode(self) -> str:
        """The Redis hash field: the seven parts, tab-separated (no part holds a tab; see invalid())."""
        return "\t".join((str(int(self.resource_type)), str(int(self.pattern_type)), self.name,
                          self.principal, self.host, str(int(self.operation)),
                          str(int(self.permission))))

    @classmethod
    def decode(cls, text: str | bytes) -> AclBinding:
        if isinstance(text, bytes):
            text = text.decode()
        rtype, ptype, name, principal, host, op, perm = text.split("\t")
        return cls(ResourceType(int(rtype)), name, PatternType(int(ptype)), principal, host,
                   Operation(int(op)), Permission(int(perm)))

    def invalid(self) -> str | None:
        """Why Kafka would refuse to create it (AclControlManager.validateNewAcl), or None."""
        if self.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
            return f"Invalid resourceType {self.resource_type.name}"
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            return f"Invalid patternType {self.pattern_type.name}"
        if self.operation in (Operation.UNKNOWN, Operation.ANY):
            return f"Invalid operation {self.operation.name}"
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            return f"Invalid permissionType {self.permission.name}"
        if not self.name:
            return "Resource name should not be empty"
        if ":" not in self.principal:
            return f"Could not parse principal from `{self.principal}` (no colon is present " \
                   "separating the principal type from the principal name)"
        if any("\t" in part for part in (self.name, self.principal, self.host)):
            return "Resource names, principals and hosts must not contain a tab"
        return None


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Kafka's AclBindingFilter: None and ANY match anything; MATCH finds the patterns applying to a name."""

    resource_type: ResourceType
    name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: Operation
    permission: Permission

    def matches(self, acl: AclBinding) -> bool:
        return self._matches_pattern(acl) and self._matches_entry(acl)

    def _matches_pattern(self, acl: AclBinding) -> bool:
        # ResourcePatternFilter.matches
        if self.resource_type != ResourceType.ANY and self.resource_type != acl.resource_type:
            return False
        if self.pattern_type not in (PatternType.ANY, PatternType.MATCH, acl.pattern_type):
            return False
        if self.name is None:
            return True
        if self.pattern_type in (PatternType.ANY, acl.pattern_type):
            return self.name == acl.name
        if acl.pattern_type == PatternType.LITERAL:
            return self.name == acl.name or acl.name == WILDCARD
        return self.name.startswith(acl.name)

    def _matches_entry(self, acl: AclBinding) -> bool:
        # AccessControlEntryFilter.matches
        return ((self.principal is None or self.principal == acl.principal)
                and (self.host is None or self.host == acl.host)
                and self.operation in (Operation.ANY, acl.operation)
                and self.permission in (Permission.ANY, acl.permission))

    def invalid(self) -> str | None:
        """Kafka refuses filters with UNKNOWN parts (DescribeAclsRequest/DeleteAclsRequest)."""
        if 0 in (self.pattern_type, self.resource_type, self.operation, self.permission):
            return "Filter contains UNKNOWN elements"
        return None


def _entry_result(acl: AclBinding, principal: str, host: str, operation: Operation) -> Permission | None:
    """StandardAuthorizerData.findResult: what this ACL says about the action, or None."""
    if acl.principal not in (principal, WILDCARD_PRINCIPAL):
        return None
    if acl.host not in (WILDCARD, host):
        return None
    if acl.operation != Operation.ALL:
        if acl.permission == Permission.ALLOW:
            if operation == Operation.DESCRIBE:
                if acl.operation not in _IMPLIES_DESCRIBE:
                    return None
            elif operation == Operation.DESCRIBE_CONFIGS:
                if acl.operation not in _IMPLIES_DESCRIBE_CONFIGS:
                    return None
            elif operation != acl.operation:
                return None
        elif operation != acl.operation:
            return None
    return acl.permission


# Per pattern: principal -> its ACLs of that pattern (never empty when present).
Entries = dict[str, list[AclBinding]]


@dataclass(frozen=True, slots=True)
class AclSet:
    """An immutable snapshot of every ACL, indexed for the authorizer's lookups.

    A decision looks up each pattern that can cover the name (the literal
    name, "*", each prefix length in use) and, in it, only the principal's
    and User:*'s ACLs: its cost does not grow with the ACLs of other
    principals on the same pattern.
    """

    version: int
    bindings: frozenset[AclBinding]
    # (type, name) -> the LITERAL pattern's entries ("*" included).
    _literal: dict[tuple[ResourceType, str], Entries] = field(default_factory=dict)
    # (type, prefix) -> the PREFIXED pattern's entries; and the prefix lengths in use per type.
    _prefixed: dict[tuple[ResourceType, str], Entries] = field(default_factory=dict)
    _prefix_lengths: dict[ResourceType, frozenset[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, version: int, bindings: Iterable[AclBinding]) -> AclSet:
        every = frozenset(bindings)
        literal: dict[tuple[ResourceType, str], Entries] = {}
        prefixed: dict[tuple[ResourceType, str], Entries] = {}
        lengths: dict[ResourceType, set[int]] = {}
        for acl in every:
            index = literal if acl.pattern_type == PatternType.LITERAL else prefixed
            index.setdefault((acl.resource_type, acl.name), {}).setdefault(acl.principal, []).append(acl)
            if acl.pattern_type == PatternType.PREFIXED:
                lengths.setdefault(acl.resource_type, set()).add(len(acl.name))
        return cls(version, every, literal, prefixed,
                   {rtype: frozenset(found) for rtype, found in lengths.items()})

    def _patterns(self, resource_type: ResourceType, name: str) -> Iterator[Entries]:
        """The entries of every pattern that covers the resource."""
        for literal_name in (name,) if name == WILDCARD else (name, WILDCARD):
            entries = self._literal.get((resource_type, literal_name))
            if entries:
                yield entries
        for length in self._prefix_lengths.get(resource_type, ()):
            if length <= len(name):
                entries = self._prefixed.get((resource_type, name[:length]))
                if entries:
                    yield entries

    def applying_to(self, resource_type: ResourceType, name: str,
                    principal: str) -> tuple[bool, list[AclBinding]]:
        """Whether any ACL covers the resource, and those of them for the principal or User:*."""
        covered = False
        found: list[AclBinding] = []
        for entries in self._patterns(resource_type, name):
            covered = True
            found.extend(entries.get(principal, ()))
            if principal != WILDCARD_PRINCIPAL:
                found.extend(entries.get(WILDCARD_PRINCIPAL, ()))
        return covered, found

    def matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        return sorted(acl for acl in self.bindings if acl_filter.matches(acl))


EMPTY = AclSet.of(0, ())


@dataclass(frozen=True, slots=True)
class Policy:
    """What the operator configured: --authorizer, --super-users, --allow-everyone-if-no-acl-found."""

    enabled: bool = False
    super_users: frozenset[str] = frozenset()
    allow_if_no_acl: bool = False


def decide(policy: Policy, acls: AclSet, principal: str, host: str, operation: Operation,
           resource_type: ResourceType, name: str) -> bool:
    """Whether the principal, connected from host, may do operation on the resource."""
    if not policy.enabled or principal in policy.super_users:
        return True
    allowed = False
    covered, applying = acls.applying_to(resource_type, name, principal)
    for acl in applying:
        result = _entry_result(acl, principal, host, operation)
        if result == Permission.DENY:
            return False
        if result == Permission.ALLOW:
            allowed = True
    if allowed:
        return True
    return not covered and policy.allow_if_no_acl


def decide_any(policy: Policy, acls: AclSet, principal: str, host: str, operation: Operation,
               resource_type: ResourceType) -> bool:
    """Kafka's authorizeByResourceType: may the principal do operation on some resource of the type?"""
    if decide(policy, acls, principal, host, operation, resource_type, "hardcode"):
        return True
    deny_literal: set[str] = set()
    deny_prefixed: set[str] = set()
    allows: list[AclBinding] = []
    for acl in acls.bindings:
        if acl.resource_type != resource_type or acl.host not in (host, WILDCARD) \
                or acl.principal not in (principal, WILDCARD_PRINCIPAL) \
                or acl.operation not in (operation, Operation.ALL):
            continue
        if acl.permission == Permission.DENY:
            if acl.pattern_type == PatternType.LITERAL and acl.name == WILDCARD:
                return False
            (deny_literal if acl.pattern_type == PatternType.LITERAL else deny_prefixed).add(acl.name)
        else:
            allows.append(acl)
    for acl in allows:
        if acl.pattern_type == PatternType.LITERAL and acl.name == WILDCARD:
            return True
        denied_by_prefix = any(acl.name.startswith(prefix) for prefix in deny_prefixed)
        if acl.pattern_type == PatternType.LITERAL:
            if acl.name not in deny_literal and not denied_by_prefix:
                return True
        elif not denied_by_prefix:
            return True
    return False


def operations_bitfield(operations: Iterable[Operation]) -> int:
    """Kafka's authorized-operations int32: bit n set for the operation of code n."""
    bits = 0
    for operation in operations:
        bits |= 1 << int(operation)
    return bits
