"""Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete.

A committed offset is the Redis consumer group of the same name on the
partition's stream (docs/mapping.md), so these read and write what
``XINFO GROUPS`` shows and what Redis-native XREADGROUP readers move.

OffsetCommit (key 8) v2-v10: members of a managed group are checked as
Kafka checks them (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID); generation -1 commits (admin
tools, assign() consumers) are accepted while the group has no members.
Metadata over 4096 bytes gets OFFSET_METADATA_TOO_LARGE (Kafka's
offset.metadata.max.bytes); unknown partitions UNKNOWN_TOPIC_OR_PARTITION
(UNKNOWN_TOPIC_ID by topic ID in v10); Redis unreachable
COORDINATOR_NOT_AVAILABLE. retention_time (v2-v4) is ignored: offsets do not
expire. A negative offset removes the commit.
OffsetFetch (key 9) v1-v10: named partitions or, with topics null (v2+),
every partition the group committed on; several groups per request from v8;
topic IDs from v10. Partitions without a commit answer -1. Redis
unreachable: COORDINATOR_LOAD_IN_PROGRESS for the group (v2+; see
OFFSETS_UNREADABLE), COORDINATOR_NOT_AVAILABLE per partition in v1. require_stable
needs nothing (no transactions). The v9 member ID and epoch belong to the
KIP-848 protocol and are ignored for classic groups.
OffsetDelete (key 47) v0: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP or, per
partition of a topic an active consumer group subscribes to,
GROUP_SUBSCRIBED_TO_TOPIC.

ACLs (as KafkaApis): OffsetCommit needs READ on the group (else every
partition GROUP_AUTHORIZATION_FAILED) and READ on each topic (else its
partitions TOPIC_AUTHORIZATION_FAILED); OffsetFetch DESCRIBE on the group
(GROUP_AUTHORIZATION_FAILED) and on each named topic
(TOPIC_AUTHORIZATION_FAILED), and all-partitions fetches leave out the
topics it may not DESCRIBE; OffsetDelete DELETE on the group and READ on
each topic.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..storage import StorageUnavailable, TopicInfo
from ..storage.group_base import Fenced, OffsetCommit
from ._build import NO_THROTTLE, make, response_types

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 4096


async def _topic(context: RequestContext, name: str | None, topic_id: uuid.UUID | None) -> TopicInfo | None:
    if topic_id is not None:
        return await context.storage.topic_by_id(topic_id)
    return await context.storage.topic(name or "")


async def _topic_or_unavailable(context: RequestContext, name: str | None,
                                topic_id: uuid.UUID | None) -> TopicInfo | StorageUnavailable | None:
    try:
        return await _topic(context, name, topic_id)
    except StorageUnavailable as exc:
        return exc


def _by_id(context: RequestContext) -> bool:
    return context.api_version >= 10


def _may_topic(context: RequestContext, operation: Operation, name: str | None,
               info: TopicInfo | StorageUnavailable | None) -> bool:
    """The topic's ACL check, by its name (asked or found by ID); an unknown ID is left to say so."""
    if isinstance(info, TopicInfo):
        name = info.name
    if name is None:
        return True
    return context.authorize(operation, ResourceType.TOPIC, name)


def _may_group(context: RequestContext, operation: Operation, group_id: str) -> bool:
    return context.authorize(operation, ResourceType.GROUP, group_id)


def _unknown_topic(context: RequestContext) -> ErrorCode:
    return ErrorCode.unknown_topic_id if _by_id(context) else ErrorCode.unknown_topic_or_partition


# -- OffsetCommit -----------------------------------------------------------------------


def _commit_error(info: TopicInfo | StorageUnavailable | None, context: RequestContext,
                  partition: Any) -> ErrorCode:
    if isinstance(info, StorageUnavailable):
        return ErrorCode.coordinator_not_available
    if info is None:
        return _unknown_topic(context)
    if not 0 <= partition.partition_index < info.partitions:
        return ErrorCode.unknown_topic_or_partition
    metadata = partition.committed_metadata or ""
    if len(metadata.encode()) > MAX_METADATA_BYTES:
        return ErrorCode.offset_metadata_too_large
    return ErrorCode.none


