"""Fetch (key 1), v4-v16.

Sessionless: the gateway answers every fetch as a full fetch with session ID
0, which tells clients (KIP-227) not to build incremental sessions; a request
naming a session ID gets FETCH_SESSION_ID_NOT_FOUND. Topics are named until
v12 and identified by topic ID from v13.

Each partition is read from Redis in one pipelined round trip. When fewer
than min_bytes are available (never with min_bytes 0), the fetch waits with XREAD BLOCK on the
partitions' streams, which wakes on any append (from this gateway, another
one, or a native XADD) and otherwise times out at max_wait_ms: no polling.

max_bytes and partition_max_bytes bound the response, except that the first
partition with data returns at least one record (KIP-74). As in Kafka,
partitions are read in request order, each within what the response has
left; partitions beyond the budget are not read, only their offsets are
(see _read for the read rounds). A partition reads
at most 1 MiB from Redis per fetch (MAX_READ_BYTES_PER_PARTITION), so one
client's huge fetches cannot hold Redis for hundreds of milliseconds. Records are
re-encoded as one batch per partition (one per append time for LogAppendTime
topics), compressed as the topic's compression.type says ("producer" and
"uncompressed" send none; zstd falls back to none below v10). For CreateTime
topics the storage returns the records section already encoded from the
stream entries (ReadRequest.encoded); only the batch header is built here.
Out-of-range offsets get OFFSET_OUT_OF_RANGE, unknown topics or partitions
UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID from v13), Redis unreachable
KAFKA_STORAGE_ERROR. Leader epochs (KIP-320, gateway/handlers/leader_epochs.py):
each batch carries the epoch its last record was written in as its
partitionLeaderEpoch (a consumer's position takes the epoch of the last
record it consumed), and a current_leader_epoch (v9+) other than the
partition's gets FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH and no records;
from v12 the response then names the leader and its epoch (current_leader).
Consumers send no last_fetched_epoch, so diverging_epoch is never set. No
transactions exist, so the last stable offset is the high watermark and
there are no aborted transactions. A topic the principal may not READ:
TOPIC_AUTHORIZATION_FAILED (ACLs, as Kafka).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from kafka_redis_gateway.protocol.records import (
    HEADER_SIZE,
    Compression,
    TimestampType,
    encode_batch,
    encode_encoded_batch,
    records_size_hint,
)
from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..storage import ReadRequest, ReadResult, StorageUnavailable, TopicInfo
from ..storage.entries import DEFAULT_NATIVE
from ..topics import config_value, native_format
from ._build import NO_THROTTLE, make, response_types
from .leader_epochs import NO_EPOCH, epoch_error

API_KEY = 1
# Bounds the entries one partition read asks Redis for; the byte limit
# usually stops it first.
MAX_RECORDS_PER_PARTITION = 20_000
ASSUMED_MIN_RECORD_BYTES = 64
# Bytes one partition read may take from Redis in one fetch, whatever the
# client asks (Kafka's default max.partition.fetch.bytes). Redis runs one
# command at a time: a 16 MiB read kept it busy for 230-400 ms, and other
# clients' requests queued past their timeouts (the soak test, 50 clients).
# A client asking for more gets it over more fetches; the first record always
# comes, however large (KIP-74).
MAX_READ_BYTES_PER_PARTITION = 1 << 20
# Read rounds (Redis round trips) one fetch may take to fill its response.
MAX_READ_ROUNDS = 4

CODECS = {
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}


@dataclass(slots=True)
class Slot:
    """One requested partition and what the fetch found for it."""

    topic: str | None
    topic_id: uuid.UUID | None
    partition: int
    offset: int
    max_bytes: int
    current_leader_epoch: int = NO_EPOCH
    info: TopicInfo | None = None
    code: ErrorCode = ErrorCode.none
    result: ReadResult | None = None


async def _resolve(context: RequestContext, request: Any) -> list[Slot]:
    slots = []
    for topic in request.topics:
        name = getattr(topic, "topic", None)
        topic_id = getattr(topic, "topic_id", None)
        missing = (ErrorCode.unknown_topic_id if context.api_version >= 13
                   else ErrorCode.unknown_topic_or_partition)
        try:
            if context.api_version >= 13:
                info = await context.storage.topic_by_id(topic_id) if topic_id is not None else None
            else:
                info = await context.storage.topic(name) if name else None
        except StorageUnavailable:
            # Redis away: a retriable error for each partition, as a read would get.
            info, missing = None, ErrorCode.kafka_storage_error
        # As KafkaApis: READ on the topic, asked by name before its existence
        # (an unknown topic ID stays UNKNOWN_TOPIC_ID).
        asked_name = info.name if info is not None else name
        if asked_name and (info is not None or context.api_version < 13) and not context.authorize(
                Operation.READ, ResourceType.TOPIC, asked_name):
            info, missing = None, ErrorCode.topic_authorization_failed
        for partition in topic.partitions:
            slot = Slot(name if info is None else info.name, topic_id, partition.partition,
                        partition.fetch_offset, partition.partition_max_bytes,
                        getattr(partition, "current_leader_epoch", NO_EPOCH), info)
            if info is None:
                slot.code = missing
            elif not 0 <= partition.partition < info.partitions:
                slot.code = ErrorCode.unknown_topic_or_partition
            elif context.cluster.handing_over:
                # Stopping: the others lead it now; the client fetches there.
                slot.code = ErrorCode.not_leader_or_follower
            slots.append(slot)
    return slots


async def _read(context: RequestContext, slots: Sequence[Slot], max_bytes: int) -> int:
    """Read the healthy slots within the response budget; returns the bytes found (approximately).

    Kafka reads a fetch's partitions in order, each up to what the response
    has left, and only the first record of a response may exceed that
    (KIP-74). Here a round reads, in one round trip, the partitions in order
    with budgets that together stay within what is left, so nothing read is
    thrown away, and the partitions beyond the budget for their offsets
    only. When the partitions read found less than their budgets, the next
    round reads on with what is left, as Kafka's sequential reads would.
    """
    pending = [slot for slot in slots if slot.code == ErrorCode.none]
    found = 0
    for round_number in range(MAX_READ_ROUNDS):
        # The first round always reads: every partition needs its offsets,
        # and the first one its first record even when max_bytes is 0 or less.
        if not pending or (round_number and found >= max_bytes):
            break
        reads = _plan(pending, max_bytes - found, first_may_exceed=found == 0)
        results = await _read_round(context, reads)
        unread = []  # (slot, whether only its first record, too big, kept it from being read)
        for request, slot, result in zip(reads, pending, results, strict=True):
            found += _keep(slot, result)
            if slot.code == ErrorCode.none and (request.max_records == 0 or _nothing_fit(result)):
                unread.append((slot, request.max_records > 0))
        # A partition whose first record exceeded its budget gets that record
        # only as a response's first data (KIP-74), so only while there is none.
        pending = [slot for slot, too_big in unread if not too_big or found == 0]
    return found


def _plan(slots: Sequence[Slot], left: int, *, first_may_exceed: bool) -> list[ReadRequest]:
    """The slots' reads, in order, with budgets from what the response has left.

    A slot left without budget reads only its offsets (max_records 0).
    """
    reads = []
    for index, slot in enumerate(slots):
        budget = max(0, min(slot.max_bytes, MAX_READ_BYTES_PER_PARTITION, left))
        left -= budget
        min_one = first_may_exceed and index == 0
        records = max(1, min(MAX_RECORDS_PER_PARTITION, budget // ASSUMED_MIN_RECORD_BYTES))
        reads.append(ReadRequest(
            slot.topic or "", slot.partition, slot.offset, budget,
            records if budget > 0 or min_one else 0,
            native_format(slot.info) if slot.info else DEFAULT_NATIVE,
            encoded=not _log_append_time(slot.info), min_one=min_one))
    return reads


async def _read_round(context: RequestContext,
                      requests: Sequence[ReadRequest]) -> Sequence[ReadResult | Exception]:
    try:
        return await context.storage.read(requests)
    except StorageUnavailable as exc:
        return [exc] * len(requests)


def _keep(slot: Slot, result: ReadResult | Exception) -> int:
    """Record a read's result in its slot; the bytes it found."""
    if isinstance(result, ReadResult):
        slot.result = result
        # As Kafka, the leader epoch is checked before the offset.
        slot.code = epoch_error(slot.current_leader_epoch, result.epochs)
        if slot.code == ErrorCode.none and result.out_of_range:
            slot.code = ErrorCode.offset_out_of_range
        return _size_hint(result) if slot.code == ErrorCode.none else 0
    if isinstance(result, StorageUnavailable):
        slot.code = ErrorCode.kafka_storage_error
        return 0
    raise result


