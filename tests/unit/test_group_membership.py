"""The stored form of a group's membership (gateway/coordinator/membership.py)."""

from __future__ import annotations

import json

import pytest
from kafka_redis_gateway.gateway.coordinator import membership
from kafka_redis_gateway.gateway.coordinator.group import Group, GroupState, Member


def stable_group(group_id: str, generation: int) -> Group:
    group = Group(group_id, generation=generation)
    group.add(Member("m-1", None, "client-a", "/127.0.0.1", 10_000, 30_000, "consumer",
                     (("range", b"\x00sub"), ("roundrobin", b"")), assignment=b"\x00\x01assigned"))
    group.add(Member("m-2", "instance-2", "client-b", "/127.0.0.1", 45_000, 60_000, "consumer",
                     (("range", b"\xffother"),)))
    group.protocol_name = "range"
    group.transition(GroupState.STABLE)
    return group


def test_a_stored_group_comes_back_as_it_was() -> None:
    stored = stable_group("orders", 3)
    loaded = membership.decode("orders", membership.encode(stored, {"m-1": b"new", "m-2": b"\x00two"}))
    assert (loaded.state, loaded.generation, loaded.protocol_type, loaded.protocol_name,
            loaded.leader_id) == (GroupState.STABLE, 3, "consumer", "range", "m-1")
    assert [(m.member_id, m.group_instance_id, m.client_id, m.session_timeout_ms, m.rebalance_timeout_ms,
             m.protocols, m.assignment) for m in loaded.members.values()] == [
        ("m-1", None, "client-a", 10_000, 30_000, (("range", b"\x00sub"), ("roundrobin", b"")), b"new"),
        ("m-2", "instance-2", "client-b", 45_000, 60_000, (("range", b"\xffother"),), b"\x00two"),
    ]
    assert loaded.static_members == {"instance-2": "m-2"}
    empty = membership.decode("orders", membership.encode(Group("orders", generation=4)))
    assert (empty.state, empty.generation, empty.members) == (GroupState.EMPTY, 4, {})


@pytest.mark.parametrize("raw", [b"not json", b'{"version": 99}', json.dumps({"version": 1}).encode()])
def test_an_unreadable_membership_is_refused(raw: bytes) -> None:
    with pytest.raises(membership.UnreadableMembership):
        membership.decode("orders", raw)
