"""Storage on Redis Streams (standalone Redis or Valkey 7.0+)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import hiredis
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from ..metrics import REDIS_LATENCY, REDIS_RECONNECTS
from . import keys
from .base import (
    AppendBatch,
    AppendRefused,
    AppendRequest,
    AppendResult,
    CompactionSettings,
    CompactionStats,
    InvalidStream,
    NotDurable,
    OffsetOutOfRange,
    OffsetQuery,
    OutcomeUnknown,
    PartitionOffsets,
    ReadRequest,
    ReadResult,
    StorageUnavailable,
    TimeOffset,
    TopicExists,
    TopicInfo,
    TopicNotFound,
    appends_ordered,
)
from .cursors import Cursor, Cursors, entries_wanted, read_result
from .entries import id_millis, id_sequence
from .epochs import LeaderEpochs
from .errors import UNAVAILABLE, classify, is_missing_function
from .multiplex import RECONNECT_PAUSE, BlockingPool, MultiplexedConnection
from .producer_state import PRODUCER_SCAN_STEP, ActiveProducer
from .producer_state import parse as parse_producer
from .redis_cluster import ClusterConnection, drop_idle_connections, redis_client
from .scripts import ScriptCall, function, library, load_library, run_calls
from .steps import PartitionTurns, append_pieces, fits_one_call, limits, may_fit_one_call, pieces_of
from .transactions import (
    NEEDS_PRODUCER_ID,
    NOTHING_TO_ABORT,
    SUMMARY_FIELDS,
    TRANSACTION_SCAN_STEP,
    Ending,
    InitResult,
    InitTransaction,
    Members,
    Producer,
    TransactionDescription,
    TransactionSummary,
    add_call,
    complete_call,
    end_call,
    expire_call,
    fence_call,
    summary,
)

T = TypeVar("T")

# An offset index point at least every INDEX_INTERVAL offsets and every
# INDEX_BYTES bytes of entries (append.lua; seeks through regions without
# points use the same spacing, lua/stream_info.lua), so a seek from a point
# copies at most about 256 KiB plus one entry.
INDEX_INTERVAL = 1024
INDEX_BYTES = 256 * 1024
TIMESTAMP_SCAN = 1000
# Scripts that seek answer "call again" once they have copied SEEK_BYTES of
# entries (lua/stream_info.lua), yielding Redis to other clients; these are
# their replies' markers.
READ_AGAIN = 2
DELETE_AGAIN = 2
# Entries one retention call may trim (whole stream nodes, freed without
# touching each entry); a bigger trim takes several calls.
RETENTION_TRIM_ENTRIES = 10_000
TOPIC_CACHE_SECONDS = 1.0


APPEND = function("append.lua")
READ = function("read.lua")
CURSOR = function("cursor.lua")
OFFSETS = function("offsets.lua")
EPOCHS = function("epochs.lua")
OFFSET_FOR_TIME = function("offset_for_time.lua")
DELETE_RECORDS = function("delete_records.lua")
RETENTION = function("retention.lua")
EXPIRE_PRODUCERS = function("expire_producers.lua")
COMPACT = function("compact.lua")
# The bounds of one compact.lua call: entries examined and bytes copied.
COMPACTION_STEP_ENTRIES = 250
COMPACTION_STEP_BYTES = 256 * 1024
# Producer states one expire_producers.lua call looks at (HSCAN COUNT): each
# is a few hundred bytes, so a call touches at most some tens of KiB.
PRODUCER_EXPIRY_STEP = 100



class RedisStorage:
    """Implements :class:`~.base.Storage` on one Redis server."""

    def __init__(self, url: str, *, timeout: float = 5.0, max_connections: int = 64,
                 cluster: bool = False) -> None:
        """``cluster``: the server is a Redis Cluster node (redis_cluster.is_cluster)."""
        self.url = url
        self.timeout = timeout
        self._redis = redis_client(url, cluster=cluster, max_connections=max_connections,
                                   timeout=timeout, connection_class=FastPackingConnection)
        # Long-polls hold a connection for their whole wait, so they get a pool
        # of their own and never starve produce and fetch of connections.
        self._blocking = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=1024,
                timeout=timeout,
                socket_connect_timeout=timeout,
            )
        )
        # On a Redis Cluster, every function call and the hot path go to their
        # slot's primary (redis_cluster.py); redis-py's cluster client cannot
        # route FCALL without asking the server for its keys.
        self._cluster = ClusterConnection(url, timeout=timeout) if cluster else None
        # Appends and reads, the produce and fetch hot path, share one
        # pipelined connection (multiplex.py: a fifth of redis-py's CPU per
        # round trip); acks=all appends, whose WAITAOF blocks, stay on the pool.
        self._fast: aioredis.Redis | MultiplexedConnection | ClusterConnection = (
            self._cluster if self._cluster is not None
            else MultiplexedConnection(url, timeout=timeout) if MultiplexedConnection.supports(url)
            else self._redis)
        # Long-poll waits on connections of their own, without redis-py's overhead.
        self._waits = (BlockingPool(url, timeout=timeout)
                       if MultiplexedConnection.supports(url) and not cluster else None)
        # Where in-order readers left off (cursors.py).
        self._cursors = Cursors()
        self._topic_cache: dict[str, tuple[float, TopicInfo | None]] = {}
        # Partitions that live in adopted streams, learnt from every registry read.
        self.streams = keys.StreamKeyMap()
        # Topic ID -> name, as of the last full registry read (and when).
        self._topic_names: dict[uuid.UUID, str] = {}
        self._topic_names_at = -TOPIC_CACHE_SECONDS
        # The command that makes acks=all wait (WAITAOF or WAIT), minus its
        # timeout; None when acks=all waits for nothing beyond the write.
        self._durability_wait: tuple[Any, ...] | None = None
        # Whether this process has made sure the function library is on the
        # server (at start, or before its first append).
        self._library_loaded = False
        # Appends to a partition wait for one in pieces before them (steps.py).
        self._turns = PartitionTurns()

    async def _call(self, operation: Callable[[], Awaitable[T]], *, idempotent: bool = False,
                    timed: bool = True) -> T:
        """Run a Redis operation; Redis unreachable becomes StorageUnavailable.

        After Redis restarts, every pooled connection is dead. The first
        failure drops the idle ones so later requests connect afresh, and an
        operation that is safe to repeat (it only reads, or writes what it
        would write again) is tried once more on a new connection. Appends
        are never repeated here: the failed attempt may have run, and only
        the producer (idempotent or not) may decide to send them again.

        ``timed`` feeds the Redis latency histogram; long polls opt out, as
        their time is the client's wait, not Redis's.
        """
        started = time.perf_counter()
        try:
            return await operation()
        except UNAVAILABLE as first:
            REDIS_RECONNECTS.inc()
            await drop_idle_connections(self._redis)
            if not idempotent:
                raise StorageUnavailable(str(first)) from first
            try:
                return await operation()
            except UNAVAILABLE as exc:
                raise StorageUnavailable(str(exc)) from exc
        finally:
            if timed:
                REDIS_LATENCY.observe(time.perf_counter() - started)

    @property
    def _scripts(self) -> aioredis.Redis | ClusterConnection:
        """Where function calls off the hot path go: redis-py, or the cluster's router."""
        return self._cluster if self._cluster is not None else self._redis  # type: ignore[return-value]

    @property
    def _slow(self) -> aioredis.Redis | ClusterConnection:
        """Where appends that wait (WAITAOF/WAIT) go: never the shared multiplexed connection."""
        return self._scripts

    async def _round(self, calls: list[ScriptCall]) -> list[Any]:
        return await self._call(lambda: run_calls(self._fast, calls), idempotent=True)

    async def _one(self, call: ScriptCall, *, idempotent: bool = True) -> Any:
        (reply,) = await self._call(lambda: run_calls(self._scripts, [call]), idempotent=idempotent)
        if isinstance(reply, Exception):
            raise classify(reply)
        return reply

    async def load_functions(self) -> str:
        """FUNCTION LOAD this version's library unless the server has it; its name."""
        await self._call(lambda: load_library(self._scripts), idempotent=True)
        self._library_loaded = True
        return library().name

    async def ping(self) -> None:
        await self._call(self._redis.ping, idempotent=True)

    async def server_info(self) -> dict[str, Any]:
        return await self._call(lambda: self._redis.info("server"), idempotent=True)

    async def close(self) -> None:
        await self._redis.aclose()
        await self._blocking.aclose()
        if isinstance(self._fast, (MultiplexedConnection, ClusterConnection)):
            self._fast.close()
        if self._waits is not None:
            self._waits.close()

    # -- cluster and topics -------------------------------------------------

    async def cluster_id(self) -> str:
        async def get() -> str:
            await self._redis.hsetnx(keys.CLUSTER, "id", uuid.uuid4().hex[:22])
            raw: bytes = await self._redis.hget(keys.CLUSTER, "id")  # type: ignore[assignment]
            return raw.decode()

        return await self._call(get, idempotent=True)

    async def topics(self) -> Mapping[str, TopicInfo]:
        raw: dict[bytes, bytes] = await self._call(
            lambda: self._redis.hgetall(keys.TOPICS),  # type: ignore[arg-type,return-value]
            idempotent=True,
        )
        found = {name.decode(): _decode_topic(name.decode(), value) for name, value in raw.items()}
        now = time.monotonic()
        for name, info in found.items():
            self._topic_cache[name] = (now, info)
            self.streams.learn(name, info.configs)
        for name in set(self.streams.adopted()) - set(found):
            self.streams.forget(name)
        self._topic_names = {info.topic_id: name for name, info in found.items()}
        self._topic_names_at = now
        return dict(sorted(found.items()))

    async def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        """A topic by its ID, from the same one-second cache as by name.

        Fetch and OffsetCommit name topics by ID from v13 and v10, so this is
        on the hot path: the whole registry is read at most once a second,
        or when an ID is not known yet.
        """
        fresh = time.monotonic() - self._topic_names_at < TOPIC_CACHE_SECONDS
        if not fresh or topic_id not in self._topic_names:
            await self.topics()
        name = self._topic_names.get(topic_id)
        info = None if name is None else await self.topic(name)
        return info if info is not None and info.topic_id == topic_id else None

    async def topic(self, name: str) -> TopicInfo | None:
        cached = self._topic_cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < TOPIC_CACHE_SECONDS:
            return cached[1]
        raw = await self._call(lambda: self._redis.hget(keys.TOPICS, name), idempotent=True)
        info = None if raw is None else _decode_topic(name, raw)
        self._topic_cache[name] = (time.monotonic(), info)
        self.streams.learn(name, {} if info is None else info.configs)
        return info

    async def create_topic(self, name: str, partitions: int, configs: Mapping[str, str]) -> TopicInfo:
        info = TopicInfo(name, uuid.uuid4(), partitions, dict(configs))
        adopted = keys.adopted_streams(configs)
        if adopted:
            await self._check_adoptable(name, adopted)
        created = await self._call(lambda: self._redis.hsetnx(keys.TOPICS, name, _encode_topic(info)))
        if not created:
            raise TopicExists(name)
        self._topic_cache[name] = (time.monotonic(), info)
        self.streams.learn(name, info.configs)
        return info

    async def partition_keys(self, topic: str, partition: int) -> keys.PartitionKeys:
        """A partition's keys, after a registry lookup (cached for a second)."""
        await self.topic(topic)
        return self.streams.partition(topic, partition)

    async def _check_adoptable(self, name: str, stream_keys: Sequence[str]) -> None:
        """Refuse keys that are not streams or that another topic already maps.

        Two gateways adopting one key at the same instant are not caught: the
        registry is in another slot than the streams, so no script sees both.
        """
        problem = keys.adoption_problem(stream_keys)
        if problem is None:
            types = await self._call(lambda: self._key_types(stream_keys), idempotent=True)
            problem = next((f"key {key!r} is a {kind}, not a stream"
                            for key, kind in zip(stream_keys, types, strict=True)
                            if kind not in ("stream", "none")), None)
        if problem is None:
            for other in (await self.topics()).values():
                taken = set(stream_keys) & set(keys.adopted_streams(other.configs))
                if taken and other.name != name:
                    problem = f"stream {sorted(taken)[0]!r} is already topic {other.name!r}"
        if problem is not None:
            raise InvalidStream(problem)

    async def _key_types(self, names: Sequence[str]) -> list[str]:
        pipe = self._redis.pipeline(transaction=False)
        for key in names:
            pipe.type(key)
        return [kind.decode() if isinstance(kind, bytes) else str(kind) for kind in await pipe.execute()]

    async def delete_topic(self, name: str) -> TopicInfo:
        info = await self._fresh_topic(name)
        removed = await self._call(lambda: self._redis.hdel(keys.TOPICS, name))
        if not removed:
            raise TopicNotFound(name)
        self._topic_cache.pop(name, None)
        adopted = keys.adopted_streams(info.configs)
        self.streams.forget(name)

        async def delete_keys() -> None:
            # One DEL per partition: a partition's keys share a slot, different
            # partitions need not.
            pipe = self._redis.pipeline(transaction=False)
            for partition in range(info.partitions):
                if partition < len(adopted):
                    # An adopted stream belongs to the native application that
                    # writes it: only the gateway's own keys go.
                    pipe.delete(*keys.adopted_partition_keys(adopted[partition]).auxiliary)
                else:
                    # The stream takes its Redis consumer groups with it.
                    pipe.delete(keys.stream(name, partition),
                                *keys.own_partition_keys(name, partition).auxiliary)
            await pipe.execute()

        await self._call(delete_keys)
        return info

    async def create_partitions(self, name: str, count: int) -> TopicInfo:
        info = await self._fresh_topic(name)
        return await self._replace_topic(info, replace(info, partitions=count))

    async def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicInfo:
        info = await self._fresh_topic(name)
        return await self._replace_topic(info, replace(info, configs=dict(configs)))

    async def _fresh_topic(self, name: str) -> TopicInfo:
        self._topic_cache.pop(name, None)
        info = await self.topic(name)
        if info is None:
            raise TopicNotFound(name)
        return info

    async def _replace_topic(self, old: TopicInfo, new: TopicInfo) -> TopicInfo:
        async def swap() -> bool:
            # Optimistic: WATCH the registry so a concurrent change (another
            # gateway) makes this one fail instead of being overwritten.
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(keys.TOPICS)
                current = await pipe.hget(keys.TOPICS, old.name)
                if current is None or _decode_topic(old.name, current) != old:
                    await pipe.unwatch()  # type: ignore[no-untyped-call]
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.hset(keys.TOPICS, old.name, _encode_topic(new))
                try:
                    await pipe.execute()
                except redis_errors.WatchError:
                    return False
                return True

        if not await self._call(swap):
            raise TopicNotFound(old.name)
        self._topic_cache[new.name] = (time.monotonic(), new)
        self.streams.learn(new.name, new.configs)
        return new

    # -- the log --------------------------------------------------------------

    async def configure_durability(self, local_fsync: bool, replicas: int) -> str:
        """Decide what acks=all waits for on this server; returns a description.

        WAITAOF (Redis 7.2+, Valkey) waits until the writes are fsynced to the
        local append-only file and/or reached replicas' AOFs; older servers
        only have WAIT (replicas' memory).
        """
        server = await self.server_info()
        # Valkey reports the Redis version it is compatible with (7.2.4+).
        version = tuple(int(part) for part in str(server.get("redis_version", "0.0")).split(".")[:2])
        has_waitaof = version >= (7, 2)
        persistence = await self._call(lambda: self._redis.info("persistence"), idempotent=True)
        aof = bool(int(persistence.get("aof_enabled", 0)))
        numlocal = 1 if local_fsync and aof else 0
        if has_waitaof and (numlocal or replicas):
            self._durability_wait = ("WAITAOF", numlocal, replicas)
            what = " and ".join(filter(None, [
                "fsynced to the append-only file" if numlocal else "",
                f"in the append-only file of {replicas} replica(s)" if replicas else ""]))
            description = f"acks=all waits until each write is {what} (WAITAOF)"
        elif replicas:
            self._durability_wait = ("WAIT", replicas)
            description = (f"acks=all waits until each write reached {replicas} replica(s) (WAIT); "
                           "this server has no WAITAOF (Redis < 7.2), so no fsync is awaited")
        else:
            self._durability_wait = None
            description = "acks=all is acknowledged once Redis has applied the write"
        if local_fsync and not aof:
            description += "; the append-only file is off, so nothing is fsynced"
        elif local_fsync and not has_waitaof:
            description += "; fsync is not awaited: this server has no WAITAOF (Redis < 7.2)"
        return description

    async def append(
        self, requests: Sequence[AppendRequest], *, durable_within_ms: int | None = None
    ) -> list[AppendResult | Exception]:
        """Append each partition's records; all partitions in one round trip.

        With ``durable_within_ms`` (acks=all) the same pipeline ends with the
        configured WAITAOF/WAIT, and appends it does not confirm in time come
        back as NotDurable. A partition's request too large for one bounded
        call, or to a partition where such a request is under way, goes in
        its turn in more calls (steps.py); the connection's next request then
        starts only when this one is answered.
        """
        trailer: tuple[Any, ...] = ()
        if durable_within_ms is not None and self._durability_wait is not None:
            trailer = (*self._durability_wait, max(durable_within_ms, 1))
        if not self._library_loaded:
            await self.load_functions()
        quick = [i for i, request in enumerate(requests)
                 if fits_one_call(request) and not self._turns.busy(self._stream_of(request))]
        if len(quick) == len(requests):
            return await self._append_in_one_round(requests, trailer, release_early=True)
        results: list[AppendResult | Exception] = [NotDurable()] * len(requests)
        quick_results = await self._append_in_one_round(
            [requests[i] for i in quick], trailer, release_early=False) if quick else []
        for i, result in zip(quick, quick_results, strict=True):
            results[i] = result
        for i, request in enumerate(requests):
            if i not in quick:
                async with self._turns.turn(self._stream_of(request)):
                    results[i] = await self._append_bounded(request, trailer)
        return results

    def _stream_of(self, request: AppendRequest) -> str:
        return self.streams.partition(request.topic, request.partition).stream

    def _append_call(self, request: AppendRequest, step: Sequence[Any]) -> ScriptCall:
        """append.lua for the request; ``step``: its arguments from ARGV[7] on."""
        return ScriptCall(
            APPEND,
            self.streams.partition(request.topic, request.partition).for_append,
            [INDEX_INTERVAL, INDEX_BYTES, request.producer_id, request.producer_epoch,
             request.first_sequence, request.last_sequence, *step,
             "compact" if self.streams.compacted(request.topic) else "-"],
        )

    async def _append_in_one_round(self, requests: Sequence[AppendRequest], trailer: tuple[Any, ...],
                                   *, release_early: bool, step: str = "-") -> list[AppendResult | Exception]:
        """Each request in one call ('-', or '+': {-4} comes back as AppendInPieces), one pipeline."""
        calls = [self._append_call(request, [step, *limits(), *_batch_args(request.batches)])
                 for request in requests]
        client = self._slow if trailer else self._fast
        idempotent = all(request.producer_id >= 0 for request in requests)
        try:
            replies = await self._send_appends(client, calls, trailer, idempotent,
                                               release_early=release_early)
        except (StorageUnavailable, OutcomeUnknown) as exc:
            return [exc] * len(calls)
        results = [_append_result(reply) for reply in replies[: len(calls)]]
        if trailer and not _durable(trailer, replies[-1]):
            results = [NotDurable() if isinstance(r, AppendResult) else r for r in results]
        return results

    async def _send_appends(self, client: aioredis.Redis | MultiplexedConnection | ClusterConnection,
                            calls: list[ScriptCall], trailer: tuple[Any, ...],
                            idempotent: bool, *, release_early: bool = True) -> list[Any]:
        """The appends' replies; StorageUnavailable if they surely did not run, else OutcomeUnknown.

        An idempotent producer's appends may run twice to the effect of once
        (append.lua answers a repeat with the original offset), so a lost
        reply is settled by running them again, within one more Redis
        timeout: the multiplexed connection replays them, in the order first
        sent and before anything else, on its next connection; on redis-py's
        pool (acks=all, one such request in flight per client connection)
        they run again on a fresh connection until Redis answers. A plain producer's appends
        are never repeated by the gateway: a lost reply is OutcomeUnknown.
        Nor is an append re-sent after "Function not found" (scripts.py).
        ``release_early``: once written, let the connection's next request
        start (storage.appends_ordered).
        """
        multiplexed = not isinstance(client, aioredis.Redis)
        written = not multiplexed  # redis-py does not say: assume they may have gone out
        release = appends_ordered.get() if multiplexed and release_early else None

        def on_written() -> None:
            nonlocal written
            written = True
            if release is not None:
                release()

        try:
            return await self._call(lambda: run_calls(client, calls, trailer, on_written,
                                                      resend_missing=False, replay=idempotent))
        except StorageUnavailable as exc:
            if not written:
                raise
            if idempotent and not multiplexed:
                return await self._run_again(calls, trailer, exc)
            raise OutcomeUnknown(f"Redis's reply was lost; the append may have run ({exc})") from exc

    async def _run_again(self, calls: list[ScriptCall], trailer: tuple[Any, ...],
                         lost: StorageUnavailable) -> list[Any]:
        """Idempotent appends whose reply was lost on the pool, run again until Redis answers.

        Within one Redis timeout, so a Redis that stays away costs a bounded wait;
        after it, OutcomeUnknown.
        """
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    try:
                        return await self._call(lambda: run_calls(self._redis, calls, trailer,
                                                                  resend_missing=False))
                    except StorageUnavailable as exc:
                        lost = exc
                        await asyncio.sleep(RECONNECT_PAUSE)
        except TimeoutError:
            pass
        raise OutcomeUnknown(f"Redis's reply was lost and Redis did not come back in time ({lost})")

    async def _append_bounded(self, request: AppendRequest,
                              trailer: tuple[Any, ...]) -> AppendResult | Exception:
        """One partition's append in calls that each keep within the bounds of steps.py."""
        if fits_one_call(request):
            return (await self._append_in_one_round([request], trailer, release_early=False))[0]
        if may_fit_one_call(request):
            (result,) = await self._append_in_one_round([request], trailer, release_early=False, step="+")
            if not isinstance(result, AppendInPieces):
                return result
        pieces = await pieces_of(request.batches, lambda args: self._check_records(request, args))
        if isinstance(pieces, Exception):
            return classify(pieces)
        return await append_pieces(pieces, lambda args: self._append_piece(request, args, trailer),
                                   classify)

    async def _check_records(self, request: AppendRequest, step: Sequence[Any]) -> Any:
        """A 'check' call of append.lua: it writes nothing, so it may be repeated."""
        fast = self._fast
        (reply,) = await self._call(lambda: run_calls(fast, [self._append_call(request, step)]),
                                    idempotent=True)
        return reply

    async def _append_piece(self, request: AppendRequest, step: Sequence[Any],
                            trailer: tuple[Any, ...]) -> Any:
        """One piece's call of append.lua; its reply, or the exception.

        Settled as any append when its reply is lost (_send_appends). With
        acks=all each piece waits for its own durability (WAITAOF waits for
        the writes of its connection): one not confirmed comes back as
        NotDurable, and the producer's retry resumes from there.
        """
        client = self._slow if trailer else self._fast
        try:
            replies = await self._send_appends(client, [self._append_call(request, step)], trailer,
                                               request.producer_id >= 0, release_early=False)
        except (StorageUnavailable, OutcomeUnknown) as exc:
            return exc
        if trailer and not isinstance(replies[0], Exception) and not _durable(trailer, replies[-1]):
            return NotDurable()
        return replies[0]

    async def new_producer_id(self) -> int:
        # INCR on one counter every gateway shares: IDs stay unique across
        # restarts and gateways. Not repeated on failure (it may have run;
        # a skipped ID costs nothing).
        return int(await self._call(lambda: self._redis.incr(keys.PRODUCER_IDS)))

    async def init_transaction(self, request: InitTransaction) -> InitResult:
        """InitProducerId for a transactional ID (txn_init.lua).

        A fresh producer ID is taken only when the script asks for one (a new
        transactional ID, or its ID's epochs used up), so at most two calls.
        Not repeated on failure: the first may have bumped the epoch.
        """
        fresh: int | None = None
        for _ in range(2):
            reply = await self._one(request.call(fresh), idempotent=False)
            if int(reply[0]) != NEEDS_PRODUCER_ID:
                break
            fresh = await self.new_producer_id()
        else:
            raise RuntimeError("txn_init.lua asked twice for a fresh producer ID")
        if int(reply[0]) != 0:
            # ONGOING (the caller aborts that transaction first) or a Kafka error code.
            return InitResult(int(reply[0]))
        await self._call(lambda: self._redis.hset(keys.TRANSACTIONS, request.transactional_id, 1),  # type: ignore[misc]
                         idempotent=True)
        return InitResult(0, int(reply[1]), int(reply[2]))

    async def transaction_summaries(
            self, transactional_ids: Sequence[str]) -> list[TransactionSummary | None]:
        """Each ID's producer ID, state and start, in one pipelined round."""
        async def read() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for transactional_id in transactional_ids:
                pipe.hmget(keys.transaction(transactional_id), SUMMARY_FIELDS)
            return list(await pipe.execute())

        replies = await self._call(read, idempotent=True)
        return [summary(transactional_id, fields)
                for transactional_id, fields in zip(transactional_ids, replies, strict=True)]

    async def describe_transaction(self, transactional_id: str) -> TransactionDescription | None:
        """The ID's state (one HGETALL: at most MAX_TRANSACTION_MEMBERS members and a few fields)."""
        fields = await self._call(lambda: self._redis.hgetall(keys.transaction(transactional_id)),  # type: ignore[misc]
                                  idempotent=True)
        return TransactionDescription.parse(fields)

    async def now_ms(self) -> int:
        """Redis's clock, which stamps transactions' start (ms)."""
        seconds, micros = await self._call(self._redis.time, idempotent=True)
        return int(seconds) * 1000 + int(micros) // 1000

    async def transactional_ids(self, cursor: int) -> tuple[int, list[str]]:
        """A step through every transactional ID with state (HSCAN): the next cursor (0: done), IDs."""
        next_cursor, found = await self._call(
            lambda: self._redis.hscan(keys.TRANSACTIONS, cursor, count=TRANSACTION_SCAN_STEP),  # type: ignore[misc]
            idempotent=True)
        return int(next_cursor), [name.decode() if isinstance(name, bytes) else name for name in found]

    async def add_to_transaction(self, producer: Producer, members: Sequence[str]) -> int:
        """txn_add.lua: the members join the producer's transaction; a Kafka error code, 0 when added.

        Repeated when the reply is lost: adding twice adds once.
        """
        return int(await self._one(add_call(producer, list(members))))

    async def end_transaction(self, producer: Producer, commit: bool) -> Ending | int:
        """txn_end.lua: the transaction prepared to end (its members to write the outcome to),
        or a Kafka error code (0: it ended so already)."""
        reply = await self._one(end_call(producer, commit))
        if int(reply[0]) != 0 or len(reply) == 1:
            return int(reply[0])
        return Ending(producer, commit, Members.parse(reply[1:]))

    async def fence_transaction(self, transactional_id: str, fencing_token: int | None,
                                reason: str) -> Ending | int | None:
        """txn_fence.lua: the Ongoing transaction to abort, with the producer's new epoch; None
        when there is none (or it has not timed out), or NOT_COORDINATOR."""
        reply = await self._one(fence_call(transactional_id, fencing_token, reason), idempotent=False)
        if int(reply[0]) == NOTHING_TO_ABORT:
            return None
        if int(reply[0]) != 0:
            return int(reply[0])
        producer = Producer(transactional_id, int(reply[1]), int(reply[2]), fencing_token)
        return Ending(producer, False, Members.parse(reply[3:]))

    async def expire_transaction(self, transactional_id: str, fencing_token: int | None,
                                 expiration_ms: int) -> bool:
        """Forget an ID unused for ``expiration_ms`` (txn_expire.lua); whether it was.

        Out of the registry first, back in when the script finds the ID in
        use: an InitProducerId meanwhile writes the registry after its state,
        so the ID is never left in use and unregistered.
        """
        await self._call(lambda: self._redis.hdel(keys.TRANSACTIONS, transactional_id),  # type: ignore[misc]
                         idempotent=True)
        expired = False
        try:
            expired = int(await self._one(expire_call(transactional_id, fencing_token, expiration_ms),
                                          idempotent=False)) == 1
        finally:
            if not expired:
                await self._call(lambda: self._redis.hset(keys.TRANSACTIONS, transactional_id, 1),  # type: ignore[misc]
                                 idempotent=True)
        return expired

    async def complete_transaction(self, ending: Ending) -> int:
        """txn_complete.lua, once the outcome is written everywhere: a Kafka error code, 0 when done."""
        return int(await self._one(complete_call(ending)))

    async def read(self, requests: Sequence[ReadRequest]) -> list[ReadResult | Exception]:
        """Read each partition from its offset; all partitions in one round trip.

        Partitions read where a previous read left off continue with a plain
        XRANGE after the remembered entry (cursors.py); the others, and any
        whose cursor turns out stale, go through read.lua in a second round.
        """
        results: list[ReadResult | Exception | None] = [None] * len(requests)
        await self._read_after_cursors(requests, results)
        pending = [index for index, result in enumerate(results) if result is None]
        while pending:
            calls = [self._read_call(requests[index]) for index in pending]
            replies = await self._round(calls)
            again = []
            for index, reply in zip(pending, replies, strict=True):
                if isinstance(reply, list) and reply[0] == READ_AGAIN:
                    again.append(index)  # a long seek yielded; continue it
                else:
                    results[index] = self._read_result(requests[index], reply)
            pending = again
        return [result for result in results if result is not None]

    async def _read_after_cursors(self, requests: Sequence[ReadRequest],
                                  results: list[ReadResult | Exception | None]) -> None:
        """Fill in the results of the requests that continue a cursor; leave the rest None."""
        fast = self._fast
        if isinstance(fast, aioredis.Redis):
            return
        continuing: list[tuple[int, str]] = []
        commands: list[tuple[Any, ...]] = []
        for index, request in enumerate(requests):
            if request.max_records == 0:
                continue  # offsets only: read.lua answers without a seek
            partition = self.streams.partition(request.topic, request.partition)
            stream = partition.stream
            cursor = self._cursors.find(stream, request.offset)
            if cursor is None:
                continue
            continuing.append((index, stream))
            # MULTI/EXEC: nothing (a trim, a DeleteRecords) may run between the
            # check and the XRANGE, or the entries would get the wrong offsets.
            # One write keeps other callers' commands out of the transaction.
            commands += [
                ("MULTI",),
                ScriptCall(CURSOR, [stream, partition.meta], [request.offset, cursor.after_id]).command(),
                ("XRANGE", stream, b"(" + cursor.after_id, "+", "COUNT", entries_wanted(request, cursor)),
                ("EXEC",),
            ]
        if not commands:
            return
        replies = await self._call(lambda: fast.execute(commands), idempotent=True)
        for n, (index, stream) in enumerate(continuing):
            executed = replies[4 * n + 3]
            if not isinstance(executed, list):
                continue  # read.lua answers this one
            check, entries = executed
            if is_missing_function(check):
                await load_library(fast)
            if isinstance(check, Exception) or isinstance(entries, Exception) or int(check[0]) == 3:
                continue  # read.lua answers this one
            status, start, end, last_id, sparse, epochs = check
            if int(sparse) and entries and id_sequence(entries[0][0]) < requests[index].offset:
                # A compacted topic's cursor may name a removed entry, so its
                # existence is not checked; an entry after it below the offset
                # means the stream is another one (the topic re-created).
                continue  # read.lua answers this one
            results[index] = self._remember(stream, requests[index], *_with_epochs(read_result(
                requests[index], int(status), int(start), int(end), last_id, entries, bool(int(sparse))),
                epochs))

    def _read_result(self, request: ReadRequest, reply: Any) -> ReadResult | Exception:
        if isinstance(reply, Exception):
            return classify(reply)
        status, start, end, last_id, entries, sparse, epochs = reply
        stream = self.streams.stream(request.topic, request.partition)
        return self._remember(stream, request, *_with_epochs(read_result(
            request, int(status), int(start), int(end), last_id, entries, bool(int(sparse))), epochs))

    def _remember(self, stream: str, request: ReadRequest, result: ReadResult,
                  cursor: Cursor | None) -> ReadResult:
        if cursor is not None:
            self._cursors.remember(stream, result.next_offset, cursor)
        return result

    def _read_call(self, request: ReadRequest) -> ScriptCall:
        partition = self.streams.partition(request.topic, request.partition)
        return ScriptCall(
            READ,
            [partition.stream, partition.index, partition.meta],
            [request.offset, request.max_records, request.max_bytes, int(request.min_one)],
        )

    async def wait_for_entries(
        self, positions: Sequence[tuple[str, int, bytes]], timeout_ms: int
    ) -> None:
        """Return when any stream has an entry after its position, or at timeout.

        XREAD BLOCK wakes on any append to the streams, the gateway's own or a
        native producer's, so nobody polls.
        """
        if not positions or timeout_ms <= 0:
            return
        streams: dict[Any, Any] = {
            self.streams.stream(topic, partition): last_id for topic, partition, last_id in positions
        }
        if self._cluster is not None:
            await self._call(lambda: self._cluster.wait_any(streams, timeout_ms),  # type: ignore[union-attr]
                             timed=False)
            return
        waits = self._waits
        if waits is None:
            await self._call(lambda: self._blocking.xread(streams, count=1, block=timeout_ms), timed=False)
            return
        command = ("XREAD", "COUNT", 1, "BLOCK", timeout_ms, "STREAMS", *streams, *streams.values())
        reply = await self._call(lambda: waits.execute(command, block_seconds=timeout_ms / 1000),
                                 timed=False)
        if isinstance(reply, Exception):
            raise classify(reply)

    async def list_offsets(
        self, queries: Sequence[OffsetQuery]
    ) -> list[PartitionOffsets | TimeOffset | Exception]:
        """Each partition's offsets, or its offset for a time; all in one round trip.

        A time lookup that examined TIMESTAMP_SCAN entries without an answer
        goes on in a further round, for those partitions only.
        """
        results: list[PartitionOffsets | TimeOffset | Exception | None] = [None] * len(queries)
        after: dict[int, bytes] = {}
        resume: dict[int, tuple[bytes, bytes]] = {}
        pending = list(range(len(queries)))
        while pending:
            replies = await self._round([self._offsets_call(queries[i], after.get(i), resume.get(i))
                                         for i in pending])
            again = []
            for index, reply in zip(pending, replies, strict=True):
                if isinstance(reply, Exception):
                    results[index] = classify(reply)
                elif queries[index].timestamp is None:
                    results[index] = _partition_offsets(reply)
                elif int(reply[0]) == -2:
                    after[index] = reply[1]  # scanned as far as one call may without an answer
                    again.append(index)
                elif int(reply[0]) == -3:
                    resume[index] = (reply[1], reply[2])  # a seek yielded: go on from where it stopped
                    again.append(index)
                else:
                    results[index] = TimeOffset(int(reply[0]), int(reply[1]))
            pending = again
        return [result for result in results if result is not None]

    def _offsets_call(self, query: OffsetQuery, after: bytes | None,
                      resume: tuple[bytes, bytes] | None) -> ScriptCall:
        partition_keys = self.streams.partition(query.topic, query.partition)
        if query.timestamp is None:
            return ScriptCall(OFFSETS, [partition_keys.stream, partition_keys.meta], [])
        return ScriptCall(
            OFFSET_FOR_TIME, [partition_keys.stream, partition_keys.index, partition_keys.meta],
            [query.timestamp, TIMESTAMP_SCAN, int(query.by_append_time), after or "", *(resume or ())])

    async def leader_epochs(
        self, partitions: Sequence[tuple[str, int]]
    ) -> list[tuple[int, LeaderEpochs] | Exception]:
        """Each partition's end offset and leader epochs; all in one round trip."""
        calls = []
        for topic, partition in partitions:
            partition_keys = self.streams.partition(topic, partition)
            calls.append(ScriptCall(EPOCHS, [partition_keys.stream, partition_keys.meta], []))
        replies = await self._round(calls)
        return [classify(reply) if isinstance(reply, Exception)
                else (int(reply[0]), LeaderEpochs.parse(reply[1])) for reply in replies]

    async def delete_records(self, topic: str, partition: int, offset: int) -> int:
        """Trim a partition so that ``offset`` (-1: the end) is its log start; the new log start.

        Raises OffsetOutOfRange when the offset is past the end offset.
        """
        call = ScriptCall(DELETE_RECORDS, self._stream_index_meta(topic, partition), [offset])
        status, start = await self._one(call, idempotent=True)
        while int(status) == DELETE_AGAIN:  # a seek yielded; each call goes on from where it stopped
            status, start = await self._one(call, idempotent=True)
        if int(status) == 1:
            raise OffsetOutOfRange(int(start))
        return int(start)

    async def apply_retention(
        self, topic: str, partition: int, retention_ms: int, retention_bytes: int
    ) -> int:
        """Trim a partition by age (entry ID time) and approximate size; the new log start.

        Each script call trims at most RETENTION_TRIM_ENTRIES; calls repeat
        until nothing more is due.
        """
        call = ScriptCall(RETENTION, self._stream_index_meta(topic, partition),
                          [retention_ms, retention_bytes, RETENTION_TRIM_ENTRIES])
        start, more = await self._one(call, idempotent=True)
        while int(more):
            start, more = await self._one(call, idempotent=True)
        return int(start)

    async def compact(self, topic: str, partition: int, settings: CompactionSettings) -> CompactionStats:
        """Compact a partition of a compacted topic, in calls of bounded work (compact.lua).

        Each call examines at most COMPACTION_STEP_ENTRIES entries and copies
        at most COMPACTION_STEP_BYTES; calls repeat, other clients served in
        between, until the pass is done. A partition with no pass due costs
        one call of a few O(1) commands.
        """
        keys_ = self.streams.partition(topic, partition).for_compaction
        call = ScriptCall(COMPACT, keys_, [
            settings.min_lag_ms, settings.max_lag_ms, settings.segment_ms,
            repr(settings.min_dirty_ratio), settings.delete_retention_ms,
            COMPACTION_STEP_ENTRIES, COMPACTION_STEP_BYTES])
        examined = removed = calls = 0
        more = 1
        while more:
            more, seen, gone = (int(n) for n in await self._one(call, idempotent=True))
            examined, removed, calls = examined + seen, removed + gone, calls + 1
        return CompactionStats(examined, removed, calls)

    async def expire_producers(self, topic: str, partition: int, cursor: str,
                               expiration_ms: int) -> tuple[str, int]:
        """One bounded step of forgetting producers idle on a partition for ``expiration_ms``.

        Returns the cursor of the next step ("0": the partition is done) and
        how many producers this step forgot.
        """
        producers = self.streams.partition(topic, partition).producers
        next_cursor, removed = await self._one(
            ScriptCall(EXPIRE_PRODUCERS, [producers], [cursor, PRODUCER_EXPIRY_STEP, expiration_ms]),
            idempotent=True)
        return (next_cursor.decode() if isinstance(next_cursor, bytes) else str(next_cursor)), int(removed)

    async def active_producers(self, topic: str, partition: int,
                               cursor: int) -> tuple[int, list[ActiveProducer]]:
        """One step through the idempotent producers' state on a partition (HSCAN): the next
        cursor (0: done) and the producers."""
        producers = self.streams.partition(topic, partition).producers
        next_cursor, found = await self._call(
            lambda: self._redis.hscan(producers, cursor, count=PRODUCER_SCAN_STEP),  # type: ignore[misc]
            idempotent=True)
        pairs = found.items() if isinstance(found, dict) else zip(found[::2], found[1::2], strict=True)
        return int(next_cursor), [parse_producer(name, raw) for name, raw in pairs]

    def _stream_index_meta(self, topic: str, partition: int) -> list[str]:
        partition_keys = self.streams.partition(topic, partition)
        return [partition_keys.stream, partition_keys.index, partition_keys.meta]


