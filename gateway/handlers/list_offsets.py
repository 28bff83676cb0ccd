"""ListOffsets (key 2), v1-v8.

Timestamps: -1 latest (the high watermark), -2 earliest (the log start
offset), -3 the offset of the largest timestamp (v7+), -4 earliest local
(v8+; there is no tiered storage, so the log start offset); a time in ms
gives the first offset whose timestamp is at or after it (see
docs/mapping.md for how CreateTime is searched). No record at or after the
time: offset -1 and timestamp -1, as Kafka answers. Any int64 time is
looked up exactly.

All partitions of a request are looked up in one Redis round trip. Redis
unreachable gives each partition KAFKA_STORAGE_ERROR (retriable, as Kafka
answers for a partition whose log directory is offline), also when the
topic itself could not be looked up: an outage never reads as an unknown
topic. Other negative timestamps get INVALID_REQUEST. A topic the
principal may not DESCRIBE: TOPIC_AUTHORIZATION_FAILED (ACLs, as Kafka).

Leader epochs (gateway/handlers/leader_epochs.py): the answer carries the
epoch of the offset it names (latest: the current epoch; -1 with offset -1),
and a current_leader_epoch (v4+) other than the partition's gets
FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH, as Kafka checks it. Lookups by
time ask for the partitions' epochs in one more round trip.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..storage import LeaderEpochs, OffsetQuery, PartitionOffsets, StorageUnavailable, TimeOffset, TopicInfo
from ..topics import config_value
from ._build import NO_THROTTLE, make, response_types
from .leader_epochs import NO_EPOCH, described_topic, epoch_error

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL = -1, -2, -3, -4
SPECIAL_TIMESTAMPS = (LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL)
Answer = tuple[ErrorCode, int, int, int]  # error, offset, timestamp, leader epoch
# A partition's end offset and leader epochs, as storage.leader_epochs answers.
Epochs = tuple[int, LeaderEpochs]


def _by_append_time(info: TopicInfo) -> bool:
    return config_value(info, "message.timestamp.type") == "LogAppendTime"


def _query(info: TopicInfo, partition: Any) -> OffsetQuery:
    timestamp = partition.timestamp
    return OffsetQuery(info.name, partition.partition_index, None if timestamp < 0 else timestamp,
                       _by_append_time(info))


def _answer(info: TopicInfo, partition: Any, found: PartitionOffsets | TimeOffset | Exception,
            time_epochs: Epochs | Exception | None = None) -> Answer:
    timestamp = partition.timestamp
    if isinstance(found, StorageUnavailable):
        return ErrorCode.kafka_storage_error, -1, -1, NO_EPOCH
    if isinstance(found, Exception):
        raise found
    if isinstance(found, TimeOffset):
        return _time_answer(partition, found, time_epochs)
    code = epoch_error(getattr(partition, "current_leader_epoch", NO_EPOCH), found.epochs)
    if code != ErrorCode.none:
        return code, -1, -1, NO_EPOCH
    offset, found_timestamp = _offset_and_timestamp(info, timestamp, found)
    epoch = found.epochs.current if timestamp == LATEST else found.epochs.epoch_of(offset)
    return ErrorCode.none, offset, found_timestamp, epoch if offset >= 0 else NO_EPOCH


def _time_answer(partition: Any, found: TimeOffset, epochs: Epochs | Exception | None) -> Answer:
    """A lookup by time's answer, with the epoch of the record found (-1 for none)."""
    if epochs is None or isinstance(epochs, StorageUnavailable):
        return ErrorCode.kafka_storage_error, -1, -1, NO_EPOCH
    if isinstance(epochs, Exception):
        raise epochs
    code = epoch_error(getattr(partition, "current_leader_epoch", NO_EPOCH), epochs[1])
    if code != ErrorCode.none:
        return code, -1, -1, NO_EPOCH
    epoch = epochs[1].epoch_of(found.offset) if found.offset >= 0 else NO_EPOCH
    return ErrorCode.none, found.offset, found.timestamp, epoch