def _nothing_fit(result: ReadResult | Exception) -> bool:
    """Records exist at the offset, but the read returned none: the first exceeded its budget."""
    return (isinstance(result, ReadResult) and result.record_count == 0 and not result.out_of_range
            and result.offset < result.high_watermark)


def _log_append_time(info: TopicInfo | None) -> bool:
    return info is not None and config_value(info, "message.timestamp.type") == "LogAppendTime"


def _size_hint(result: ReadResult) -> int:
    """About the bytes the result's batches take (uncompressed)."""
    if result.encoded is not None:
        return HEADER_SIZE + len(result.encoded.body)
    return records_size_hint(result.records) if result.records else 0


def _must_answer_now(slots: Sequence[Slot]) -> bool:
    return any(slot.code != ErrorCode.none for slot in slots)


async def handle(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    if context.api_version >= 7 and request.session_id != 0:
        return make(types.FetchResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.fetch_session_id_not_found, session_id=0, responses=())
    slots = await _resolve(context, request)
    max_bytes = request.max_bytes if context.api_version >= 3 else 2**31 - 1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.max_wait.total_seconds()
    while True:
        found = await _read(context, slots, max_bytes)
        remaining_ms = int((deadline - loop.time()) * 1000)
        # As Kafka: min_bytes 0 (or less) is always satisfied, so such a fetch answers at once.
        if found >= request.min_bytes or remaining_ms <= 0 or _must_answer_now(slots):
            break
        await _wait(context, slots, remaining_ms)
    return _response(context, types, slots, max_bytes)


async def _wait(context: RequestContext, slots: Sequence[Slot], timeout_ms: int) -> None:
    positions = [(slot.topic or "", slot.partition, slot.result.last_id)
                 for slot in slots if slot.result is not None]
    if not positions:
        await asyncio.sleep(timeout_ms / 1000)
        return
    try:
        await context.storage.wait_for_entries(positions, timeout_ms)
    except StorageUnavailable:
        await asyncio.sleep(min(timeout_ms, 100) / 1000)


def _codec(info: TopicInfo, api_version: int) -> Compression:
    codec = CODECS.get(config_value(info, "compression.type"), Compression.NONE)
    if codec == Compression.ZSTD and api_version < 10:
        codec = Compression.NONE
    return codec


def _encode(slot: Slot, result: ReadResult, api_version: int) -> bytes:
    info = slot.info
    assert info is not None
    codec = _codec(info, api_version)
    epochs = result.epochs
    if result.encoded is not None:
        # The storage encoded the records section; only the header and CRC are left.
        # (result.offset: a compacted topic's first record may be past the offset asked.)
        encoded = result.encoded
        last_delta = encoded.last_offset_delta if encoded.last_offset_delta >= 0 else encoded.count - 1
        return encode_encoded_batch(result.offset, encoded, compression=codec,
                                    leader_epoch=epochs.epoch_of(result.offset + last_delta))
    # Records come unencoded only from LogAppendTime topics (_read asks so):
    # one batch per append time, since readers take a LogAppendTime batch's
    # max timestamp as every record's timestamp.
    # A compacted topic's records have holes: a batch holds consecutive
    # offsets only, so one starts at each hole too.
    records, append_times = result.records, result.append_times
    offsets = result.offsets or range(result.offset, result.offset + len(records))
    parts = []
    runs = (offset - index for index, offset in enumerate(offsets))  # equal within a run
    for (append_time, _), group in groupby(zip(records, zip(append_times, runs, strict=True),
                                               offsets, strict=True), key=lambda p: p[1]):
        batch = list(group)
        parts.append(encode_batch(batch[0][2], [record for record, _, _ in batch], compression=codec,
                                  timestamp_type=TimestampType.LOG_APPEND_TIME,
                                  log_append_time=append_time,
                                  partition_leader_epoch=epochs.epoch_of(batch[-1][2])))
    return b"".join(parts)


def _current_leader(context: RequestContext, types: Any, slot: Slot) -> dict[str, Any]:
    """The partition's leader and epoch, told (v12+) to a fetch fenced for an older epoch."""
    leader_type = getattr(types, "LeaderIdAndEpoch", None)
    if leader_type is None or slot.code != ErrorCode.fenced_leader_epoch or slot.result is None:
        return {}
    leader = context.cluster.leader(slot.topic or "", slot.partition)
    return {"current_leader": make(leader_type, leader_id=leader, leader_epoch=slot.result.epochs.current)}


def _response(context: RequestContext, types: Any, slots: Sequence[Slot], max_bytes: int) -> Any:
    budget = max_bytes
    by_topic: dict[tuple[str | None, uuid.UUID | None], list[Any]] = {}
    for slot in slots:
        result = slot.result
        data = b""
        if result is not None and slot.code == ErrorCode.none and (result.records or result.encoded):
            data = _encode(slot, result, context.api_version)
            if len(data) > budget and budget < max_bytes:
                data = b""  # over the response budget: the client fetches it next time
            else:
                budget -= len(data)
        key = (slot.topic, slot.info.topic_id if slot.info else slot.topic_id)
        # A partition with an error (OFFSET_OUT_OF_RANGE included) reports
        # unknown offsets, as Kafka's ReplicaManager.createLogReadResult does.
        known = result if slot.code == ErrorCode.none else None
        by_topic.setdefault(key, []).append(make(
            types.PartitionData,
            partition_index=slot.partition,
            error_code=slot.code,
            high_watermark=known.high_watermark if known else -1,
            last_stable_offset=known.high_watermark if known else -1,
            log_start_offset=known.log_start_offset if known else -1,
            aborted_transactions=None,
            preferred_read_replica=-1,
            records=data,
            **_current_leader(context, types, slot),
        ))
    return make(
        types.FetchResponse,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        session_id=0,
        responses=tuple(
            make(types.FetchableTopicResponse, topic=name, topic_id=topic_id, partitions=tuple(parts))
            for (name, topic_id), parts in by_topic.items()
        ),
    )


ROUTES = (Route(API_KEY, 4, 16, handle, Access.AUTHORIZED),)
