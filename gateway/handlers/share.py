"""Share groups (KIP-932): ShareGroupHeartbeat (76) v1, ShareGroupDescribe (77) v1, ShareFetch (78)
v1-v2, ShareAcknowledge (79) v1-v2, DescribeShareGroupOffsets (90) v0-v1,
AlterShareGroupOffsets (91) v0, DeleteShareGroupOffsets (92) v0.

A share group is the Redis consumer group of the same name on each
partition's stream (gateway/storage/shares.py, docs/mapping.md). Partitions
are spread over the members as Kafka's SimpleAssignor does (several members
share a partition record by record only when there are more members than
partitions; coordinator/share_assign.py). Membership is in Redis,
so any gateway answers; share sessions are this gateway's memory, as in
Kafka. Authorized as Kafka does: READ on the group, READ on each topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from kafka_redis_gateway.protocol.records import encode_batch
from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..coordinator.share import (
    MAX_SESSION_PARTITIONS,
    GroupSettings,
    SessionPartition,
    ShareSession,
)
from ..coordinator.share_assign import assign
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..storage import StorageUnavailable, TopicInfo
from ..storage.entries import entry_to_record
from ..storage.shares import Acquired, Archived
from ..topics import native_format
from ._build import NO_THROTTLE, make, response_types

HEARTBEAT_INTERVAL = datetime.timedelta(seconds=5)  # Kafka's group.share.heartbeat.interval.ms
SESSION_TIMEOUT_MS = 45_000  # Kafka's group.share.session.timeout.ms
# Records one ShareFetch acquires on one partition, whatever it asks.
MAX_RECORDS_PER_PARTITION = 2_000
MAX_BYTES_PER_PARTITION = 1 << 20
# Offsets one request may acknowledge on one partition.
MAX_ACKS_PER_PARTITION = 20_000
# A fetch that found nothing looks again this often while it waits (released
# records and expired locks wake no XREAD), and at once on an append.
WAIT_STEP_MS = 200
FINAL_EPOCH = -1
RENEW = 4


# -- ShareGroupHeartbeat ------------------------------------------------------------


async def handle_heartbeat(context: RequestContext, request: Any) -> Any:
    types = response_types(context)

    def answer(code: ErrorCode, message: str | None = None, member: str | None = None, epoch: int = -1,
               assignment: Any = None) -> Any:
        return make(types.ShareGroupHeartbeatResponse, throttle_time=NO_THROTTLE, error_code=code,
                    error_message=message, member_id=member, member_epoch=epoch,
                    heartbeat_interval=HEARTBEAT_INTERVAL, assignment=assignment)

    if not context.authorize(Operation.READ, ResourceType.GROUP, request.group_id):
        return answer(ErrorCode.group_authorization_failed)
    if not request.group_id or (request.member_epoch == 0 and request.subscribed_topic_names is None):
        return answer(ErrorCode.invalid_request,
                      "GroupId and, on joining, SubscribedTopicNames are required.")
    member = request.member_id or str(uuid.uuid4())
    try:
        beat = await context.shares.storage.heartbeat(
            request.group_id, member, request.member_epoch, SESSION_TIMEOUT_MS,
            request.subscribed_topic_names, "/" + context.host, context.header.client_id or "")
        if beat.code == 1:
            return answer(ErrorCode.unknown_member_id, member=member)
        if beat.code == 2:
            return answer(ErrorCode.group_max_size_reached, member=member)
        if request.member_epoch == FINAL_EPOCH:
            return answer(ErrorCode.none, member=member, epoch=FINAL_EPOCH)
        assigned = await _group_assignment(context, request.group_id)
        assignment = await _assignment(context, types, assigned.get(member, ()))
    except StorageUnavailable as exc:
        return answer(ErrorCode.coordinator_not_available, f"Redis unavailable: {exc}")
    return answer(ErrorCode.none, member=member, epoch=beat.epoch, assignment=assignment)


async def _group_assignment(context: RequestContext, group: str) -> Mapping[str, Sequence[tuple[str, int]]]:
    """Every member's partitions as Kafka's SimpleAssignor spreads them (coordinator/share_assign.py).

    Computed afresh from Redis on each call, keeping the stored assignment
    where it fits, so a topic created or grown later is picked up; stored when
    it changed, for the next call (on any gateway) to stay close to it.
    """
    state = await context.shares.storage.assignment_state(group)
    if state is None:
        return {}
    counts = {}
    for name in sorted({topic for topics in state.members.values() for topic in topics}):
        info = await context.storage.topic(name)
        counts[name] = info.partitions if info is not None else 0
    assigned = assign(state.members, counts, state.assigned)
    if state.assigned_epoch != state.epoch or assigned != _sorted(state.assigned):
        await context.shares.storage.store_assignment(group, state.epoch, assigned)
    return assigned


def _sorted(assigned: Mapping[str, Sequence[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    return {member: sorted(partitions) for member, partitions in assigned.items()}


async def _assignment(context: RequestContext, types: Any, partitions: Sequence[tuple[str, int]]) -> Any:
    parts = []
    for name, group in groupby(sorted(partitions), key=lambda item: item[0]):
        info = await context.storage.topic(name)
        if info is not None:
            parts.append(make(types.TopicPartitions, topic_id=info.topic_id, topic_name=info.name,
                              partitions=tuple(partition for _, partition in group)))
    return make(types.Assignment, topic_partitions=tuple(parts))


# -- ShareGroupDescribe -------------------------------------------------------------


async def handle_describe(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    groups = [await _describe_one(context, types, group_id, request.include_authorized_operations)
              for group_id in request.group_ids]
    return make(types.ShareGroupDescribeResponse, throttle_time=NO_THROTTLE, groups=tuple(groups))


async def _describe_one(context: RequestContext, types: Any, group_id: str, asks_operations: bool) -> Any:
    def described(code: ErrorCode, state: str, epoch: int = -1, members: tuple[Any, ...] = (),
                  message: str | None = None) -> Any:
        operations = context.authorized_operations(ResourceType.GROUP, group_id,
                                                   asks_operations and code == ErrorCode.none)
        return make(types.DescribedGroup, error_code=code, error_message=message, group_id=group_id,
                    group_state=state, group_epoch=epoch, assignment_epoch=epoch, assignor_name="simple",
                    members=members, authorized_operations=operations)

    if not context.authorize(Operation.DESCRIBE, ResourceType.GROUP, group_id):
        return described(ErrorCode.group_authorization_failed, "Dead")
    try:
        state = await context.shares.storage.describe(group_id)
        assigned = await _group_assignment(context, group_id)
    except StorageUnavailable as exc:
        return described(ErrorCode.coordinator_not_available, "Dead", message=f"Redis unavailable: {exc}")
    if state is None:
        return described(ErrorCode.group_id_not_found, "Dead",
                         message=f"Group {group_id} not found.")
    members = tuple([make(
        types.Member, member_id=member.member_id, rack_id=None, member_epoch=state.epoch,
        client_id=member.client_id, client_host=member.client_host,
        subscribed_topic_names=member.topics,
        assignment=await _assignment(context, types, assigned.get(member.member_id, ())))
        for member in state.members])
    return described(ErrorCode.none, "Stable" if members else "Empty", state.epoch, members)


# -- DescribeShareGroupOffsets -------------------------------------------------------

# Partitions one DescribeShareGroupOffsets group may name (each is one Redis call or a few).
MAX_DESCRIBED_PARTITIONS = 10_000


async def handle_describe_offsets(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    groups = [await _describe_offsets(context, types, group) for group in request.groups]
    return make(types.DescribeShareGroupOffsetsResponse, throttle_time=NO_THROTTLE, groups=tuple(groups))


async def _describe_offsets(context: RequestContext, types: Any, group: Any) -> Any:
    def answer(code: ErrorCode, topics: tuple[Any, ...] = (), message: str | None = None) -> Any:
        return make(types.DescribeShareGroupOffsetsResponseGroup, group_id=group.group_id, topics=topics,
                    error_code=code, error_message=message)

    if not context.authorize(Operation.DESCRIBE, ResourceType.GROUP, group.group_id):
        return answer(ErrorCode.group_authorization_failed)
    storage = context.shares.storage
    try:
        if group.group_id not in await storage.groups():
            return answer(ErrorCode.group_id_not_found, message=f"Group {group.group_id} not found.")
        if group.topics is None:
            asked = await storage.partitions(group.group_id)
        else:
            asked = [(topic.topic_name, partition)
                     for topic in group.topics for partition in topic.partitions]
        if len(asked) > MAX_DESCRIBED_PARTITIONS:
            return answer(ErrorCode.invalid_request, message="Too many partitions in one request.")
        by_topic: dict[str, list[Any]] = {}
        infos: dict[str, TopicInfo | None] = {}
        for name, partition in asked:
            if name not in infos:
                infos[name] = await context.storage.topic(name)
            by_topic.setdefault(name, []).append(
                await _partition_offset(context, types, group.group_id, infos[name], name, partition))
    except StorageUnavailable as exc:
        return answer(ErrorCode.coordinator_not_available, message=f"Redis unavailable: {exc}")
    return answer(ErrorCode.none, tuple(
        make(types.DescribeShareGroupOffsetsResponseTopic, topic_name=name,
             topic_id=_topic_id(infos[name]), partitions=tuple(parts))
        for name, parts in by_topic.items()))


def _topic_id(info: TopicInfo | None) -> uuid.UUID | None:
    return info.topic_id if info is not None else None


async def _partition_offset(context: RequestContext, types: Any, group_id: str, info: TopicInfo | None,
                            name: str, partition: int) -> Any:
    code, start, lag = ErrorCode.none, -1, -1
    if not context.authorize(Operation.DESCRIBE, ResourceType.TOPIC, name):
        code = ErrorCode.topic_authorization_failed
    elif info is None or not 0 <= partition < info.partitions:
        code = ErrorCode.unknown_topic_or_partition
    else:
        found = await context.shares.storage.start_offset(group_id, info.name, partition)
        if found is None:
            code = ErrorCode.request_timed_out  # counting did not finish; asking again goes on
        else:
            start, lag = found
    return make(types.DescribeShareGroupOffsetsResponsePartition, partition_index=partition,
                start_offset=start, leader_epoch=-1, lag=lag, error_code=code, error_message=None)


# -- AlterShareGroupOffsets, DeleteShareGroupOffsets -----------------------------------


async def _active(context: RequestContext, group_id: str) -> bool:
    state = await context.shares.storage.describe(group_id)
    return state is not None and bool(state.members)


async def handle_alter_offsets(context: RequestContext, request: Any) -> Any:
    """Start the group afresh at the given offsets, as Kafka: only while it has no members."""
    types = response_types(context)

    def answer(code: ErrorCode, responses: tuple[Any, ...] = (), message: str | None = None) -> Any:
        return make(types.AlterShareGroupOffsetsResponse, throttle_time=NO_THROTTLE, error_code=code,
                    error_message=message, responses=responses)

    if not context.authorize(Operation.READ, ResourceType.GROUP, request.group_id):
        return answer(ErrorCode.group_authorization_failed)
    if sum(len(topic.partitions) for topic in request.topics) > MAX_DESCRIBED_PARTITIONS:
        return answer(ErrorCode.invalid_request, message="Too many partitions in one request.")
    try:
        if await _active(context, request.group_id):
            return answer(ErrorCode.non_empty_group, message="The group has members.")
        topics = []
        for topic in request.topics:
            info, code = await _named_topic(context, topic.topic_name, Operation.READ)
            parts = []
            for partition in topic.partitions:
                part_code = code
                if info is not None and not 0 <= partition.partition_index < info.partitions:
                    part_code = ErrorCode.unknown_topic_or_partition
                elif info is not None and partition.start_offset < 0:
                    part_code = ErrorCode.invalid_request
                elif info is not None and not await context.shares.storage.reset(
                        request.group_id, info.name, partition.partition_index, partition.start_offset):
                    part_code = ErrorCode.request_timed_out
                parts.append(make(types.AlterShareGroupOffsetsResponsePartition,
                                  partition_index=partition.partition_index, error_code=part_code,
                                  error_message=None))
            topics.append(make(types.AlterShareGroupOffsetsResponseTopic, topic_name=topic.topic_name,
                               topic_id=_topic_id(info), partitions=tuple(parts)))
    except StorageUnavailable as exc:
        return answer(ErrorCode.coordinator_not_available, message=f"Redis unavailable: {exc}")
    return answer(ErrorCode.none, tuple(topics))


async def handle_delete_offsets(context: RequestContext, request: Any) -> Any:
    """Forget the group's state on whole topics, as Kafka: only while it has no members."""
    types = response_types(context)

    def answer(code: ErrorCode, responses: tuple[Any, ...] = (), message: str | None = None) -> Any:
        return make(types.DeleteShareGroupOffsetsResponse, throttle_time=NO_THROTTLE, error_code=code,
                    error_message=message, responses=responses)

    if not context.authorize(Operation.DELETE, ResourceType.GROUP, request.group_id):
        return answer(ErrorCode.group_authorization_failed)
    try:
        if request.group_id not in await context.shares.storage.groups():
            return answer(ErrorCode.group_id_not_found, message=f"Group {request.group_id} not found.")
        if await _active(context, request.group_id):
            return answer(ErrorCode.non_empty_group, message="The group has members.")
        results = []
        for topic in request.topics:
            info, code = await _named_topic(context, topic.topic_name, Operation.READ)
            if info is not None:
                for partition in range(info.partitions):
                    if not await context.shares.storage.reset(request.group_id, info.name, partition, None):
                        code = ErrorCode.request_timed_out
            results.append(make(types.DeleteShareGroupOffsetsResponseTopic, topic_name=topic.topic_name,
                                topic_id=_topic_id(info), error_code=code, error_message=None))
    except StorageUnavailable as exc:
        return answer(ErrorCode.coordinator_not_available, message=f"Redis unavailable: {exc}")
    return answer(ErrorCode.none, tuple(results))


