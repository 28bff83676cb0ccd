"""Metadata (key 3), v0-v12; DescribeCluster (key 60), v0-v1.

The brokers are the live gateways of the cluster on this Redis
(gateway/cluster.py, this gateway's view, no Redis round trip); the
controller is the one with the lowest node ID; each partition's leader is
computed from the live set the same way on every gateway, and is its only
replica and in-sync replica (Redis replication, not Kafka's, makes data
redundant). Each partition's leader epoch is the one its Redis meta hash
keeps (gateway/handlers/leader_epochs.py), read for all partitions of the
response in pipelines of EPOCH_STEP, -1 when Redis cannot say. Unknown
topics are auto-created when the gateway allows it and the request does (v4+), otherwise they get
UNKNOWN_TOPIC_OR_PARTITION; invalid names get INVALID_TOPIC_EXCEPTION;
unknown topic IDs (v10+) get UNKNOWN_TOPIC_ID. While Redis is unreachable,
named topics get LEADER_NOT_AVAILABLE (retriable) and the broker list is
still returned so clients keep their connection.

ACLs (as KafkaApis): all topics lists only those the principal may
DESCRIBE; a named topic it may not DESCRIBE is TOPIC_AUTHORIZATION_FAILED
(whether it exists or not, so its existence is not disclosed), one named
by an ID UNKNOWN_TOPIC_ID; auto-creation needs CREATE on the cluster or
the topic, else TOPIC_AUTHORIZATION_FAILED. DescribeCluster needs DESCRIBE
on the cluster. Authorized operations (topic, cluster) are computed when
the request asks for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import CLUSTER_NAME, NOT_REQUESTED, Operation, ResourceType
from ..storage import StorageUnavailable, TopicInfo
from ..topics import topic_or_autocreate
from ._build import NO_THROTTLE, make, response_types

OPERATIONS_NOT_REQUESTED = NOT_REQUESTED
NO_EPOCH = -1
# Metadata responses carry partitions' leader epochs from v7.
LEADER_EPOCH_VERSION = 7
# Partitions whose epochs one pipeline asks for: a metadata request for
# every topic of a large cluster goes to Redis in bounded steps.
EPOCH_STEP = 1000


def _partitions(types: Any, context: RequestContext, info: TopicInfo) -> tuple[Any, ...]:
    leader = context.cluster.leader
    return tuple(
        make(types.MetadataResponsePartition, error_code=ErrorCode.none, partition_index=index,
             leader_id=(node := leader(info.name, index)), leader_epoch=-1, replica_nodes=(node,),
             isr_nodes=(node,), offline_replicas=())
        for index in range(info.partitions)
    )


def _topic(types: Any, context: RequestContext, name: str | None, info: TopicInfo | None,
           code: ErrorCode, topic_id: Any = None, operations: int = OPERATIONS_NOT_REQUESTED) -> Any:
    return make(
        types.MetadataResponseTopic,
        error_code=code,
        # Names are nullable in responses from v12 only.
        name=info.name if info else (name if name is not None or context.api_version >= 12 else ""),
        topic_id=info.topic_id if info else topic_id,
        is_internal=False,
        partitions=_partitions(types, context, info) if info else (),
        topic_authorized_operations=operations,
    )


async def _leader_epochs(context: RequestContext,
                         partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The current leader epoch of each partition Redis could say it for."""
    epochs: dict[tuple[str, int], int] = {}
    for first in range(0, len(partitions), EPOCH_STEP):
        step = partitions[first:first + EPOCH_STEP]
        try:
            replies = await context.storage.leader_epochs(step)
        except StorageUnavailable:
            return epochs
        for partition, reply in zip(step, replies, strict=True):
            if not isinstance(reply, Exception):
                epochs[partition] = reply[1].current
    return epochs


async def _with_leader_epochs(context: RequestContext, topics: tuple[Any, ...]) -> tuple[Any, ...]:
    """The topics' answers with their partitions' leader epochs (Metadata v7+) filled in."""
    partitions = [(topic.name, partition.partition_index)
                  for topic in topics for partition in topic.partitions]
    if context.api_version < LEADER_EPOCH_VERSION or not partitions:
        return topics
    epochs = await _leader_epochs(context, partitions)

    def with_epoch(name: str, partition: Any) -> Any:
        epoch = epochs.get((name, partition.partition_index), NO_EPOCH)
        return dataclasses.replace(partition, leader_epoch=epoch)

    return tuple(dataclasses.replace(topic, partitions=tuple(with_epoch(topic.name, partition)
                                                             for partition in topic.partitions))
                 for topic in topics)


