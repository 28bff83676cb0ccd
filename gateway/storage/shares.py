"""Share groups (KIP-932) on Redis: a share group is the Redis consumer group of the same name.

On each partition's stream the share group is a Redis consumer group, each
Kafka member a Redis consumer named by its member ID. Acquiring records is
XREADGROUP (and XAUTOCLAIM for expired locks), a lock is a pending entry
whose idle time is below the lock duration, the delivery count is the
PEL's delivery counter, ACCEPT is XACK, RELEASE hands the entry to a
pseudo-consumer with a huge idle time so the next claim takes it, REJECT
and the delivery-count limit XACK it (docs/mapping.md). Redis-native
XREADGROUP workers in the same group therefore share the work.

The group's members and epoch are one hash (share_heartbeat.lua), so any
gateway answers a heartbeat and nothing is lost with a gateway.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors

from . import keys
from .errors import call_once
from .redis_cluster import StoreConnections
from .scripts import ScriptCall, function, run_calls

KeysOf = Callable[[str, int], Awaitable[keys.PartitionKeys]]

ACQUIRE = function("share_acquire.lua")
ACKNOWLEDGE = function("share_ack.lua")
RELEASE = function("share_release.lua")
HEARTBEAT = function("share_heartbeat.lua")
START = function("share_start.lua")
ASSIGN = function("share_assign.lua")
RESET = function("share_reset.lua")
# Calls one start offset may take when counting must go on (each copies at most 1 MiB).
START_ROUNDS = 8

# Pending entries one release call hands back; the caller repeats up to
# RELEASE_ROUNDS times (a member holds at most what its fetches acquired).
RELEASE_BATCH = 1000
RELEASE_ROUNDS = 20
# Members one share group may have (share_heartbeat.lua walks them all).
MAX_MEMBERS = 1000
CONFIG_PREFIX = "config:"


@dataclass(frozen=True, slots=True)
class Acquired:
    offset: int
    delivery_count: int
    entry_id: bytes
    fields: Sequence[bytes]


@dataclass(frozen=True, slots=True)
class Archived:
    offset: int
    entry_id: bytes
    fields: Sequence[bytes] = ()


@dataclass(frozen=True, slots=True)
class AcquireResult:
    acquired: Sequence[Acquired]
    archived: Sequence[Archived]


@dataclass(frozen=True, slots=True)
class AckResult:
    refused: int  # records the member did not hold (INVALID_RECORD_STATE)
    archived: Sequence[Archived]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    code: int  # 0 ok, 1 unknown member, 2 group full
    epoch: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MemberState:
    member_id: str
    topics: tuple[str, ...]
    client_host: str
    client_id: str


@dataclass(frozen=True, slots=True)
class GroupState:
    epoch: int
    members: Sequence[MemberState]


@dataclass(frozen=True, slots=True)
class AssignmentState:
    """What a share group's assignment is computed from: the hash as it is, ended sessions too
    (share_heartbeat.lua drops those and bumps the epoch), so every gateway reads the same."""

    epoch: int
    members: Mapping[str, tuple[str, ...]]  # member ID -> subscribed topics
    assigned_epoch: int  # the epoch the stored assignment was computed from; -1: none
    assigned: Mapping[str, Sequence[tuple[str, int]]]


@dataclass(frozen=True, slots=True)
class ShareSettings:
    lock_ms: int
    delivery_limit: int
    reset: str  # "earliest" or "latest"


class RedisShareStorage(StoreConnections):
    def __init__(self, url: str, *, timeout: float = 5.0, max_connections: int = 16,
                 partition_keys: KeysOf, cluster: bool = False) -> None:
        self._keys_of = partition_keys
        super().__init__(url, cluster=cluster, max_connections=max_connections, timeout=timeout)

    async def heartbeat(self, group: str, member: str, member_epoch: int, session_ms: int,
                        topics: Sequence[str] | None, client_host: str = "", client_id: str = "",
                        ) -> Heartbeat:
        args = [member, member_epoch, session_ms, "0" if topics is None else "1",
                ",".join(topics or ()), MAX_MEMBERS, client_host, client_id]
        reply = await self._call_one(ScriptCall(HEARTBEAT, [keys.share_group(group)], args))
        code, epoch, raw = reply
        if int(code) == 0 and member_epoch == 0:
            await call_once(lambda: self._sadd(keys.SHARE_GROUPS, group))
        names = tuple(name for name in _text(raw).split(",") if name)
        return Heartbeat(int(code), int(epoch), names)

    async def groups(self) -> list[str]:
        """Every share group that has had a member and was not deleted since."""
        raw = await call_once(lambda: self._smembers(keys.SHARE_GROUPS))
        return sorted(_text(name) for name in raw)

    async def partitions(self, group: str) -> list[tuple[str, int]]:
        """The partitions the group fetched from."""
        raw = await call_once(lambda: self._smembers(keys.share_group_partitions(group)))
        found = []
        for member in raw:
            topic, _, partition = _text(member).rpartition(":")
            found.append((topic, int(partition)))
        return sorted(found)

    async def start_offset(self, group: str, topic: str, partition: int) -> tuple[int, int] | None:
        """The share-partition start offset and lag; (-1, -1) without state there; None when
        counting did not finish within START_ROUNDS calls."""
        pk = await self._keys_of(topic, partition)
        keys_ = [pk.stream, pk.index, pk.meta, keys.share_held(topic, partition, group)]
        resume: list[Any] = []
        for _ in range(START_ROUNDS):
            reply = await self._call_one(ScriptCall(START, keys_, [group, *resume]))
            if int(reply[0]) != -3:
                return int(reply[0]), int(reply[1])
            resume = [reply[1], reply[2]]
        return None

    async def reset(self, group: str, topic: str, partition: int, offset: int | None) -> bool:
        """Start the group afresh at offset on the partition (None: forget it there); False when
        finding the offset's entry did not finish within START_ROUNDS calls."""
        pk = await self._keys_of(topic, partition)
        call = ScriptCall(RESET, [pk.stream, pk.index, pk.meta, keys.share_held(topic, partition, group)],
                          [group, "" if offset is None else offset])
        for _ in range(START_ROUNDS):
            reply = await self._call_one(call)
            if reply == 1:
                if offset is None:
                    await call_once(functools.partial(
                        self._srem, keys.share_group_partitions(group), f"{topic}:{partition}"))
                else:
                    await self.note_partitions(group, [(topic, partition)])
                    await call_once(functools.partial(self._sadd, keys.SHARE_GROUPS, group))
                return True
        return False

    async def note_partitions(self, group: str, partitions: Sequence[tuple[str, int]]) -> None:
        """Remember where the group has state, for DeleteGroups."""
        if partitions:
            members = [f"{topic}:{partition}" for topic, partition in partitions]
            await call_once(lambda: self._sadd(keys.share_group_partitions(group), *members))

    async def delete(self, group: str) -> None:
        """The group's Redis consumer groups, held-records hashes, membership, configs and registration."""
        raw = await call_once(lambda: self._smembers(keys.share_group_partitions(group)))
        for member in raw:
            topic, _, partition = _text(member).rpartition(":")
            stream = (await self._keys_of(topic, int(partition))).stream
            held = keys.share_held(topic, int(partition), group)
            await call_once(functools.partial(self._forget_partition, stream, held, group))
        await call_once(lambda: self._redis.delete(keys.share_group_partitions(group)))
        await call_once(lambda: self._redis.delete(keys.share_group(group)))
        await call_once(lambda: self._srem(keys.SHARE_GROUPS, group))

    async def _forget_partition(self, stream: str, held: str, group: str) -> None:
        with contextlib.suppress(redis_errors.ResponseError):  # no such group or stream: nothing to do
            await self._redis.xgroup_destroy(stream, group)
        await self._redis.delete(held)

    async def _sadd(self, key: str, *members: str) -> int:
        return await self._redis.sadd(key, *members)  # type: ignore[no-any-return,misc]

    async def _srem(self, key: str, *members: str) -> int:
        return await self._redis.srem(key, *members)  # type: ignore[no-any-return,misc]

    async def _smembers(self, key: str) -> set[bytes]:
        return await self._redis.smembers(key)  # type: ignore[return-value,misc]

    async def describe(self, group: str) -> GroupState | None:
        """The group's epoch and members whose session has not ended; None for no such group."""
        raw = await call_once(lambda: self._hgetall(keys.share_group(group)))
        fields = {_text(name): _text(value) for name, value in raw.items()}
        if "epoch" not in fields:
            return None
        now = int(time.time() * 1000)
        members = []
        for name, value in fields.items():
            if not name.startswith("m:"):
                continue
            ends, topics, host, client_id = [*value.split("|", 3), "", "", ""][:4]
            if int(ends) >= now:
                members.append(MemberState(name[2:], tuple(t for t in topics.split(",") if t), host,
                                           client_id))
        return GroupState(int(fields["epoch"]), members)

    async def assignment_state(self, group: str) -> AssignmentState | None:
        """The group's members and its stored assignment; None for no such group."""
        raw = await call_once(lambda: self._hgetall(keys.share_group(group)))
        fields = {_text(name): _text(value) for name, value in raw.items()}
        if "epoch" not in fields:
            return None
        members: dict[str, tuple[str, ...]] = {}
        assigned: dict[str, list[tuple[str, int]]] = {}
        for name, value in fields.items():
            if name.startswith("m:"):
                topics = [*value.split("|", 2), ""][1]
                members[name[2:]] = tuple(topic for topic in topics.split(",") if topic)
            elif name.startswith("a:"):
                assigned[name[2:]] = [_topic_partition(item) for item in value.split(",") if item]
        return AssignmentState(int(fields["epoch"]), members, int(fields.get("assigned", "-1")), assigned)

    async def store_assignment(self, group: str, epoch: int,
                               assignment: Mapping[str, Sequence[tuple[str, int]]]) -> None:
        """Keep the assignment computed from epoch, unless the epoch moved on meanwhile."""
        args: list[str | int] = [epoch]
        for member, partitions in sorted(assignment.items()):
            args += [member, ",".join(f"{topic}:{partition}" for topic, partition in partitions)]
        await self._call_one(ScriptCall(ASSIGN, [keys.share_group(group)], args))

    async def configs(self, group: str) -> Mapping[str, str]:
        """The group's configs set through IncrementalAlterConfigs (GROUP resources)."""
        raw = await call_once(lambda: self._hgetall(keys.share_group(group)))
        return {_text(name)[len(CONFIG_PREFIX):]: _text(value) for name, value in raw.items()
                if _text(name).startswith(CONFIG_PREFIX)}

    async def set_configs(self, group: str, changes: Mapping[str, str | None]) -> None:
        """Set (or, for None, delete) the group's configs, in one MULTI."""
        key = keys.share_group(group)

        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                for name, value in changes.items():
                    if value is None:
                        pipe.hdel(key, CONFIG_PREFIX + name)
                    else:
                        pipe.hset(key, CONFIG_PREFIX + name, value)
                await pipe.execute()
        await call_once(write)

    async def acquire(self, group: str, member: str, partitions: Sequence[tuple[str, int, int]],
                      max_bytes: int, settings: ShareSettings) -> list[AcquireResult | Exception]:
        """Acquire records on each (topic, partition, maximum records), in one round trip."""
        calls = []
        for topic, partition, max_records in partitions:
            pk = await self._keys_of(topic, partition)
            calls.append(ScriptCall(
                ACQUIRE, [pk.stream, pk.index, pk.meta, keys.share_held(topic, partition, group)],
                [group, member, max_records, max_bytes, settings.lock_ms, settings.delivery_limit,
                 settings.reset]))
        replies = await call_once(lambda: run_calls(self._scripts, calls))
        return [reply if isinstance(reply, Exception) else _acquired(reply) for reply in replies]

    async def acknowledge(self, group: str, member: str, topic: str, partition: int,
                          acks: Sequence[tuple[int, int]], lock_ms: int) -> AckResult:
        pk = await self._keys_of(topic, partition)
        args: list[Any] = [group, member, lock_ms]
        for offset, kind in acks:
            args += [offset, kind]
        reply = await self._call_one(
            ScriptCall(ACKNOWLEDGE, [pk.stream, keys.share_held(topic, partition, group)], args))
        refused, archived = reply
        return AckResult(int(refused), [Archived(int(offset), entry_id, fields)
                                        for offset, entry_id, fields in archived])

    async def release(self, group: str, member: str, topic: str, partition: int) -> None:
        """Make what the member holds on the partition available to others at once."""
        pk = await self._keys_of(topic, partition)
        for _ in range(RELEASE_ROUNDS):
            released = await self._call_one(
                ScriptCall(RELEASE, [pk.stream], [group, member, RELEASE_BATCH]))
            if int(released) < RELEASE_BATCH:
                return

    async def copy_to(self, topic: str, entries: Sequence[Archived]) -> None:
        """Copy archived records to partition 0 of a dead-letter topic (after they were archived:
        a failure between loses the copy, never the archiving)."""
        stream = (await self._keys_of(topic, 0)).stream

        async def write() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pairs = dict(zip(entry.fields[0::2], entry.fields[1::2], strict=True))
                    pipe.xadd(stream, pairs or {b"value": b""})  # type: ignore[arg-type]
                await pipe.execute()
        await call_once(write)

    async def _call_one(self, call: ScriptCall) -> Any:
        (reply,) = await call_once(lambda: run_calls(self._scripts, [call]))
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _hgetall(self, key: str) -> dict[bytes, bytes]:
        return await self._redis.hgetall(key)  # type: ignore[return-value,misc]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _topic_partition(text: str) -> tuple[str, int]:
    topic, _, partition = text.rpartition(":")
    return topic, int(partition)


def _acquired(reply: Any) -> AcquireResult:
    acquired, archived = reply
    return AcquireResult(
        [Acquired(int(offset), int(count), entry_id, fields) for offset, count, entry_id, fields in acquired],
        [Archived(int(offset), entry_id, fields) for offset, entry_id, fields in archived])
