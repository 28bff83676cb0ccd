"""Deleting records.

DeleteRecords (key 21) v0-v2: trims each partition up to the offset asked
for (-1: the high watermark) with XTRIM MINID in one script per partition
(gateway/storage/lua/delete_records.lua), trimming the offset index with
it, and returns the new low watermark (log start offset). An offset at or
below the log start offset trims nothing; past the high watermark gets
OFFSET_OUT_OF_RANGE; unknown topics or partitions
UNKNOWN_TOPIC_OR_PARTITION; Redis unreachable REQUEST_TIMED_OUT, also when
the topic itself cannot be looked up (a retriable error, never "unknown
topic", which clients do not retry).
A topic the principal may not DELETE: TOPIC_AUTHORIZATION_FAILED (ACLs,
as Kafka).
Gaps: none known; the request's timeout is not needed (the trim is done
when the script returns).
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..storage import OffsetOutOfRange, StorageUnavailable
from ._build import NO_THROTTLE, make, response_types

API_KEY = 21


async def _delete_one(context: RequestContext, topic: str, partitions: int | None,
                      partition: Any) -> tuple[ErrorCode, int]:
    index = partition.partition_index
    if partitions is None:
        return ErrorCode.request_timed_out, -1
    if not 0 <= index < partitions:
        return ErrorCode.unknown_topic_or_partition, -1
    try:
        return ErrorCode.none, await context.storage.delete_records(topic, index, partition.offset)
    except OffsetOutOfRange:
        return ErrorCode.offset_out_of_range, -1
    except StorageUnavailable:
        return ErrorCode.request_timed_out, -1


async def _partition_count(context: RequestContext, name: str) -> int | None:
    """The topic's partition count, 0 for an unknown topic, None when Redis cannot say."""
    try:
        info = await context.storage.topic(name)
    except StorageUnavailable:
        return None
    return 0 if info is None else info.partitions


async def handle(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    topics = []
    for topic in request.topics:
        deletable = context.authorize(Operation.DELETE, ResourceType.TOPIC, topic.name)
        partitions = await _partition_count(context, topic.name) if deletable else None
        results = []
        for partition in topic.partitions:
            code, low = await _delete_one(context, topic.name, partitions, partition) if deletable \
                else (ErrorCode.topic_authorization_failed, -1)
            results.append(make(types.DeleteRecordsPartitionResult, partition_index=partition.partition_index,
                                low_watermark=low, error_code=code))
        topics.append(make(types.DeleteRecordsTopicResult, name=topic.name, partitions=tuple(results)))
    return make(types.DeleteRecordsResponse, throttle_time=NO_THROTTLE, topics=tuple(topics))


ROUTES = (Route(API_KEY, 0, 2, handle, Access.AUTHORIZED),)
