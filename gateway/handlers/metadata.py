"""Metadata (key 3), v0-v12; DescribeCluster (key 60), v0-v1.

The brokers are the live gateways of the cluster on this Redis
(gateway/cluster.py, this gateway's view, no Redis round trip); the
controller is the one with the lowest node ID; each partition's leader is
computed from the live set the same way on every gateway, and is its only
replica and in-sync replica (Redis replication, not Kafka's, makes data
redundant). Leader epochs are not tracked (-1). Unknown topics are auto-created when the
gateway allows it and the request does (v4+), otherwise they get
UNKNOWN_TOPIC_OR_PARTITION; invalid names get INVALID_TOPIC_EXCEPTION;
unknown topic IDs (v10+) get UNKNOWN_TOPIC_ID. While Redis is unreachable,
named topics get LEADER_NOT_AVAILABLE (retriable) and the broker list is
still returned so clients keep their connection. Authorized operations are
not computed (ACLs do not exist yet): the "not requested" value is sent.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..storage import StorageUnavailable, TopicInfo
from ..topics import topic_or_autocreate
from ._build import NO_THROTTLE, make, response_types

OPERATIONS_NOT_REQUESTED = -(2**31)


def _partitions(types: Any, context: RequestContext, info: TopicInfo) -> tuple[Any, ...]:
    leader = context.cluster.leader
    return tuple(
        make(types.MetadataResponsePartition, error_code=ErrorCode.none, partition_index=index,
             leader_id=(node := leader(info.name, index)), leader_epoch=-1, replica_nodes=(node,),
             isr_nodes=(node,), offline_replicas=())
        for index in range(info.partitions)
    )


def _topic(types: Any, context: RequestContext, name: str | None, info: TopicInfo | None,
           code: ErrorCode, topic_id: Any = None) -> Any:
    return make(
        types.MetadataResponseTopic,
        error_code=code,
        # Names are nullable in responses from v12 only.
        name=info.name if info else (name if name is not None or context.api_version >= 12 else ""),
        topic_id=info.topic_id if info else topic_id,
        is_internal=False,
        partitions=_partitions(types, context, info) if info else (),
        topic_authorized_operations=OPERATIONS_NOT_REQUESTED,
    )


async def _requested_topics(context: RequestContext, request: Any, types: Any) -> tuple[Any, ...]:
    storage = context.storage
    if request.topics is None or (context.api_version == 0 and not request.topics):
        return tuple(_topic(types, context, name, info, ErrorCode.none)
                     for name, info in (await storage.topics()).items())
    allow = getattr(request, "allow_auto_topic_creation", True)
    results = []
    for wanted in request.topics:
        if wanted.name is None and context.api_version < 12:
            # Kafka: "Topic name can not be null for version 10/11" (topic IDs come with v12).
            results.append(_topic(types, context, None, None, ErrorCode.invalid_request))
            continue
        if wanted.name is None:
            info = await storage.topic_by_id(wanted.topic_id)
            code = ErrorCode.none if info else ErrorCode.unknown_topic_id
            results.append(_topic(types, context, None, info, code, wanted.topic_id))
            continue
        found, code = await topic_or_autocreate(storage, context.config, wanted.name, allow=allow)
        results.append(_topic(types, context, wanted.name, found, code))
    return tuple(results)


async def handle_metadata(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    try:
        topics = await _requested_topics(context, request, types)
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
        cluster_authorized_operations=OPERATIONS_NOT_REQUESTED,
    )


async def handle_describe_cluster(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    broker = context.broker
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
        cluster_authorized_operations=OPERATIONS_NOT_REQUESTED,
    )


ROUTES = (
    Route(3, 0, 12, handle_metadata, Access.AUTHORIZED),
    Route(60, 0, 1, handle_describe_cluster, Access.AUTHORIZED),
)