async def _store_commits(context: RequestContext, group_id: str,
                         commits: list[OffsetCommit]) -> list[ErrorCode]:
    groups = context.coordinator
    forget = [(c.topic, c.partition) for c in commits if c.offset < 0]
    keep = [c for c in commits if c.offset >= 0]
    try:
        if forget:
            await groups.storage.delete_offsets(group_id, forget)
        results = await groups.storage.commit_offsets(group_id, keep, groups.protocol_type(group_id),
                                                      groups.fence_token(group_id))
    except StorageUnavailable:
        return [ErrorCode.coordinator_not_available] * len(commits)
    by_partition = {(c.topic, c.partition): _stored(result) for c, result in zip(keep, results, strict=True)}
    return [by_partition.get((c.topic, c.partition), ErrorCode.none) for c in commits]


def _stored(result: Exception | None) -> ErrorCode:
    if result is None:
        return ErrorCode.none
    if isinstance(result, StorageUnavailable):
        return ErrorCode.coordinator_not_available
    if isinstance(result, Fenced):
        # A later coordinator of the group committed there: this gateway lost
        # the group's lease while the commit was on its way.
        return ErrorCode.not_coordinator
    log.error("offset commit failed in Redis: %r", result)
    return ErrorCode.unknown_server_error


async def handle_offset_commit(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    if _may_group(context, Operation.READ, request.group_id):
        group_error = await context.coordinator.validate_commit(
            request.group_id, request.member_id, getattr(request, "group_instance_id", None),
            request.generation_id_or_member_epoch)
    else:
        group_error = ErrorCode.group_authorization_failed
    # Per topic: (name, topic ID, [(partition index, error)]); commits collected on the way.
    answers: list[tuple[Any, Any, list[list[Any]]]] = []
    commits: list[OffsetCommit] = []
    slots: list[list[Any]] = []
    for topic in request.topics:
        topic_id = topic.topic_id if _by_id(context) else None
        info = await _topic_or_unavailable(context, getattr(topic, "name", None), topic_id)
        readable = _may_topic(context, Operation.READ, getattr(topic, "name", None), info)
        partitions: list[list[Any]] = []
        for partition in topic.partitions:
            code = _commit_error(info, context, partition)
            if group_error == ErrorCode.group_authorization_failed:
                code = group_error
            elif not readable:
                code = ErrorCode.topic_authorization_failed
            elif code == ErrorCode.none and group_error != ErrorCode.none:
                code = group_error
            slot = [partition.partition_index, code]
            partitions.append(slot)
            if code == ErrorCode.none and isinstance(info, TopicInfo):
                commits.append(OffsetCommit(info.name, partition.partition_index, partition.committed_offset,
                                            getattr(partition, "committed_leader_epoch", -1),
                                            partition.committed_metadata or ""))
                slots.append(slot)
        answers.append((getattr(topic, "name", None), topic_id, partitions))
    if commits:
        for slot, code in zip(slots, await _store_commits(context, request.group_id, commits), strict=True):
            slot[1] = code
    topics = tuple(
        make(types.OffsetCommitResponseTopic, name=name, topic_id=topic_id, partitions=tuple(
            make(types.OffsetCommitResponsePartition, partition_index=index, error_code=code)
            for index, code in partitions))
        for name, topic_id, partitions in answers
    )
    return make(types.OffsetCommitResponse, throttle_time=NO_THROTTLE, topics=topics)


# -- OffsetFetch ---------------------------------------------------------------------------


class _FetchTypes:
    """The response classes of this OffsetFetch version (renamed at v8)."""

    def __init__(self, types: Any, grouped: bool) -> None:
        suffix = "s" if grouped else ""
        self.partition = getattr(types, "OffsetFetchResponsePartition" + suffix)
        self.topic = getattr(types, "OffsetFetchResponseTopic" + suffix)


def _partition_answer(fetch_types: _FetchTypes, index: int, offset: int = -1, epoch: int = -1,
                      metadata: str = "", code: ErrorCode = ErrorCode.none) -> Any:
    return make(fetch_types.partition, partition_index=index, committed_offset=offset,
                committed_leader_epoch=epoch, metadata=metadata, error_code=code)


async def _fetch_named(context: RequestContext, fetch_types: _FetchTypes, group_id: str,
                       topics: Any) -> tuple[Any, ...]:
    """Offsets of the partitions asked for; -1 where there is no commit."""
    wanted: list[tuple[str, int]] = []
    plan: list[tuple[Any, Any, TopicInfo | None, Any, bool]] = []
    for topic in topics:
        topic_id = topic.topic_id if _by_id(context) else None
        info = await _topic(context, getattr(topic, "name", None), topic_id)
        describable = _may_topic(context, Operation.DESCRIBE, getattr(topic, "name", None), info)
        plan.append((getattr(topic, "name", None), topic_id, info if describable else None,
                     topic.partition_indexes, describable))
        if info is not None and describable:
            wanted += [(info.name, i) for i in topic.partition_indexes if 0 <= i < info.partitions]
    fetched = await context.coordinator.storage.fetch_offsets(group_id, wanted)
    found = {(c.topic, c.partition): c for c in fetched}
    answers = []
    for name, topic_id, info, indexes, describable in plan:
        partitions = []
        for index in indexes:
            committed = found.get((info.name, index)) if info is not None else None
            if not describable:
                partitions.append(_partition_answer(fetch_types, index,
                                                    code=ErrorCode.topic_authorization_failed))
            elif info is None and topic_id is not None:
                partitions.append(_partition_answer(fetch_types, index, code=ErrorCode.unknown_topic_id))
            elif committed is None:
                partitions.append(_partition_answer(fetch_types, index))
            else:
                partitions.append(_partition_answer(fetch_types, index, committed.offset,
                                                    committed.leader_epoch, committed.metadata))
        answers.append(make(fetch_types.topic, name=name, topic_id=topic_id, partitions=tuple(partitions)))
    return tuple(answers)


async def _fetch_all(context: RequestContext, fetch_types: _FetchTypes, group_id: str) -> tuple[Any, ...]:
    """Every partition the group has a committed offset on."""
    topics = await context.storage.topics()
    candidates = [(topic, partition)
                  for topic, partition in await context.coordinator.storage.committed_partitions(group_id)
                  if topic in topics and partition < topics[topic].partitions]
    committed = [c for c in await context.coordinator.storage.fetch_offsets(group_id, candidates)
                 if c.offset >= 0]
    answers = []
    for name in sorted({c.topic for c in committed}):
        if not context.authorize(Operation.DESCRIBE, ResourceType.TOPIC, name):
            continue
        partitions = tuple(_partition_answer(fetch_types, c.partition, c.offset, c.leader_epoch, c.metadata)
                           for c in committed if c.topic == name)
        answers.append(make(fetch_types.topic, name=name, topic_id=topics[name].topic_id,
                            partitions=partitions))
    return tuple(answers)


# The group-level answer while Redis cannot be read. Kafka answers
# COORDINATOR_NOT_AVAILABLE (or NOT_COORDINATOR) when its coordinator is not
# active, and librdkafka's AdminClient (list_consumer_group_offsets, 2.16)
# crashes on either: it asks its consumer-group handle, which an AdminClient
# does not have, to look the coordinator up again (SIGSEGV). Kafka's answer
# while the coordinator loads its state, COORDINATOR_LOAD_IN_PROGRESS, is
# retriable for every client (Java, librdkafka's consumer, kafka-python,
# aiokafka retry it) and the AdminClient reports it as an error.
OFFSETS_UNREADABLE = ErrorCode.coordinator_load_in_progress


async def _fetch_group(context: RequestContext, fetch_types: _FetchTypes, group_id: str,
                       topics: Any) -> tuple[ErrorCode, tuple[Any, ...]]:
    if not _may_group(context, Operation.DESCRIBE, group_id):
        return ErrorCode.group_authorization_failed, ()
    try:
        if topics is None:
            return ErrorCode.none, await _fetch_all(context, fetch_types, group_id)
        return ErrorCode.none, await _fetch_named(context, fetch_types, group_id, topics)
    except StorageUnavailable:
        return OFFSETS_UNREADABLE, ()


def _v1_unavailable(fetch_types: _FetchTypes, topics: Any, code: ErrorCode) -> tuple[Any, ...]:
    # v1 has no top-level error: every partition carries it (librdkafka takes
    # partition errors without looking the coordinator up again).
    if code == OFFSETS_UNREADABLE:
        code = ErrorCode.coordinator_not_available
    return tuple(
        make(fetch_types.topic, name=topic.name, partitions=tuple(
            _partition_answer(fetch_types, index, code=code)
            for index in topic.partition_indexes))
        for topic in topics or ()
    )


async def handle_offset_fetch(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    if context.api_version >= 8:
        fetch_types = _FetchTypes(types, grouped=True)
        groups = []
        for group in request.groups:
            code, topics = await _fetch_group(context, fetch_types, group.group_id, group.topics)
            groups.append(make(types.OffsetFetchResponseGroup, group_id=group.group_id, topics=topics,
                               error_code=code))
        return make(types.OffsetFetchResponse, throttle_time=NO_THROTTLE, groups=tuple(groups))
    fetch_types = _FetchTypes(types, grouped=False)
    code, topics = await _fetch_group(context, fetch_types, request.group_id, request.topics)
    if code != ErrorCode.none and context.api_version < 2:
        topics = _v1_unavailable(fetch_types, request.topics, code)
    return make(types.OffsetFetchResponse, throttle_time=NO_THROTTLE, topics=topics, error_code=code)


# -- OffsetDelete --------------------------------------------------------------------------


async def handle_offset_delete(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    if not _may_group(context, Operation.DELETE, request.group_id):
        return make(types.OffsetDeleteResponse, error_code=ErrorCode.group_authorization_failed,
                    throttle_time=NO_THROTTLE, topics=())
    known: list[tuple[str, int]] = []
    unknown: set[tuple[str, int]] = set()
    unreadable = {topic.name for topic in request.topics
                  if not context.authorize(Operation.READ, ResourceType.TOPIC, topic.name)}
    try:
        infos = {topic.name: await context.storage.topic(topic.name) for topic in request.topics}
    except StorageUnavailable:
        return make(types.OffsetDeleteResponse, error_code=ErrorCode.coordinator_not_available,
                    throttle_time=NO_THROTTLE, topics=())
    for topic in request.topics:
        info = infos[topic.name]
        for partition in topic.partitions:
            key = (topic.name, partition.partition_index)
            if topic.name in unreadable:
                continue
            if info is None or not 0 <= partition.partition_index < info.partitions:
                unknown.add(key)
            else:
                known.append(key)
    code, refused = await context.coordinator.delete_offsets(request.group_id, known)
    topics = tuple(
        make(types.OffsetDeleteResponseTopic, name=topic.name, partitions=tuple(
            make(types.OffsetDeleteResponsePartition, partition_index=p.partition_index,
                 error_code=_deleted_code(topic.name, p.partition_index, unreadable, unknown, refused))
            for p in topic.partitions))
        for topic in request.topics
    ) if code == ErrorCode.none else ()
    return make(types.OffsetDeleteResponse, error_code=code, throttle_time=NO_THROTTLE, topics=topics)


def _deleted_code(topic: str, partition: int, unreadable: set[str], unknown: set[tuple[str, int]],
                  refused: dict[tuple[str, int], ErrorCode]) -> ErrorCode:
    if topic in unreadable:
        return ErrorCode.topic_authorization_failed
    if (topic, partition) in unknown:
        return ErrorCode.unknown_topic_or_partition
    return refused.get((topic, partition), ErrorCode.none)


ROUTES = (
    Route(8, 2, 10, handle_offset_commit, Access.AUTHORIZED),
    Route(9, 1, 10, handle_offset_fetch, Access.AUTHORIZED),
    Route(47, 0, 0, handle_offset_delete, Access.AUTHORIZED),
)
