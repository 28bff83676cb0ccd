"""A group's membership as it is stored in Redis, and back.

Kafka's coordinator writes a group's metadata (generation, protocol, leader,
members with their subscriptions and assignments) to ``__consumer_offsets``
each time a generation becomes Stable or the group becomes Empty, and loads
it when it takes the group over, so members carry on without rejoining.
This is the same record, as JSON (binary fields in base64) in
``kafka:group:<group>`` (docs/mapping.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from .group import Group, GroupState, Member

FORMAT_VERSION = 1


class UnreadableMembership(ValueError):
    """A stored membership this gateway cannot read (another version, or damaged)."""


def encode(group: Group, assignments: Mapping[str, bytes] | None = None) -> bytes:
    """The group's membership; ``assignments`` (member ID -> assignment) replace the
    members' own, for a generation whose assignment is being stored before it is given out."""
    return json.dumps({
        "version": FORMAT_VERSION,
        "generation": group.generation,
        "protocol_type": group.protocol_type,
        "protocol": group.protocol_name,
        "leader": group.leader_id,
        "members": [_member(m, m.assignment if assignments is None else assignments.get(m.member_id, b""))
                    for m in group.members.values()],
    }, separators=(",", ":")).encode()


def _member(member: Member, assignment: bytes) -> dict[str, Any]:
    return {
        "id": member.member_id,
        "instance": member.group_instance_id,
        "client_id": member.client_id,
        "client_host": member.client_host,
        "session_ms": member.session_timeout_ms,
        "rebalance_ms": member.rebalance_timeout_ms,
        "protocols": [[name, _b64(metadata)] for name, metadata in member.protocols],
        "assignment": _b64(assignment),
    }


def decode(group_id: str, raw: bytes) -> Group:
    """The group as stored: Stable with its members, or Empty at its generation."""
    try:
        stored = json.loads(raw)
        if stored.get("version") != FORMAT_VERSION:
            raise UnreadableMembership(f"format version {stored.get('version')!r}")
        group = Group(group_id, generation=int(stored["generation"]),
                      protocol_type=stored["protocol_type"])
        for entry in stored["members"]:
            group.add(_decode_member(entry, group.protocol_type or ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableMembership(str(exc)) from exc
    if group.members:
        group.protocol_name = stored["protocol"]
        group.leader_id = stored["leader"] if stored["leader"] in group.members else group.leader_id
        group.transition(GroupState.STABLE)
    return group


def _decode_member(entry: dict[str, Any], protocol_type: str) -> Member:
    return Member(
        entry["id"], entry["instance"], entry["client_id"], entry["client_host"],
        int(entry["session_ms"]), int(entry["rebalance_ms"]), protocol_type,
        tuple((name, base64.b64decode(metadata)) for name, metadata in entry["protocols"]),
        base64.b64decode(entry["assignment"]),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