async def _named_topic(context: RequestContext, name: str, operation: Operation,
                       ) -> tuple[TopicInfo | None, ErrorCode]:
    if not context.authorize(operation, ResourceType.TOPIC, name):
        return None, ErrorCode.topic_authorization_failed
    info = await context.storage.topic(name)
    return info, ErrorCode.none if info is not None else ErrorCode.unknown_topic_or_partition


# -- ShareFetch and ShareAcknowledge ---------------------------------------------------


@dataclass(slots=True)
class Slot:
    """One partition of the request or the session, and what this request did there."""

    topic_id: uuid.UUID
    partition: int
    info: TopicInfo | None
    code: ErrorCode = ErrorCode.none
    ack_code: ErrorCode | None = None  # None: no acknowledgements for it in the request
    acquired: list[Acquired] = field(default_factory=list)


async def _topic(context: RequestContext, topic_id: uuid.UUID | None,
                 ) -> tuple[TopicInfo | None, ErrorCode]:
    info = await context.storage.topic_by_id(topic_id) if topic_id is not None else None
    if info is None:
        return None, ErrorCode.unknown_topic_id
    if not context.authorize(Operation.READ, ResourceType.TOPIC, info.name):
        return None, ErrorCode.topic_authorization_failed
    return info, ErrorCode.none


