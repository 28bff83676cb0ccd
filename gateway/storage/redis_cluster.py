"""Redis Cluster, found from the server itself, and the hot path routed by slot.

``is_cluster`` asks the node of ``--redis-url`` whether it runs in cluster
mode (``INFO cluster``); the gateway then talks to every primary.

``ClusterConnection`` offers MultiplexedConnection's ``execute`` over a
cluster: one pipelined connection per primary, each request's commands
grouped per node and sent to all nodes at once, replies put back in the
caller's order. Every command the hot path sends touches one slot (a
partition's keys share a hash tag, keys.py); a MULTI ... EXEC block goes
whole to the node of its commands' slot.

Resharding: a node that no longer serves a slot answers MOVED and runs
nothing, so the commands it refused are sent again, in their order, to the
node the refreshed slot map names. ASK (a slot being migrated, the key
already moved) is followed for that one command with ASKING first, without
changing the map. TRYAGAIN (a multi-key call whose keys are half-migrated)
also ran nothing and is left to the caller as a retriable error. Each
request follows at most MAX_REDIRECTS redirections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from .errors import call_once, classify
from .multiplex import BlockingPool, MultiplexedConnection

SLOTS = 16384
# Redirections one request follows before it answers the last error.
MAX_REDIRECTS = 5
# Commands that wait for the writes made before them on their connection.
WAITS = frozenset({"WAITAOF", "WAIT"})
# Idle connections kept per node for requests that end with one of them.
MAX_IDLE_WAITING = 16
# One command, or a whole MULTI ... EXEC block: (start, end, slot).
Unit = tuple[int, int, int]


async def is_cluster(url: str, *, timeout: float = 5.0) -> bool:
    """Whether the server at ``url`` runs in cluster mode (``cluster_enabled:1``).

    Raises StorageUnavailable when it cannot be asked (refused, timed out, loading).
    """
    if not MultiplexedConnection.supports(url):
        return False
    connection = MultiplexedConnection(url, timeout=timeout)
    try:
        (info,) = await call_once(lambda: connection.execute([("INFO", "cluster")]))
    finally:
        connection.close()
    if isinstance(info, Exception):
        raise classify(info)
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_enabled:1" in text


def redis_client(url: str, *, cluster: bool, max_connections: int, timeout: float,
                 connection_class: type[aioredis.Connection] = aioredis.Connection) -> aioredis.Redis:
    """redis-py's client for the commands off the hot path; a RedisCluster on a cluster.

    Typed as Redis: both offer the same commands, and what only one has
    (the pool, pipelines with WATCH) is reached through helpers here.
    """
    if cluster:
        return RedisCluster.from_url(  # type: ignore[return-value]
            url, max_connections=max_connections, socket_timeout=timeout,
            socket_connect_timeout=timeout)
    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        url, connection_class=connection_class, max_connections=max_connections, timeout=timeout,
        socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30))


class StoreConnections:
    """A store's own small pool (redis-py) and, on a Redis Cluster, the router for its function calls.

    For the stores beside RedisStorage (broker registry, groups): their
    traffic never waits behind produce and fetch.
    """

    def __init__(self, url: str, *, cluster: bool, max_connections: int, timeout: float) -> None:
        self._redis = redis_client(url, cluster=cluster, max_connections=max_connections,
                                   timeout=timeout)
        # Function calls: on a Redis Cluster routed to their slot's node (ClusterConnection).
        self._cluster = ClusterConnection(url, timeout=timeout) if cluster else None
        self._scripts: aioredis.Redis | ClusterConnection = (
            self._cluster if self._cluster is not None else self._redis)

    async def close(self) -> None:
        await self._redis.aclose()
        if self._cluster is not None:
            self._cluster.close()


async def drop_idle_connections(client: aioredis.Redis) -> None:
    """After Redis went away: let the next commands connect afresh."""
    if isinstance(client, RedisCluster):
        return  # redis-py's cluster client reconnects and re-reads the slot map itself
    await client.connection_pool.disconnect(inuse_connections=False)


def command_key(command: Sequence[Any]) -> Any:
    """The key that decides a command's slot; None for MULTI, EXEC and keyless commands."""
    name = str(command[0]).upper()
    if name in ("MULTI", "EXEC", "ASKING"):
        return None
    if name in ("FCALL", "FCALL_RO", "EVALSHA", "EVAL"):
        return command[3] if int(command[2]) > 0 else None
    if name == "XREAD":
        upper = [str(part).upper() for part in command]
        return command[upper.index("STREAMS") + 1]
    return command[1] if len(command) > 1 else None


