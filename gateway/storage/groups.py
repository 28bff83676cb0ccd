"""Consumer-group storage on Redis: committed offsets as Redis consumer groups.

A commit of offset N by group G on partition P of topic T is one script call
on P's keys (``commit_offset.lua``): the Redis consumer group G on stream
``kafka:{T:P}`` gets last-delivered-id = the ID of the entry at offset N-1 and
entries-read = N, and ``kafka:{T:P}:commits`` keeps the commit's metadata.
Fetching reads the Redis group back (``committed_offset.lua``), so positions
that Redis-native XREADGROUP readers reach are Kafka committed offsets too.

The registry (``kafka:groups``: group -> protocol type, and one set per group
of the partitions it committed on) is what lets ListGroups, DescribeGroups,
DeleteGroups and an all-partitions OffsetFetch find groups after a gateway
restart. It lives in other slots than the partitions, so it is written next
to the partition scripts rather than inside them; it may list a partition
whose Redis group is gone (a deleted topic), which readers skip.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from . import keys
from .errors import call_once, classify
from .group_base import CommittedOffset, Fenced, OffsetCommit
from .redis_cluster import StoreConnections
from .scripts import ScriptCall, function, run_calls

KeysOf = Callable[[str, int], Awaitable[keys.PartitionKeys]]

COMMIT = function("commit_offset.lua")
COMMITTED = function("committed_offset.lua")
FORGET = function("forget_offset.lua")
SAVE_MEMBERSHIP = function("save_membership.lua")


def _member(topic: str, partition: int) -> str:
    # Topic names never contain ':' (Kafka allows [a-zA-Z0-9._-]).
    return f"{topic}:{partition}"


def _parse_member(raw: bytes) -> tuple[str, int]:
    topic, _, partition = raw.decode().rpartition(":")
    return topic, int(partition)


class RedisGroupStorage(StoreConnections):
    """Implements :class:`~.group_base.GroupStorage`.

    It has a connection pool of its own, so group traffic (heartbeat-paced
    commits, admin scans) never waits behind produce and fetch.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, max_connections: int = 32,
                 partition_keys: KeysOf | None = None, cluster: bool = False) -> None:
        # Where a topic's partitions live (RedisStorage.partition_keys knows
        # adopted streams); the gateway's own keys when not given.
        self._keys_of: KeysOf = partition_keys or _own_keys
        super().__init__(url, cluster=cluster, max_connections=max_connections, timeout=timeout)

    async def ping(self) -> None:
        await call_once(self._redis.ping)

    # -- offsets ----------------------------------------------------------------

    async def commit_offsets(self, group: str, commits: Sequence[OffsetCommit],
                             protocol_type: str | None, token: int | None = None) -> list[Exception | None]:
        if not commits:
            return []
        now = int(time.time() * 1000)
        fence = "" if token is None else token
        calls = []
        for c in commits:
            partition_keys = await self._keys_of(c.topic, c.partition)
            calls.append(ScriptCall(COMMIT, [*_commit_keys(partition_keys), partition_keys.fences],
                                    [group, c.offset, c.leader_epoch, now, c.metadata, fence]))
        # Register first: a partition with a commit must be findable, while
        # a registered partition without one is harmless (readers skip it).
        await call_once(lambda: self._register(group, commits, protocol_type))
        replies = await self._run_until_sought(calls)
        return [_error(reply) for reply in replies]

    async def _run_until_sought(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run script calls, repeating those whose seek yielded ({-3, *resume}) until they answer.

        A seek copies a bounded number of bytes per script call
        (lua/stream_info.lua), then stops where the next call goes on: at the
        index point it left, or at the position the reply hands back
        (``resume``, appended to the call's arguments). The others' replies
        are kept.
        """
        replies: list[Any] = [None] * len(calls)
        pending = dict(enumerate(calls))
        while pending:
            round_calls = list(pending.values())
            answered = await call_once(lambda: run_calls(self._scripts, round_calls))  # noqa: B023 (awaited at once)
            again = {}
            for index, reply in zip(pending, answered, strict=True):
                replies[index] = reply
                if _seek_yielded(reply):
                    call = calls[index]
                    again[index] = ScriptCall(call.script, call.keys, [*call.args, *reply[1:]])
            pending = again
        return replies

    async def _register(self, group: str, commits: Sequence[OffsetCommit],
                        protocol_type: str | None) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(keys.group_partitions(group), *{_member(c.topic, c.partition) for c in commits})
        if protocol_type:
            pipe.hset(keys.GROUPS, group, protocol_type)
        else:
            pipe.hsetnx(keys.GROUPS, group, "")
        await pipe.execute()

    async def fetch_offsets(self, group: str,
                            partitions: Sequence[tuple[str, int]]) -> list[CommittedOffset]:
        if not partitions:
            return []
        calls = [ScriptCall(COMMITTED, _commit_keys(await self._keys_of(topic, partition)), [group])
                 for topic, partition in partitions]
        replies = await self._run_until_sought(calls)
        results = []
        for (topic, partition), reply in zip(partitions, replies, strict=True):
            if isinstance(reply, Exception):
                raise classify(reply)
            offset, epoch, metadata = reply
            results.append(CommittedOffset(topic, partition, int(offset), int(epoch),
                                           _text(metadata)))
        return results

    async def committed_partitions(self, group: str) -> list[tuple[str, int]]:
        raw = await call_once(lambda: self._smembers(keys.group_partitions(group)))
        return sorted(_parse_member(member) for member in raw)

    async def _smembers(self, key: str) -> set[bytes]:
        members = await self._redis.smembers(key)  # type: ignore[misc]
        return {m if isinstance(m, bytes) else m.encode() for m in members}

    async def delete_offsets(self, group: str, partitions: Sequence[tuple[str, int]]) -> None:
        if not partitions:
            return
        calls = []
        for topic, partition in partitions:
            partition_keys = await self._keys_of(topic, partition)
            calls.append(ScriptCall(FORGET, [partition_keys.stream, partition_keys.commits], [group]))
        replies = await call_once(lambda: run_calls(self._scripts, calls))
        for reply in replies:
            if isinstance(reply, Exception):
                raise classify(reply)
        members = [_member(t, p) for t, p in partitions]
        await call_once(lambda: self._redis.srem(keys.group_partitions(group), *members))  # type: ignore[misc]

    # -- the registry -------------------------------------------------------------

    async def groups(self) -> Mapping[str, str]:
        raw: dict[bytes, bytes] = await call_once(
            lambda: self._redis.hgetall(keys.GROUPS)  # type: ignore[arg-type,return-value]
        )
        return {name.decode(): value.decode() for name, value in raw.items()}

    async def group_protocol_type(self, group: str) -> str | None:
        raw = await call_once(lambda: self._hget(keys.GROUPS, group))
        return None if raw is None else raw.decode()

    async def _hget(self, key: str, field: str) -> bytes | None:
        value = await self._redis.hget(key, field)  # type: ignore[misc]
        return value.encode() if isinstance(value, str) else value

    async def register_group(self, group: str, protocol_type: str) -> None:
        await call_once(lambda: self._redis.hset(keys.GROUPS, group, protocol_type))  # type: ignore[misc]

    # -- membership ---------------------------------------------------------------

    async def save_membership(self, group: str, generation: int, state: bytes,
                              token: int | None = None) -> bool:
        args = [generation, state] if token is None else [generation, state, token]
        call = ScriptCall(SAVE_MEMBERSHIP, [keys.group_membership(group)], args)
        (reply,) = await call_once(lambda: run_calls(self._scripts, [call]))
        if isinstance(reply, Exception):
            raise classify(reply)
        if reply == -1:
            raise Fenced(f"group {group}: a later coordinator holds the lease (token {token} is stale)")
        return bool(reply)

    async def load_membership(self, group: str) -> bytes | None:
        return await call_once(lambda: self._hget(keys.group_membership(group), "state"))

    async def delete_group(self, group: str) -> None:
        await self.delete_offsets(group, await self.committed_partitions(group))

        async def unregister() -> None:
            pipe = self._redis.pipeline(transaction=False)
            # One key per DEL: on a Redis Cluster the two live in different slots.
            pipe.delete(keys.group_partitions(group))
            # The coordinator's lease stays, so its fencing token never goes back.
            pipe.hdel(keys.group_membership(group), "generation", "state")
            pipe.hdel(keys.GROUPS, group)
            await pipe.execute()

        await call_once(unregister)


async def _own_keys(topic: str, partition: int) -> keys.PartitionKeys:
    return keys.own_partition_keys(topic, partition)


def _commit_keys(partition_keys: keys.PartitionKeys) -> list[str]:
    return [partition_keys.stream, partition_keys.index, partition_keys.commits, partition_keys.meta]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _seek_yielded(reply: Any) -> bool:
    return isinstance(reply, list) and bool(reply) and reply[0] == -3


def _error(reply: Any) -> Exception | None:
    if isinstance(reply, list) and reply and reply[0] == -4:
        return Fenced("a later coordinator of the group committed on this partition")
    return classify(reply) if isinstance(reply, Exception) else None