def _expand(batches: Sequence[Any], version: int) -> list[tuple[int, int]] | None:
    """(offset, type) for each acknowledged offset; None when the batches are invalid."""
    acks: list[tuple[int, int]] = []
    highest = 3 if version < 2 else RENEW
    for batch in batches:
        span = batch.last_offset - batch.first_offset + 1
        kinds = batch.acknowledge_types
        if (span < 1 or len(acks) + span > MAX_ACKS_PER_PARTITION or len(kinds) not in (1, span)
                or any(not 0 <= kind <= highest for kind in kinds)):
            return None
        for index in range(span):
            acks.append((batch.first_offset + index, kinds[0] if len(kinds) == 1 else kinds[index]))
    return acks


async def _acknowledge(context: RequestContext, group: str, member: str, slot: Slot,
                       batches: Sequence[Any], settings: GroupSettings) -> None:
    acks = _expand(batches, context.api_version)
    if acks is None or slot.info is None:
        slot.ack_code = ErrorCode.invalid_request if slot.info is not None else slot.code
        return
    try:
        result = await context.shares.storage.acknowledge(
            group, member, slot.info.name, slot.partition, acks, settings.share.lock_ms)
    except StorageUnavailable:
        slot.ack_code = ErrorCode.kafka_storage_error
        return
    # As Kafka: a record not acquired by this member (or whose lock expired) fails the batch.
    slot.ack_code = ErrorCode.invalid_record_state if result.refused else ErrorCode.none
    await _dead_letter(context, settings, result.archived)


