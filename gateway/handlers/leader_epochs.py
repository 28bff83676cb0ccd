"""OffsetForLeaderEpoch (key 23), v2-v4, and the leader-epoch checks other handlers share.

A partition's leader epoch changes whenever the Redis server serving it
changed (a restart or a replica's promotion may have cut the log's tail;
gateway/storage/epochs.py). Clients that consumed under an epoch ask where
it ended: a position past that end means the log was truncated (KIP-320).
The answer follows Kafka's LeaderEpochFileCache.endOffsetFor: the current
epoch ends at the log end, an older one where the next known epoch begins,
an unknown newer one gets -1/-1. A request's current_leader_epoch older than
the partition's gets FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH
(the client's metadata is ahead of what this read saw; it retries). All
partitions of a request are looked up in one Redis round trip; Redis
unreachable gives KAFKA_STORAGE_ERROR per partition, also when the topic
cannot be looked up; a topic the principal may not DESCRIBE gets
TOPIC_AUTHORIZATION_FAILED (as Kafka). The replica_id (v3+) is not looked at: there are no
followers, every caller is answered as a consumer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..storage import LeaderEpochs, StorageUnavailable, TopicInfo
from ._build import NO_THROTTLE, make, response_types

API_KEY = 23
NO_EPOCH = -1
# Answer: error, epoch, end offset.
Answer = tuple[ErrorCode, int, int]


def epoch_error(current_leader_epoch: int, epochs: LeaderEpochs) -> ErrorCode:
    """Kafka's check of a request's current_leader_epoch (-1: none given) against the partition's."""
    if current_leader_epoch == NO_EPOCH or current_leader_epoch == epochs.current:
        return ErrorCode.none
    if current_leader_epoch < epochs.current:
        return ErrorCode.fenced_leader_epoch
    return ErrorCode.unknown_leader_epoch


async def described_topic(context: RequestContext, name: str) -> TopicInfo | ErrorCode:
    """The topic, or the error each of its partitions gets (Kafka asks DESCRIBE on the topic):
    OffsetForLeaderEpoch and ListOffsets look topics up alike."""
    if not context.authorize(Operation.DESCRIBE, ResourceType.TOPIC, name):
        return ErrorCode.topic_authorization_failed
    try:
        info = await context.storage.topic(name)
    except StorageUnavailable:
        return ErrorCode.kafka_storage_error
    return ErrorCode.unknown_topic_or_partition if info is None else info


def _answer(partition: Any, found: tuple[int, LeaderEpochs] | Exception) -> Answer:
    if isinstance(found, StorageUnavailable):
        return ErrorCode.kafka_storage_error, NO_EPOCH, -1
    if isinstance(found, Exception):
        raise found
    log_end, epochs = found
    code = epoch_error(partition.current_leader_epoch, epochs)
    if code != ErrorCode.none:
        return code, NO_EPOCH, -1
    epoch, end_offset = epochs.end_offset_for(partition.leader_epoch, log_end)
    return ErrorCode.none, epoch, end_offset


async def _answers(context: RequestContext, request: Any) -> list[list[Answer]]:
    """Per topic, per partition: (error, epoch, end offset)."""
    topics = await asyncio.gather(*(described_topic(context, topic.topic) for topic in request.topics))
    answers: list[list[Answer]] = []
    asked: list[tuple[Any, int, int]] = []  # the partition, where its answer goes
    partitions: list[tuple[str, int]] = []
    for topic_index, (topic, info) in enumerate(zip(request.topics, topics, strict=True)):
        answers.append([])
        for partition in topic.partitions:
            if isinstance(info, ErrorCode):
                answers[-1].append((info, NO_EPOCH, -1))
            elif not 0 <= partition.partition < info.partitions:
                answers[-1].append((ErrorCode.unknown_topic_or_partition, NO_EPOCH, -1))
            else:
                asked.append((partition, topic_index, len(answers[-1])))
                partitions.append((info.name, partition.partition))
                answers[-1].append((ErrorCode.none, NO_EPOCH, -1))
    if partitions:
        found: list[tuple[int, LeaderEpochs] | Exception]
        try:
            found = await context.storage.leader_epochs(partitions)
        except StorageUnavailable as exc:
            found = [exc] * len(partitions)
        for (partition, t, p), result in zip(asked, found, strict=True):
            answers[t][p] = _answer(partition, result)
    return answers


async def handle(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    answers = await _answers(context, request)
    return make(types.OffsetForLeaderEpochResponse, throttle_time=NO_THROTTLE, topics=tuple(
        make(types.OffsetForLeaderTopicResult, topic=topic.topic, partitions=tuple(
            make(types.EpochEndOffset, error_code=code, partition=partition.partition,
                 leader_epoch=epoch, end_offset=end_offset)
            for partition, (code, epoch, end_offset) in zip(topic.partitions, topic_answers, strict=True)))
        for topic, topic_answers in zip(request.topics, answers, strict=True)))


ROUTES = (Route(API_KEY, 2, 4, handle, Access.AUTHORIZED),)