def slot_of(key: Any) -> int:
    return int(key_slot(key if isinstance(key, bytes) else str(key).encode()))


def _units(commands: Sequence[Sequence[Any]]) -> list[Unit]:
    """The commands as units (start, end, slot): one command, or a whole MULTI ... EXEC block."""
    units: list[Unit] = []
    index = 0
    while index < len(commands):
        end = index + 1
        if str(commands[index][0]).upper() == "MULTI":
            while end < len(commands) and str(commands[end - 1][0]).upper() != "EXEC":
                end += 1
        key = next((k for k in map(command_key, commands[index:end]) if k is not None), None)
        units.append((index, end, 0 if key is None else slot_of(key)))
        index = end
    return units


def _address(node: Sequence[Any], asked: str) -> str:
    """A CLUSTER SLOTS node's "host:port"; an empty or "?" host is the node asked."""
    host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
    return f"{host}:{int(node[1])}" if host and host != "?" else f"{asked.rpartition(':')[0]}:{int(node[1])}"


def _weakest(waited: Sequence[Any]) -> Any:
    """The WAITAOF or WAIT reply that confirms least: every node must have confirmed."""
    errors = [reply for reply in waited if isinstance(reply, Exception)]
    if errors or not waited:
        return errors[0] if errors else 0
    if isinstance(waited[0], list):
        return [min(int(reply[0]) for reply in waited), min(int(reply[1]) for reply in waited)]
    return min(int(reply) for reply in waited)


def _redirect(replies: Sequence[Any]) -> tuple[str, int, str] | None:
    """A unit's MOVED or ASK: (kind, slot, "host:port"), or None."""
    for reply in replies:
        # redis-py's MovedError is an AskError; both drop the prefix from their text.
        if isinstance(reply, redis_errors.AskError):
            kind = "MOVED" if isinstance(reply, redis_errors.MovedError) else "ASK"
            return kind, int(reply.slot_id), f"{reply.host}:{reply.port}"
        if isinstance(reply, Exception):  # hiredis's errors inside an EXEC reply keep it
            words = str(reply).split()
            if len(words) == 3 and words[0] in ("MOVED", "ASK"):
                return words[0], int(words[1]), words[2]
        if isinstance(reply, list):
            found = _redirect(reply)
            if found is not None:
                return found
    return None