class FastPackingConnection(aioredis.Connection):
    """redis-py's asyncio connection with hiredis's C command packer.

    Profiling a produce run showed redis-py's pure-Python RESP packing as the
    gateway's largest cost (a produce batch is thousands of script
    arguments); the synchronous client already uses hiredis for this.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:
            args = (*args[0].split(), *args[1:])  # "SCRIPT LOAD" is two words on the wire
        return [hiredis.pack_command(args)]


def _encode_topic(info: TopicInfo) -> str:
    return json.dumps(
        {"id": str(info.topic_id), "partitions": info.partitions, "configs": dict(info.configs)},
        sort_keys=True,
    )


def _decode_topic(name: str, raw: bytes | str) -> TopicInfo:
    data = json.loads(raw)
    return TopicInfo(name, uuid.UUID(data["id"]), int(data["partitions"]), data.get("configs", {}))


def _batch_args(batches: Sequence[AppendBatch]) -> list[Any]:
    """append.lua's arguments for the batches: their count, then five per batch."""
    args: list[Any] = [len(batches)]
    for batch in batches:
        args += (batch.record_count, batch.base_timestamp, batch.max_timestamp,
                 int(batch.log_append_time), batch.records)
    return args


class AppendInPieces(Exception):
    """append.lua's {-4}: the request is beyond one call's limits; nothing was written."""