async def _dead_letter(context: RequestContext, settings: GroupSettings,
                       archived: Sequence[Archived]) -> None:
    """Copy archived records to the group's dead-letter topic (KIP-1191), when it has one that exists."""
    if not archived or settings.dead_letter_topic is None:
        return
    info = await context.storage.topic(settings.dead_letter_topic)
    if info is None:
        return
    # Archived already; the copy is best effort, as the response cannot report it.
    with contextlib.suppress(StorageUnavailable):
        await context.shares.storage.copy_to(info.name, archived)


def _session(context: RequestContext, group: str, member: str, epoch: int,
             ) -> tuple[ShareSession | None, ErrorCode]:
    sessions = context.shares.sessions
    if epoch == 0:
        return context.shares.open_session(group, member), ErrorCode.none
    session = sessions.get((group, member))
    if session is None:
        return None, ErrorCode.share_session_not_found
    if epoch == FINAL_EPOCH:
        del sessions[(group, member)]
        return session, ErrorCode.none
    if epoch != session.epoch:
        return None, ErrorCode.invalid_share_session_epoch
    session.epoch = 1 if epoch == 2**31 - 1 else epoch + 1
    return session, ErrorCode.none


async def _slots(context: RequestContext, topics: Sequence[Any]) -> dict[tuple[uuid.UUID, int], Slot]:
    slots: dict[tuple[uuid.UUID, int], Slot] = {}
    for topic in topics:
        info, code = await _topic(context, topic.topic_id)
        for partition in topic.partitions:
            index = partition if isinstance(partition, int) else partition.partition_index
            slot = Slot(topic.topic_id, index, info, code)
            if info is not None and not 0 <= index < info.partitions:
                slot.info, slot.code = None, ErrorCode.unknown_topic_or_partition
            slots[(topic.topic_id, index)] = slot
    return slots