class ClusterConnection:
    """MultiplexedConnection's interface over the primaries of a Redis Cluster."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._seed = urlsplit(url)
        # slot -> "host:port" of its primary; empty until the first request.
        self._slots: list[str] = []
        # Every node a slot map named, primaries and replicas: who to ask for the next map.
        self._known: set[str] = set()
        self._nodes: dict[str, MultiplexedConnection] = {}
        self._waits: dict[str, BlockingPool] = {}
        # Per node: idle connections for requests that end with WAITAOF/WAIT.
        self._waiting: dict[str, list[MultiplexedConnection]] = {}
        self._refreshing: asyncio.Future[None] | None = None

    def node_url(self, address: str) -> str:
        """The seed URL with another host:port (same credentials and TLS settings; a cluster
        has database 0 only)."""
        credentials = self._seed.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{address}" if credentials else address
        return urlunsplit((self._seed.scheme, netloc, "", self._seed.query, ""))

    def _node(self, address: str) -> MultiplexedConnection:
        connection = self._nodes.get(address)
        if connection is None:
            connection = self._nodes[address] = MultiplexedConnection(
                self.node_url(address), timeout=self.timeout)
        return connection

    async def _slot_map(self) -> list[str]:
        """The slot map, read first if a failure forgot it (even while this caller waited)."""
        while not self._slots:
            await self.refresh()
        return self._slots

    async def primaries(self) -> list[str]:
        """Every primary's "host:port", as of the slot map."""
        return sorted(set(await self._slot_map()))

    async def connection_to(self, address: str) -> MultiplexedConnection:
        return self._node(address)

    async def node_of(self, key: Any) -> str:
        return (await self._slot_map())[slot_of(key)]

    async def refresh(self) -> None:
        """Read the slot map again (CLUSTER SLOTS); concurrent callers share one read."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._read_slots())
        refreshing = self._refreshing
        try:
            await asyncio.shield(refreshing)
        finally:
            if refreshing.done() and self._refreshing is refreshing:
                self._refreshing = None

    async def _read_slots(self) -> None:
        seed = f"{self._seed.hostname}:{self._seed.port or 6379}"
        # Any node answers: the primaries of the map, every node seen (a
        # forgotten map after a failure still leaves them), the seed.
        candidates = [*sorted(set(self._slots)), *sorted(self._known), seed]
        last: Exception = redis_errors.ConnectionError("no cluster node reachable")
        for address in dict.fromkeys(candidates):
            try:
                (reply,) = await self._node(address).execute([("CLUSTER", "SLOTS")])
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                last = exc
                continue
            if isinstance(reply, Exception):
                last = reply
                continue
            self._slots = self._parse_slots(reply, address)
            return
        raise last

    def _parse_slots(self, reply: Sequence[Any], asked: str) -> list[str]:
        slots = [""] * SLOTS
        for start, end, primary, *replicas in reply:
            address = _address(primary, asked)
            self._known.update(_address(node, asked) for node in replicas)
            self._known.add(address)
            for slot in range(int(start), int(end) + 1):
                slots[slot] = address
        if "" in slots:
            raise redis_errors.ConnectionError("the cluster does not serve every slot")
        return slots

    async def execute(self, commands: Sequence[Sequence[Any]], *, extra_time: float = 0.0,
                      on_written: Callable[[], None] | None = None, replay: bool = False) -> list[Any]:
        """The commands' replies in order, each node's share sent at once (see the module)."""
        if not commands:
            return []
        slots = await self._slot_map()
        if str(commands[0][0]).upper() == "FUNCTION":
            return await self._on_every_primary(commands)
        trailer = commands[-1] if str(commands[-1][0]).upper() in WAITS else None
        body = commands[:-1] if trailer is not None else commands
        replies: list[Any] = [None] * len(body)
        targets = {unit: slots[unit[2]] for unit in _units(body)}
        asking: set[Unit] = set()
        waited: list[Any] = []
        for attempt in range(MAX_REDIRECTS + 1):
            waited += await self._send(body, trailer, targets, asking, replies, extra_time,
                                       on_written if attempt == 0 else None, replay)
            found = {unit: _redirect(replies[unit[0]:unit[1]]) for unit in targets}
            redirected = {unit: where for unit, where in found.items() if where is not None}
            if not redirected or attempt == MAX_REDIRECTS:
                break
            if any(kind == "MOVED" for kind, _, _ in redirected.values()):
                await self.refresh()
            slots = await self._slot_map()
            targets = {unit: address if kind == "ASK" else slots[unit[2]]
                       for unit, (kind, _, address) in redirected.items()}
            asking = {unit for unit, (kind, _, _) in redirected.items() if kind == "ASK"}
        if trailer is not None:
            replies.append(_weakest(waited))
        return replies

    async def _on_every_primary(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """FUNCTION LOAD and its kin: every primary needs the library (each runs its slots' calls).

        The first node's replies, unless another node answered an error the
        first did not (a library missing there is loaded all the same).
        """
        answers = await asyncio.gather(*(self._node(address).execute(commands)
                                         for address in await self.primaries()))
        replies = list(answers[0])
        for answer in answers[1:]:
            for index, reply in enumerate(answer):
                if isinstance(reply, Exception) and not isinstance(replies[index], Exception):
                    replies[index] = reply
        return replies

    async def _send(self, commands: Sequence[Sequence[Any]], trailer: Sequence[Any] | None,
                    targets: dict[Unit, str], asking: set[Unit], replies: list[Any],
                    extra_time: float, on_written: Callable[[], None] | None,
                    replay: bool) -> list[Any]:
        """Send each unit to its node (units keep their order per node); fill in their replies.

        With a ``trailer`` (WAITAOF or WAIT, which wait for the writes of
        their own connection) each node's share ends with it and goes on a
        connection of its own, not the shared one the trailer would block;
        returns the trailer's replies, one per node.
        """
        per_node: dict[str, list[Unit]] = {}
        for unit in sorted(targets):
            per_node.setdefault(targets[unit], []).append(unit)
        unwritten = len(per_node)
        waited: list[Any] = []

        def written() -> None:
            nonlocal unwritten
            unwritten -= 1
            if unwritten == 0 and on_written is not None:
                on_written()

        async def send(address: str, units: list[Unit]) -> None:
            batch: list[Sequence[Any]] = []
            for unit in units:
                if unit in asking:
                    batch.append(("ASKING",))
                batch += commands[unit[0]:unit[1]]
            if trailer is not None:
                batch.append(trailer)
            try:
                answered = await self._execute_on(address, batch, trailer is not None, extra_time,
                                                  written, replay)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                answered = [exc] * len(batch)
            position = 0
            for unit in units:
                position += unit in asking  # ASKING's own "OK"
                replies[unit[0]:unit[1]] = answered[position:position + unit[1] - unit[0]]
                position += unit[1] - unit[0]
            if trailer is not None:
                waited.append(answered[-1])

        await asyncio.gather(*(send(address, units) for address, units in per_node.items()))
        failed = [reply for reply in replies if isinstance(reply, (redis_errors.ConnectionError,
                                                                   redis_errors.TimeoutError))]
        if failed:
            # A node unreachable: its slots may have moved (failover); ask again next time.
            self._slots = []
            raise failed[0]
        return waited

    async def _execute_on(self, address: str, batch: Sequence[Sequence[Any]], waits: bool,
                          extra_time: float, on_written: Callable[[], None], replay: bool) -> list[Any]:
        if not waits:
            return await self._node(address).execute(batch, extra_time=extra_time,
                                                      on_written=on_written, replay=replay)
        idle = self._waiting.setdefault(address, [])
        connection = idle.pop() if idle else MultiplexedConnection(self.node_url(address),
                                                                   timeout=self.timeout)
        try:
            answered = await connection.execute(batch, extra_time=extra_time, on_written=on_written,
                                                replay=replay)
        except BaseException:
            connection.close()
            raise
        if len(idle) < MAX_IDLE_WAITING:
            idle.append(connection)
        else:
            connection.close()
        return answered

    async def wait_any(self, streams: dict[Any, Any], timeout_ms: int) -> None:
        """XREAD BLOCK on each node for its streams (a cluster refuses a multi-slot XREAD).

        Returns when any node's XREAD returns (an entry, or its timeout); the
        others are cancelled, which closes their connections (BlockingPool).
        Streams of one node in different slots still cannot share one XREAD,
        so each slot gets its own.
        """
        slots = await self._slot_map()
        per_slot: dict[int, dict[Any, Any]] = {}
        for stream, last_id in streams.items():
            per_slot.setdefault(slot_of(stream), {})[stream] = last_id
        waits = []
        for slot, group in per_slot.items():
            address = slots[slot]
            pool = self._waits.get(address)
            if pool is None:
                pool = self._waits[address] = BlockingPool(self.node_url(address), timeout=self.timeout)
            command = ("XREAD", "COUNT", 1, "BLOCK", timeout_ms, "STREAMS", *group, *group.values())
            waits.append(asyncio.ensure_future(pool.execute(command, block_seconds=timeout_ms / 1000)))
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        for wait in done:
            reply = wait.result()
            if isinstance(reply, redis_errors.ResponseError) and _redirect([reply]) is not None:
                await self.refresh()  # the slot moved: the caller's next wait asks the right node

    def close(self) -> None:
        for connection in self._nodes.values():
            connection.close()
        for pool in self._waits.values():
            pool.close()
        for idle in self._waiting.values():
            for connection in idle:
                connection.close()
