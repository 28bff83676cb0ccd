"""Microbenchmark of an ACL decision (plain script, one core, no Redis).

    python benchmarks/acl_bench.py [--acls N] [--checks C] [--repeat R]

What a handler pays per authorize() call with --authorizer true: the
decision on the in-memory snapshot (gateway/security/acls.py). Workload: N
generated ACLs over 1000 principals (duplicates collapse; the distinct
count is printed), half LITERAL on a topic each, half PREFIXED on prefixes
of 3 to 8 characters that many principals share, plus a DENY for one topic; each check asks
WRITE on a topic for one principal. Prints checks/s for a granted topic,
a topic with no ACL, and a denied one. Each figure is the best of R timed
runs, so a noisy neighbour only lowers the worst runs."""

from __future__ import annotations

import argparse
import time

from kafka_redis_gateway.gateway.security.acls import (
    AclBinding,
    AclSet,
    Operation,
    PatternType,
    Permission,
    Policy,
    ResourceType,
    decide,
)

TOPIC = ResourceType.TOPIC


def make_acls(count: int) -> AclSet:
    bindings = []
    for i in range(count):
        principal = f"User:app-{i % 1000}"
        if i % 2:
            name = f"orders-{i:07d}"[: 3 + i % 6]
            pattern = PatternType.PREFIXED
        else:
            name, pattern = f"orders-{i:07d}", PatternType.LITERAL
        bindings.append(AclBinding(TOPIC, name, pattern, principal, "*", Operation.WRITE, Permission.ALLOW))
    bindings.append(AclBinding(TOPIC, "orders-0000000", PatternType.LITERAL, "User:app-0", "*",
                               Operation.WRITE, Permission.DENY))
    return AclSet.of(1, bindings)


def best_rate(acls: AclSet, principal: str, topic: str, checks: int, repeat: int) -> float:
    policy = Policy(enabled=True)
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(checks):
            decide(policy, acls, principal, "10.0.0.1", Operation.WRITE, TOPIC, topic)
        best = max(best, checks / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acls", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    acls = make_acls(args.acls)
    cases = {"granted (literal)": ("User:app-2", "orders-0000002"),
             "no ACL for the topic": ("User:app-2", "payments"),
             "denied (DENY over ALLOW)": ("User:app-0", "orders-0000000")}
    print(f"{len(acls.bindings)} ACLs")
    for label, (principal, topic) in cases.items():
        assert decide(Policy(enabled=True), acls, principal, "10.0.0.1", Operation.WRITE, TOPIC,
                      topic) == label.startswith("granted")
        rate = best_rate(acls, principal, topic, args.checks, args.repeat)
        print(f"{label:>28}: {rate:12,.0f} checks/s ({1e6 / rate:.2f} us each)")


if __name__ == "__main__":
    main()