async def _epochs_of_time_lookups(context: RequestContext, asked: list[tuple[TopicInfo, Any, int, int]],
                                  found: list[PartitionOffsets | TimeOffset | Exception],
                                  ) -> list[Epochs | Exception | None]:
    """The leader epochs of the partitions looked up by time (their scripts do not report them)."""
    by_time = [i for i, result in enumerate(found) if isinstance(result, TimeOffset)]
    epochs: list[Epochs | Exception | None] = [None] * len(found)
    if not by_time:
        return epochs
    partitions = [(asked[i][0].name, asked[i][1].partition_index) for i in by_time]
    replies: list[Epochs | Exception]
    try:
        replies = await context.storage.leader_epochs(partitions)
    except StorageUnavailable as exc:
        replies = [exc] * len(partitions)
    for i, reply in zip(by_time, replies, strict=True):
        epochs[i] = reply
    return epochs


def _offset_and_timestamp(info: TopicInfo, timestamp: int, found: PartitionOffsets) -> tuple[int, int]:
    if timestamp == LATEST:
        return found.end_offset, -1
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return found.log_start_offset, -1
    if _by_append_time(info) and found.end_offset > found.log_start_offset:
        # A LogAppendTime topic's records carry their append time (the entry
        # ID), which only rises: the newest record has the largest timestamp.
        return found.end_offset - 1, found.newest_append_time
    return found.max_timestamp_offset, found.max_timestamp


async def _answers(context: RequestContext, request: Any) -> list[list[Answer]]:
    """Per topic, per partition: (error, offset, timestamp, leader epoch)."""
    topics = await asyncio.gather(*(described_topic(context, topic.name) for topic in request.topics))
    answers: list[list[Answer]] = []
    asked: list[tuple[TopicInfo, Any, int, int]] = []  # topic, partition, where its answer goes
    for topic_index, (topic, info) in enumerate(zip(request.topics, topics, strict=True)):
        answers.append([])
        for partition in topic.partitions:
            if isinstance(info, ErrorCode):
                answers[-1].append((info, -1, -1, NO_EPOCH))
            elif not 0 <= partition.partition_index < info.partitions:
                answers[-1].append((ErrorCode.unknown_topic_or_partition, -1, -1, NO_EPOCH))
            elif partition.timestamp < 0 and partition.timestamp not in SPECIAL_TIMESTAMPS:
                answers[-1].append((ErrorCode.invalid_request, -1, -1, NO_EPOCH))
            else:
                asked.append((info, partition, topic_index, len(answers[-1])))
                answers[-1].append((ErrorCode.none, -1, -1, NO_EPOCH))
    if asked:
        queries = [_query(info, partition) for info, partition, _, _ in asked]
        found: list[PartitionOffsets | TimeOffset | Exception]
        try:
            found = await context.storage.list_offsets(queries)
        except StorageUnavailable as exc:
            found = [exc] * len(queries)
        time_epochs = await _epochs_of_time_lookups(context, asked, found)
        for (info, partition, t, p), result, epochs in zip(asked, found, time_epochs, strict=True):
            answers[t][p] = _answer(info, partition, result, epochs)
    return answers


async def handle(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    answers = await _answers(context, request)
    topics = tuple(
        make(types.ListOffsetsTopicResponse, name=topic.name, partitions=tuple(
            make(types.ListOffsetsPartitionResponse, partition_index=partition.partition_index,
                 error_code=code, timestamp=timestamp, offset=offset, leader_epoch=epoch)
            for partition, (code, offset, timestamp, epoch)
            in zip(topic.partitions, topic_answers, strict=True)))
        for topic, topic_answers in zip(request.topics, answers, strict=True))
    return make(types.ListOffsetsResponse, throttle_time=NO_THROTTLE, topics=topics)


ROUTES = (Route(2, 1, 8, handle, Access.AUTHORIZED),)