async def _release_session(context: RequestContext, group: str, member: str, session: ShareSession) -> None:
    """A closed session's records go back to the group at once, as Kafka releases them."""
    for part in session.partitions.values():
        try:
            await context.shares.storage.release(group, member, part.topic, part.partition)
        except StorageUnavailable:
            return  # their locks expire instead


async def _acquire(context: RequestContext, group: str, member: str, slots: Sequence[Slot],
                   request: Any, settings: GroupSettings) -> int:
    """Acquire records on the slots in order, within the request's max_records; how many."""
    ready = [slot for slot in slots if slot.info is not None and slot.code == ErrorCode.none]
    if not ready:
        return 0
    # One round trip reads every partition, so each gets its share of the
    # request's records and bytes (at least one record: KIP-74).
    per_partition = max(1, min(request.max_records // len(ready), MAX_RECORDS_PER_PARTITION))
    wanted = [(slot, per_partition) for slot in ready]
    max_bytes = max(1, min(request.max_bytes // len(ready), MAX_BYTES_PER_PARTITION))
    try:
        results = await context.shares.storage.acquire(
            group, member, [(slot.info.name, slot.partition, count)  # type: ignore[union-attr]
                            for slot, count in wanted], max_bytes, settings.share)
    except StorageUnavailable:
        for slot, _ in wanted:
            slot.code = ErrorCode.kafka_storage_error
        return 0
    total = 0
    for (slot, _), result in zip(wanted, results, strict=True):
        if isinstance(result, Exception):
            slot.code = ErrorCode.kafka_storage_error
            continue
        slot.acquired = sorted(result.acquired, key=lambda record: record.offset)
        total += len(slot.acquired)
        await _dead_letter(context, settings, result.archived)
    return total


async def handle_share_fetch(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    group, member = request.group_id, request.member_id
    refused = _refusal(context, group, member)
    session, code = (None, refused) if refused is not None else _session(
        context, group, member, request.share_session_epoch)
    if session is None:
        return _top_error(types.ShareFetchResponse, code)
    settings = await _settings(context, group)
    if settings is None:
        return _top_error(types.ShareFetchResponse, ErrorCode.coordinator_not_available)
    slots = await _slots(context, request.topics)
    for topic in request.topics:
        for partition in topic.partitions:
            slot = slots[(topic.topic_id, partition.partition_index)]
            if partition.acknowledgement_batches:
                await _acknowledge(context, group, member, slot, partition.acknowledgement_batches, settings)
    if request.share_session_epoch == FINAL_EPOCH:
        await _release_session(context, group, member, session)
        return _fetch_response(context, types, slots.values(), settings)
    known = set(session.partitions)
    if not _update_session(session, slots, request.forgotten_topics_data):
        return _top_error(types.ShareFetchResponse, ErrorCode.invalid_request)
    added = [(part.topic, part.partition) for key, part in session.partitions.items() if key not in known]
    with contextlib.suppress(StorageUnavailable):  # the acquisition below reports Redis away
        await context.shares.storage.note_partitions(group, added)
    fetch_slots = [slots.get(key) or Slot(key[0], key[1], await _info(context, part))
                   for key, part in session.partitions.items()]
    if not getattr(request, "is_renew_ack", False):
        await _fetch(context, group, member, fetch_slots, request, settings)
    for slot in fetch_slots:
        slots.setdefault((slot.topic_id, slot.partition), slot)
    return _fetch_response(context, types, slots.values(), settings)


async def _fetch(context: RequestContext, group: str, member: str, slots: Sequence[Slot],
                 request: Any, settings: GroupSettings) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.max_wait.total_seconds()
    while True:
        found = await _acquire(context, group, member, slots, request, settings)
        remaining_ms = int((deadline - loop.time()) * 1000)
        if found > 0 or remaining_ms <= 0 or any(slot.code != ErrorCode.none for slot in slots):
            return
        positions = [(slot.info.name, slot.partition, b"$") for slot in slots if slot.info is not None]
        try:
            await context.storage.wait_for_entries(positions, min(remaining_ms, WAIT_STEP_MS))
        except StorageUnavailable:
            await asyncio.sleep(min(remaining_ms, WAIT_STEP_MS) / 1000)


async def _info(context: RequestContext, part: SessionPartition) -> TopicInfo | None:
    info = await context.storage.topic_by_id(part.topic_id)
    return info if info is not None and part.partition < info.partitions else None


def _update_session(session: ShareSession, slots: dict[tuple[uuid.UUID, int], Slot],
                    forgotten: Sequence[Any]) -> bool:
    for (topic_id, partition), slot in slots.items():
        if slot.info is not None:
            session.partitions[(topic_id, partition)] = SessionPartition(topic_id, slot.info.name, partition)
    for topic in forgotten:
        for partition in topic.partitions:
            session.partitions.pop((topic.topic_id, partition), None)
    return len(session.partitions) <= MAX_SESSION_PARTITIONS


def _refusal(context: RequestContext, group: str | None, member: str | None) -> ErrorCode | None:
    if not group or not member:
        return ErrorCode.invalid_request
    if not context.authorize(Operation.READ, ResourceType.GROUP, group):
        return ErrorCode.group_authorization_failed
    return None


async def _settings(context: RequestContext, group: str) -> GroupSettings | None:
    try:
        return await context.shares.settings(group)
    except StorageUnavailable:
        return None


def _top_error(response: Any, code: ErrorCode) -> Any:
    return make(response, throttle_time=NO_THROTTLE, error_code=code, error_message=None,
                acquisition_lock_timeout=datetime.timedelta(0), responses=(), node_endpoints=())


def _encode(slot: Slot) -> bytes:
    """The acquired records as batches of consecutive offsets."""
    assert slot.info is not None
    native = native_format(slot.info)
    parts = []
    runs = (record.offset - index for index, record in enumerate(slot.acquired))
    for _, group in groupby(zip(runs, slot.acquired, strict=True), key=lambda pair: pair[0]):
        records = [record for _, record in group]
        parts.append(encode_batch(records[0].offset, [
            entry_to_record(record.entry_id, record.fields, native) for record in records]))
    return b"".join(parts)


def _acquired_ranges(types: Any, records: Sequence[Acquired]) -> tuple[Any, ...]:
    """Runs of consecutive offsets with one delivery count."""
    ranges = []
    runs = ((record.offset - index, record.delivery_count) for index, record in enumerate(records))
    for _, group in groupby(zip(runs, records, strict=True), key=lambda pair: pair[0]):
        run = [record for _, record in group]
        ranges.append(make(types.AcquiredRecords, first_offset=run[0].offset, last_offset=run[-1].offset,
                           delivery_count=run[0].delivery_count))
    return tuple(ranges)


def _fetch_response(context: RequestContext, types: Any, slots: Iterable[Slot],
                    settings: GroupSettings) -> Any:
    by_topic: dict[uuid.UUID, list[Any]] = {}
    for slot in slots:
        if not slot.acquired and slot.ack_code is None and slot.code == ErrorCode.none:
            continue  # nothing to say about it
        by_topic.setdefault(slot.topic_id, []).append(make(
            types.PartitionData, partition_index=slot.partition, error_code=slot.code,
            acknowledge_error_code=slot.ack_code or ErrorCode.none,
            current_leader=make(types.LeaderIdAndEpoch, leader_id=-1, leader_epoch=-1),
            records=_encode(slot) if slot.acquired else b"",
            acquired_records=_acquired_ranges(types, slot.acquired)))
    return make(
        types.ShareFetchResponse, throttle_time=NO_THROTTLE, error_code=ErrorCode.none,
        acquisition_lock_timeout=datetime.timedelta(milliseconds=settings.share.lock_ms),
        responses=tuple(make(types.ShareFetchableTopicResponse, topic_id=topic_id, partitions=tuple(parts))
                        for topic_id, parts in by_topic.items()),
        node_endpoints=())


async def handle_share_acknowledge(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    group, member = request.group_id, request.member_id
    refused = _refusal(context, group, member)
    session, code = (None, refused) if refused is not None else _session(
        context, group, member, request.share_session_epoch)
    if session is not None and request.share_session_epoch == 0:
        session, code = None, ErrorCode.invalid_share_session_epoch  # acknowledging needs a session
    if session is None:
        return _ack_response(types, code)
    settings = await _settings(context, group)
    if settings is None:
        return _ack_response(types, ErrorCode.coordinator_not_available)
    slots = await _slots(context, request.topics)
    for topic in request.topics:
        for partition in topic.partitions:
            await _acknowledge(context, group, member, slots[(topic.topic_id, partition.partition_index)],
                               partition.acknowledgement_batches, settings)
    if request.share_session_epoch == FINAL_EPOCH:
        await _release_session(context, group, member, session)
    by_topic: dict[uuid.UUID, list[Any]] = {}
    for slot in slots.values():
        by_topic.setdefault(slot.topic_id, []).append(make(
            types.PartitionData, partition_index=slot.partition,
            error_code=slot.ack_code if slot.ack_code is not None else slot.code,
            current_leader=make(types.LeaderIdAndEpoch, leader_id=-1, leader_epoch=-1)))
    return _ack_response(types, ErrorCode.none, tuple(
        make(types.ShareAcknowledgeTopicResponse, topic_id=topic_id, partitions=tuple(parts))
        for topic_id, parts in by_topic.items()), settings.share.lock_ms)


def _ack_response(types: Any, code: ErrorCode, responses: tuple[Any, ...] = (), lock_ms: int = 0) -> Any:
    return make(types.ShareAcknowledgeResponse, throttle_time=NO_THROTTLE, error_code=code,
                acquisition_lock_timeout=datetime.timedelta(milliseconds=lock_ms),
                responses=responses, node_endpoints=())


ROUTES = (
    Route(76, 1, 1, handle_heartbeat, Access.AUTHORIZED),
    Route(77, 1, 1, handle_describe, Access.AUTHORIZED),
    Route(78, 1, 2, handle_share_fetch, Access.AUTHORIZED),
    Route(79, 1, 2, handle_share_acknowledge, Access.AUTHORIZED),
    Route(90, 0, 1, handle_describe_offsets, Access.AUTHORIZED),
    Route(91, 0, 0, handle_alter_offsets, Access.AUTHORIZED),
    Route(92, 0, 0, handle_delete_offsets, Access.AUTHORIZED),
)
