"""Produce (key 0), v3-v12.

Each partition's record batches (magic 2 only: older formats get
UNSUPPORTED_FOR_MESSAGE_FORMAT) are CRC-checked and decompressed here, then
every partition of the request is appended in one Redis round trip, each
partition by one script call that parses its records, refuses malformed ones
before writing anything (CORRUPT_MESSAGE; a record count that does not match
the batch header INVALID_RECORD) and returns its base offset. Timestamps
beyond +-2^53 ms, which the script's arithmetic cannot hold exactly:
INVALID_TIMESTAMP.

acks=0 gets no response, unless a partition failed: then, as Kafka does,
the connection is closed, so the producer notices and refreshes its
metadata. acks=1 a response after the append, acks=-1 after
Redis also confirms durability as configured (WAITAOF/WAIT in the same
pipeline, docs/guarantees.md); not confirmed within the request timeout:
REQUEST_TIMED_OUT. Other acks values: INVALID_REQUIRED_ACKS.

Idempotent producers: the append script checks and updates the producer's
epoch and last five batches' sequence ranges (kept in the partition's slot)
in the same atomic step: a retried batch gets its original base offset and
writes nothing, a gap OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch
INVALID_PRODUCER_EPOCH.
A batch larger than the topic's max.message.bytes: MESSAGE_TOO_LARGE.
Compressed batches of one request may inflate to 64 MiB in all; partitions
beyond that get CORRUPT_MESSAGE (a guard against decompression bombs).
zstd before v7: UNSUPPORTED_COMPRESSION_TYPE. Redis unreachable, so
nothing was written: KAFKA_STORAGE_ERROR, which clients retry. Appends sent
whose reply was lost (Redis died or timed out) and that could not be settled
(docs/guarantees.md): REQUEST_TIMED_OUT, "possibly written", also retried. Transactional batches are refused
(INVALID_RECORD): transactions are not served. v13 (topic IDs) is not
advertised. v0-v2 (message formats 0 and 1) are advertised, as Kafka 4 does
for old librdkafka's feature detection, and refused when used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka_redis_gateway.protocol.records import (
    BatchHeader,
    Compression,
    RecordError,
    TimestampType,
    read_batch_bodies,
)
from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, CloseConnection, Route
from ..security.acls import Operation, ResourceType
from ..storage import AppendBatch, AppendRequest, AppendResult, StorageUnavailable, TopicInfo
from ..storage.base import AppendRefused, NotDurable, OutcomeUnknown
from ..topics import config_value, topic_or_autocreate
from ._build import NO_THROTTLE, error, make, millis_to_datetime, response_types

API_KEY = 0


@dataclass(slots=True)
class PartitionOutcome:
    topic: str
    partition: int
    code: ErrorCode = ErrorCode.none
    message: str | None = None
    log_append_time: bool = False
    result: AppendResult | None = None


# How far the compressed batches of one request may inflate, all partitions
# together: each partition's decoded records stay in memory until the one
# Redis round trip, so a per-partition limit would let a request of many
# small decompression bombs take gigabytes.
MAX_UNCOMPRESSED_PER_REQUEST = 64 << 20


@dataclass(slots=True)
class DecompressionBudget:
    left: int = MAX_UNCOMPRESSED_PER_REQUEST
    # Records the request may still hold (--max-records-per-request).
    records_left: int = 0


# The append script does its arithmetic in Lua's doubles, exact below 2^53:
# timestamps beyond (285,000 years from 1970) are refused, not rounded.
EXACT_TIMESTAMP = 2**53


def _decode(info: TopicInfo, partition: int, data: bytes | None, api_version: int,
            budget: DecompressionBudget) -> AppendRequest:
    """The partition's batches as one append; raises RecordError.

    The batches are checked here (CRC, codec, sizes, producer fields); their
    records are parsed and checked by the append script, in Redis, before it
    writes any of them.
    """
    if not data:
        raise RecordError(ErrorCode.corrupt_message, "no records")
    limit = int(config_value(info, "max.message.bytes"))
    batches = read_batch_bodies(data, max_uncompressed=budget.left)
    budget.left -= sum(len(body) for header, body in batches if header.compression != Compression.NONE)
    for header, _ in batches:
        _check_batch(header, limit, api_version)
    record_count = sum(header.record_count for header, _ in batches)
    if not record_count:
        raise RecordError(ErrorCode.corrupt_message, "no records")
    if record_count > budget.records_left:
        raise RecordError(ErrorCode.record_list_too_large,
                          f"{record_count} records exceed the {budget.records_left} left of "
                          "--max-records-per-request")
    budget.records_left -= record_count
    first = batches[0][0]
    _check_producer_batches([header for header, _ in batches])
    return AppendRequest(
        info.name, partition,
        [AppendBatch(header.record_count, header.base_timestamp, header.max_timestamp, body,
                     log_append_time=header.timestamp_type == TimestampType.LOG_APPEND_TIME)
         for header, body in batches],
        producer_id=first.producer_id,
        producer_epoch=first.producer_epoch if first.producer_id >= 0 else -1,
        first_sequence=first.base_sequence if first.producer_id >= 0 else -1,
        last_sequence=_sequence_after(first.base_sequence, record_count - 1)
        if first.producer_id >= 0 else -1,
    )


def _sequence_after(sequence: int, increment: int) -> int:
    # Kafka's sequence numbers wrap from 2^31 - 1 to 0.
    return (sequence + increment) % 2**31


def _check_producer_batches(headers: Sequence[BatchHeader]) -> None:
    """Several batches in one partition must continue one producer's sequence."""
    first = headers[0]
    expected = first.base_sequence
    for header in headers:
        if (header.producer_id, header.producer_epoch) != (first.producer_id, first.producer_epoch):
            raise RecordError(ErrorCode.invalid_record, "batches of different producers in one partition")
        if first.producer_id >= 0 and header.base_sequence != expected:
            raise RecordError(ErrorCode.out_of_order_sequence_number, "batches out of sequence")
        expected = _sequence_after(header.base_sequence, header.record_count)