def _append_result(reply: Any) -> AppendResult | Exception:
    if isinstance(reply, Exception):
        return classify(reply)
    if int(reply[0]) == -4:
        return AppendInPieces()
    if int(reply[0]) == -1:
        message = reply[2].decode("utf-8", "replace") if len(reply) > 2 else None
        return AppendRefused(int(reply[1]), message)
    if reply[1] is None:  # the script's false: a retried batch already appended
        return AppendResult(int(reply[0]), int(reply[3]), int(reply[2]), duplicate=True)
    base_offset, first_id, log_start = reply
    return AppendResult(int(base_offset), id_millis(first_id), int(log_start))


def _partition_offsets(reply: Any) -> PartitionOffsets:
    start, end, max_offset, max_ts, last_id, epochs = reply
    return PartitionOffsets(int(start), int(end), int(max_offset), int(max_ts),
                            id_millis(last_id) if last_id else -1, LeaderEpochs.parse(epochs))


def _with_epochs(found: tuple[ReadResult, Cursor | None], epochs: Any) -> tuple[ReadResult, Cursor | None]:
    """A read's result with the leader epochs its script reported."""
    result, cursor = found
    return replace(result, epochs=LeaderEpochs.parse(epochs)), cursor


def _durable(trailer: Sequence[Any], reply: Any) -> bool:
    """Whether WAITAOF / WAIT confirmed as many copies as it asked for."""
    if isinstance(reply, Exception):
        return False
    if trailer[0] == "WAITAOF":
        return int(reply[0]) >= int(trailer[1]) and int(reply[1]) >= int(trailer[2])
    return int(reply) >= int(trailer[1])