def _may_describe(context: RequestContext, name: str) -> bool:
    return context.authorize(Operation.DESCRIBE, ResourceType.TOPIC, name)


async def _requested_topics(context: RequestContext, request: Any, types: Any) -> tuple[Any, ...]:
    storage = context.storage
    asks_operations = bool(getattr(request, "include_topic_authorized_operations", False))

    def described(name: str | None, info: TopicInfo | None, code: ErrorCode, topic_id: Any = None) -> Any:
        operations = context.authorized_operations(ResourceType.TOPIC, info.name, asks_operations) \
            if info else OPERATIONS_NOT_REQUESTED
        return _topic(types, context, name, info, code, topic_id, operations)

    if request.topics is None or (context.api_version == 0 and not request.topics):
        return tuple(described(name, info, ErrorCode.none)
                     for name, info in (await storage.topics()).items() if _may_describe(context, name))
    allow = getattr(request, "allow_auto_topic_creation", True)
    results = []
    for wanted in request.topics:
        if wanted.name is None and context.api_version < 12:
            # Kafka: "Topic name can not be null for version 10/11" (topic IDs come with v12).
            results.append(_topic(types, context, None, None, ErrorCode.invalid_request))
            continue
        if wanted.name is None:
            info = await storage.topic_by_id(wanted.topic_id)
            if info is not None and not _may_describe(context, info.name):
                info = None  # as Kafka: not disclosed
            code = ErrorCode.none if info else ErrorCode.unknown_topic_id
            results.append(described(None, info, code, wanted.topic_id))
            continue
        if not _may_describe(context, wanted.name):
            results.append(_topic(types, context, wanted.name, None, ErrorCode.topic_authorization_failed))
            continue
        found, code = await topic_or_autocreate(storage, context.config, wanted.name, allow=allow,
                                                may_create=context.may_create_topic(wanted.name))
        results.append(described(wanted.name, found, code))
    return tuple(results)


async def handle_metadata(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    try:
        topics = await _with_leader_epochs(context, await _requested_topics(context, request, types))
    except StorageUnavailable:
        # Topic IDs exist in requests from v10 only.
        topics = tuple(
            _topic(types, context, wanted.name, None, ErrorCode.leader_not_available,
                   getattr(wanted, "topic_id", None))
            for wanted in request.topics or ()
        )
    cluster = context.cluster
    return make(
        types.MetadataResponse,
        throttle_time=NO_THROTTLE,
        brokers=tuple(make(types.MetadataResponseBroker, node_id=broker.node_id, host=broker.host,
                           port=broker.port, rack=broker.rack) for broker in cluster.brokers(context.broker)),
        cluster_id=context.broker.cluster_id,
        controller_id=cluster.controller_id(),
        topics=topics,
        cluster_authorized_operations=context.authorized_operations(
            ResourceType.CLUSTER, CLUSTER_NAME,
            bool(getattr(request, "include_cluster_authorized_operations", False))),
    )


async def handle_describe_cluster(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    broker = context.broker
    if not context.authorize_cluster(Operation.DESCRIBE):
        return make(types.DescribeClusterResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.cluster_authorization_failed, error_message=None,
                    endpoint_type=getattr(request, "endpoint_type", 1), cluster_id=broker.cluster_id,
                    controller_id=-1, brokers=(), cluster_authorized_operations=OPERATIONS_NOT_REQUESTED)
    if getattr(request, "endpoint_type", 1) != 1:
        # Endpoint type 2 asks for controllers; there are none to describe.
        return make(types.DescribeClusterResponse, throttle_time=NO_THROTTLE,
                    error_code=ErrorCode.unsupported_endpoint_type
                    if hasattr(ErrorCode, "unsupported_endpoint_type") else ErrorCode.invalid_request,
                    error_message="only broker endpoints are served", endpoint_type=request.endpoint_type,
                    cluster_id=broker.cluster_id, controller_id=-1, brokers=(),
                    cluster_authorized_operations=OPERATIONS_NOT_REQUESTED)
    return make(
        types.DescribeClusterResponse,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=1,
        cluster_id=broker.cluster_id,
        controller_id=context.cluster.controller_id(),
        brokers=tuple(make(types.DescribeClusterBroker, broker_id=live.node_id, host=live.host,
                           port=live.port, rack=live.rack, is_fenced=False)
                      for live in context.cluster.brokers(broker)),
        cluster_authorized_operations=context.authorized_operations(
            ResourceType.CLUSTER, CLUSTER_NAME, request.include_cluster_authorized_operations),
    )


ROUTES = (
    Route(3, 0, 12, handle_metadata, Access.AUTHORIZED),
    Route(60, 0, 1, handle_describe_cluster, Access.AUTHORIZED),
)