def _check_batch(header: BatchHeader, limit: int, api_version: int) -> None:
    if header.batch_length + 12 > limit:
        raise RecordError(ErrorCode.message_too_large,
                          f"batch of {header.batch_length + 12} bytes exceeds max.message.bytes {limit}")
    if header.compression == Compression.ZSTD and api_version < 7:
        raise RecordError(ErrorCode.unsupported_compression_type, "zstd needs Produce v7+")
    if header.is_control or header.is_transactional:
        raise RecordError(ErrorCode.invalid_record, "transactional and control batches are not supported")
    if not all(-EXACT_TIMESTAMP < timestamp < EXACT_TIMESTAMP
               for timestamp in (header.base_timestamp, header.max_timestamp)):
        raise RecordError(ErrorCode.invalid_timestamp, "batch timestamp out of range")


async def _writable_topic(context: RequestContext, name: str) -> tuple[TopicInfo | None, ErrorCode]:
    if not context.authorize(Operation.WRITE, ResourceType.TOPIC, name):
        return None, ErrorCode.topic_authorization_failed
    return await topic_or_autocreate(context.storage, context.config, name,
                                     may_create=context.may_create_topic(name))


def _refusal(context: RequestContext, request: Any) -> ErrorCode | None:
    """What every partition gets before any is looked at: bad acks, an unauthorized transactional ID."""
    if request.acks not in (-1, 0, 1):
        return ErrorCode.invalid_required_acks
    transactional_id = getattr(request, "transactional_id", None)
    if transactional_id is not None and not context.authorize(
            Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return ErrorCode.transactional_id_authorization_failed
    return None


async def _prepare(context: RequestContext, request: Any,
                   outcomes: list[PartitionOutcome]) -> list[tuple[PartitionOutcome, AppendRequest]]:
    appends = []
    budget = DecompressionBudget(records_left=context.config.max_records_per_request)
    for topic_data in request.topic_data:
        name = topic_data.name
        try:
            info, code = await _writable_topic(context, name)
        except StorageUnavailable:
            info, code = None, ErrorCode.kafka_storage_error
        for partition_data in topic_data.partition_data:
            outcome = PartitionOutcome(name, partition_data.index)
            outcomes.append(outcome)
            if info is None:
                outcome.code = code
                continue
            if not 0 <= partition_data.index < info.partitions:
                outcome.code = ErrorCode.unknown_topic_or_partition
                continue
            if context.cluster.handing_over:
                # Stopping: the others lead it now; the client retries there.
                outcome.code = ErrorCode.not_leader_or_follower
                continue
            try:
                append = _decode(info, partition_data.index, partition_data.records, context.api_version,
                                 budget)
            except RecordError as exc:
                outcome.code, outcome.message = error(exc.error_code), str(exc)
                continue
            outcome.log_append_time = config_value(info, "message.timestamp.type") == "LogAppendTime"
            appends.append((outcome, append))
    return appends


async def handle(context: RequestContext, request: Any) -> Any:
    outcomes: list[PartitionOutcome] = []
    refusal = _refusal(context, request)
    if refusal is not None:
        for topic_data in request.topic_data:
            outcomes.extend(PartitionOutcome(topic_data.name, p.index, refusal)
                            for p in topic_data.partition_data)
    else:
        appends = await _prepare(context, request, outcomes)
        if appends:
            durable_within_ms = (int(request.timeout.total_seconds() * 1000)
                                 if request.acks == -1 else None)
            await _append(context, appends, durable_within_ms)
    if request.acks == 0:
        _close_on_errors(outcomes)
        return None
    return _response(context, outcomes)


def _close_on_errors(outcomes: list[PartitionOutcome]) -> None:
    """acks=0 has no response: as Kafka, close the connection so the producer notices a failure."""
    failed = [f"{o.topic}-{o.partition}: {o.code.name.upper()}" for o in outcomes if o.code != ErrorCode.none]
    if failed:
        raise CloseConnection(f"produce with acks=0 failed ({', '.join(failed[:10])})")


async def _append(context: RequestContext, appends: list[tuple[PartitionOutcome, AppendRequest]],
                  durable_within_ms: int | None) -> None:
    try:
        results: Sequence[AppendResult | Exception] = await context.storage.append(
            [append for _, append in appends], durable_within_ms=durable_within_ms)
    except StorageUnavailable as exc:
        results = [exc] * len(appends)
    for (outcome, _), result in zip(appends, results, strict=True):
        if isinstance(result, AppendResult):
            outcome.result = result
        elif isinstance(result, AppendRefused):
            outcome.code, outcome.message = error(result.error_code), result.message
        elif isinstance(result, NotDurable):
            # Kafka's answer when acks=all is not satisfied within the request
            # timeout; an idempotent producer's retry is deduplicated.
            outcome.code, outcome.message = ErrorCode.request_timed_out, "not durable in time"
        elif isinstance(result, OutcomeUnknown):
            # Sent, reply lost: clients take REQUEST_TIMED_OUT as "possibly
            # written" (librdkafka: MSG_POSSIBLY_PERSISTED) and retry; an
            # idempotent producer's retry is deduplicated.
            outcome.code, outcome.message = ErrorCode.request_timed_out, str(result)
        elif isinstance(result, StorageUnavailable):
            # Certainly not written: clients take KAFKA_STORAGE_ERROR as "not
            # written" (librdkafka: MSG_NOT_PERSISTED) and retry.
            outcome.code, outcome.message = ErrorCode.kafka_storage_error, "Redis unavailable"
        else:
            outcome.code, outcome.message = ErrorCode.unknown_server_error, str(result)


def _response(context: RequestContext, outcomes: list[PartitionOutcome]) -> Any:
    types = response_types(context)
    by_topic: dict[str, list[Any]] = {}
    for outcome in outcomes:
        result = outcome.result
        by_topic.setdefault(outcome.topic, []).append(make(
            types.PartitionProduceResponse,
            index=outcome.partition,
            error_code=outcome.code,
            base_offset=result.base_offset if result else -1,
            log_append_time=(millis_to_datetime(result.log_append_time)
                             if result and outcome.log_append_time and result.log_append_time >= 0
                             else None),
            log_start_offset=result.log_start_offset if result else -1,
            record_errors=(),
            error_message=outcome.message,
        ))
    return make(
        types.ProduceResponse,
        responses=tuple(make(types.TopicProduceResponse, name=name, partition_responses=tuple(parts))
                        for name, parts in by_topic.items()),
        throttle_time=NO_THROTTLE,
    )


# v0-v2 are advertised but refused (the connection closes), as Kafka 4 does;
# see Route.advertised_min_version.
ROUTES = (Route(API_KEY, 3, 12, handle, Access.AUTHORIZED, advertised_min_version=0),)
