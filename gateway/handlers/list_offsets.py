"""ListOffsets (key 2), v1-v8.

Timestamps: -1 latest (the high watermark), -2 earliest (the log start
offset), -3 the offset of the largest timestamp (v7+), -4 earliest local
(v8+; there is no tiered storage, so the log start offset); a time in ms
gives the first offset whose timestamp is at or after it (see
docs/mapping.md for how CreateTime is searched). No record at or after the
time: offset -1 and timestamp -1, as Kafka answers.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Route
from ..storage import ReadRequest, StorageUnavailable, TopicInfo
from ..topics import config_value, topic_or_none
from ._build import NO_THROTTLE, make, response_types

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL = -1, -2, -3, -4


async def _lookup(context: RequestContext, info: TopicInfo, partition: int,
                  timestamp: int) -> tuple[ErrorCode, int, int]:
    """(error, offset, timestamp) for one partition."""
    storage = context.storage
    if timestamp >= 0:
        offset, found_ts = await storage.offset_for_time(
            info.name, partition, timestamp,
            by_append_time=config_value(info, "message.timestamp.type") == "LogAppendTime")
        return ErrorCode.none, offset, found_ts
    offsets = await storage.offsets(info.name, partition)
    if timestamp == LATEST:
        return ErrorCode.none, offsets.end_offset, -1
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return ErrorCode.none, offsets.log_start_offset, -1
    if timestamp == MAX_TIMESTAMP:
        if (config_value(info, "message.timestamp.type") == "LogAppendTime"
                and offsets.end_offset > offsets.log_start_offset):
            return await _newest_append_time(context, info, partition, offsets.end_offset - 1)
        return ErrorCode.none, offsets.max_timestamp_offset, offsets.max_timestamp
    return ErrorCode.invalid_request, -1, -1


async def _newest_append_time(context: RequestContext, info: TopicInfo, partition: int,
                              last_offset: int) -> tuple[ErrorCode, int, int]:
    # A LogAppendTime topic's records carry their append time (the entry ID),
    # which only rises: the newest record has the largest timestamp.
    (result,) = await context.storage.read([ReadRequest(info.name, partition, last_offset, 1 << 20, 1)])
    if isinstance(result, Exception):
        raise result
    if not result.append_times:
        return ErrorCode.none, -1, -1
    return ErrorCode.none, last_offset, result.append_times[0]


async def _partition(context: RequestContext, types: Any, info: TopicInfo | None,
                     partition: Any) -> Any:
    if info is None or not 0 <= partition.partition_index < info.partitions:
        code, offset, timestamp = ErrorCode.unknown_topic_or_partition, -1, -1
    else:
        try:
            code, offset, timestamp = await _lookup(context, info, partition.partition_index,
                                                    partition.timestamp)
        except StorageUnavailable:
            code, offset, timestamp = ErrorCode.kafka_storage_error, -1, -1
    return make(types.ListOffsetsPartitionResponse, partition_index=partition.partition_index,
                error_code=code, timestamp=timestamp, offset=offset, leader_epoch=-1)


async def handle(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    topics = []
    for topic in request.topics:
        info = await topic_or_none(context.storage, topic.name)
        partitions = tuple([await _partition(context, types, info, p) for p in topic.partitions])
        topics.append(make(types.ListOffsetsTopicResponse, name=topic.name, partitions=partitions))
    return make(types.ListOffsetsResponse, throttle_time=NO_THROTTLE, topics=tuple(topics))


ROUTES = (Route(2, 1, 8, handle),)
