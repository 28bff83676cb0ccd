"""Kafka's SimpleAssignor for share groups (gateway/coordinator/share_assign.py), as a pure function."""

from __future__ import annotations

from kafka_redis_gateway.gateway.coordinator.share_assign import assign


def members_of(count: int, *topics: str) -> dict[str, tuple[str, ...]]:
    return {f"m{i}": topics for i in range(count)}


def test_partitions_spread_disjoint_when_members_are_fewer() -> None:
    assigned = assign(members_of(3, "t"), {"t": 7}, {})
    every = sorted(p for parts in assigned.values() for _, p in parts)
    assert every == list(range(7))
    assert sorted(len(parts) for parts in assigned.values()) == [2, 2, 3]


def test_partitions_shared_only_when_members_outnumber_them() -> None:
    assigned = assign(members_of(5, "t"), {"t": 2}, {})
    holders = {p: sum(("t", p) in parts for parts in assigned.values()) for p in range(2)}
    assert holders == {0: 3, 1: 3}  # ceil(5 / 2) members each
    assert all(1 <= len(parts) <= 2 for parts in assigned.values())


def test_own_output_is_kept() -> None:
    members = members_of(4, "t", "u")
    counts = {"t": 5, "u": 3}
    first = assign(members, counts, {})
    assert assign(members, counts, first) == first


def test_a_leaving_member_moves_only_its_partitions() -> None:
    before = assign(members_of(3, "t"), {"t": 6}, {})
    stay = {member: topics for member, topics in members_of(3, "t").items() if member != "m1"}
    after = assign(stay, {"t": 6}, before)
    for member in stay:
        assert set(before[member]) <= set(after[member])
    assert sorted(p for parts in after.values() for _, p in parts) == list(range(6))


def test_only_subscribers_and_existing_topics() -> None:
    assigned = assign({"a": ("t", "gone"), "b": ("u",)}, {"t": 2, "u": 1}, {"a": [("u", 0)]})
    assert assigned == {"a": [("t", 0), ("t", 1)], "b": [("u", 0)]}


def test_previous_partitions_beyond_the_topic_are_dropped() -> None:
    assigned = assign(members_of(1, "t"), {"t": 2}, {"m0": [("t", 5), ("t", 1)]})
    assert assigned == {"m0": [("t", 0), ("t", 1)]}
