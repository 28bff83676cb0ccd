"""The storage interface of consumer groups: committed offsets and the group registry.

Membership is run in the gateway's memory (``gateway/coordinator``) and
stored here at each generation, with everything else that must survive a
gateway restart. A committed offset *is* the Redis consumer
group of the same name on the partition's stream (docs/mapping.md), so
commits made by Redis-native readers are committed offsets too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class Fenced(Exception):
    """A write carried a fencing token below the group's latest: another gateway
    took the group's coordinator lease since (coordinator/ownership.py)."""


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    """A group's position on a partition; offset -1 when it has none."""

    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str = ""


class GroupStorage(Protocol):
    """What the group coordinator needs from Redis."""

    async def ping(self) -> None:
        """Raise StorageUnavailable unless Redis answers."""

    async def commit_offsets(self, group: str, commits: Sequence[OffsetCommit],
                             protocol_type: str | None, token: int | None = None) -> list[Exception | None]:
        """Commit each partition's offset; registers the group (with its protocol
        type when known) and the partitions. One result per commit, in order;
        :class:`Fenced` for a partition where a later coordinator's ``token`` committed."""

    async def fetch_offsets(self, group: str,
                            partitions: Sequence[tuple[str, int]]) -> list[CommittedOffset]: ...

    async def committed_partitions(self, group: str) -> list[tuple[str, int]]:
        """Every partition the group has committed on through Kafka."""

    async def groups(self) -> Mapping[str, str]:
        """Registered groups: group ID -> protocol type ("" when unknown)."""

    async def group_protocol_type(self, group: str) -> str | None:
        """The registered group's protocol type, or None when not registered."""

    async def register_group(self, group: str, protocol_type: str) -> None: ...

    async def delete_offsets(self, group: str, partitions: Sequence[tuple[str, int]]) -> None: ...

    async def save_membership(self, group: str, generation: int, state: bytes,
                              token: int | None = None) -> bool:
        """Store the group's membership unless a later generation is stored; whether it was.

        Raises :class:`Fenced` when ``token`` is below the group's lease's."""

    async def load_membership(self, group: str) -> bytes | None:
        """The stored membership, or None."""

    async def delete_group(self, group: str) -> None:
        """Remove the group's offsets (its Redis consumer groups), membership and registration."""

    async def close(self) -> None: ...
