"""Topic administration.

CreateTopics (key 19) v2-v7: partition count (-1 takes the default),
replication factor -1 or 1 (this is one broker; Redis replication is what
makes data redundant), manual assignments naming this broker, configs
validated against Kafka's topic configs, validate_only.
DeleteTopics (key 20) v1-v6: by name, or by topic ID from v6; removes every
Redis key of the topic.
CreatePartitions (key 37) v0-v3: grows a topic; validate_only.
More than 10,000 partitions created by one topic's creation or growth:
POLICY_VIOLATION, as Kafka's controller answers an oversized operation.
DescribeConfigs (key 32) v1-v4: topics (every Kafka topic config, with the
source DYNAMIC_TOPIC_CONFIG or DEFAULT_CONFIG) and this broker.
AlterConfigs (key 33) v0-v2: replaces a topic's configs; validate_only.
IncrementalAlterConfigs (key 44) v0-v1: SET, DELETE, and APPEND / SUBTRACT
on list configs, for topics; validate_only.
ACLs (as Kafka's ControllerApis and KafkaApis): CreateTopics needs CREATE
on the cluster or the topic (its configs are returned only with
DESCRIBE_CONFIGS on it); DeleteTopics DELETE on the cluster or the topic,
a name the principal may not DESCRIBE being TOPIC_AUTHORIZATION_FAILED
whether it exists or not; CreatePartitions ALTER on the cluster or the
topic; DescribeConfigs DESCRIBE_CONFIGS and (Incremental)AlterConfigs
ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or, for the
broker, on the cluster (CLUSTER_AUTHORIZATION_FAILED).
Gaps: broker configs are read-only (altering them gets INVALID_REQUEST);
configs take effect within the registry cache time (one second) on every
gateway.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..coordinator.share import share_config_problem
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..security.listeners import resolve
from ..storage import InvalidStream, StorageUnavailable, TopicExists, TopicInfo, TopicNotFound
from ..storage.keys import STREAM_KEYS_CONFIG, adopted_streams, is_compacted
from ..topics import TOPIC_CONFIGS, adoption_forbidden, config_value, invalid_name, validate_configs
from ._build import NO_THROTTLE, make, response_types
from .producers import MAX_TRANSACTION_TIMEOUT_MS

# DescribeConfigs resource types and config sources.
TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4
GROUP_RESOURCE = 32  # Kafka's ConfigResource.Type.GROUP (KIP-848, KIP-932)
SOURCE_DYNAMIC_TOPIC, SOURCE_DEFAULT, SOURCE_DYNAMIC_GROUP = 1, 5, 8


# Kafka's controller refuses an operation that would write more than 10,000
# metadata records (QuorumController.MAX_RECORDS_PER_USER_OP) with
# POLICY_VIOLATION, "Unable to perform excessively large batch operation.";
# here it bounds a topic's partitions, which Metadata lists one by one.
MAX_PARTITIONS_PER_OPERATION = 10_000
TOO_LARGE = "Unable to perform excessively large batch operation."


class Refused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _check_adoption_allowed(context: RequestContext, stream_keys: tuple[str, ...]) -> None:
    if stream_keys:
        forbidden = adoption_forbidden(stream_keys, context.config.adopt_streams)
        if forbidden:
            raise Refused(ErrorCode.policy_violation, forbidden)


def _check_new_topic(context: RequestContext, topic: Any) -> tuple[int, dict[str, str]]:
    """Partition count and configs of a topic to create, or Refused."""
    if invalid_name(topic.name):
        raise Refused(ErrorCode.invalid_topic_exception, f"Invalid topic name {topic.name!r}")
    partitions = topic.num_partitions
    configs = {c.name: c.value for c in topic.configs}
    problem = validate_configs(configs)
    if problem:
        raise Refused(ErrorCode.invalid_config, problem)
    # validate_configs refused null values; this only narrows the type.
    given = {name: value for name, value in configs.items() if value is not None}
    adopted = adopted_streams(given)
    _check_adoption_allowed(context, adopted)
    if adopted and partitions == -1 and not topic.assignments:
        partitions = len(adopted)  # one partition per adopted stream
    if topic.assignments:
        if partitions != -1 or topic.replication_factor != -1:
            raise Refused(ErrorCode.invalid_request,
                          "Both numPartitions or replicationFactor and replicasAssignments were set")
        if any(tuple(a.broker_ids) != (context.broker.node_id,) for a in topic.assignments):
            raise Refused(ErrorCode.invalid_replica_assignment,
                          f"Replicas must be exactly [{context.broker.node_id}]")
        partitions = len(topic.assignments)
    elif partitions == -1:
        partitions = context.config.default_partitions
    if partitions <= 0:
        raise Refused(ErrorCode.invalid_partitions, "Number of partitions must be larger than 0.")
    if partitions > MAX_PARTITIONS_PER_OPERATION:
        raise Refused(ErrorCode.policy_violation, TOO_LARGE)
    if topic.replication_factor not in (-1, 1):
        raise Refused(ErrorCode.invalid_replication_factor,
                      f"Unable to replicate the partition {topic.replication_factor} time(s): "
                      "The target replication factor of "
                      f"{topic.replication_factor} cannot be reached because only 1 broker(s) "
                      "are registered.")
    if adopted and partitions != len(adopted):
        raise Refused(ErrorCode.invalid_partitions,
                      f"{STREAM_KEYS_CONFIG} names {len(adopted)} stream(s) for {partitions} partition(s)")
    return partitions, given


def _created_configs(types: Any, info: TopicInfo) -> tuple[Any, ...] | None:
    if not hasattr(types, "CreatableTopicConfigs"):  # before v5
        return None
    return tuple(
        make(types.CreatableTopicConfigs, name=name, value=config_value(info, name),
             read_only=TOPIC_CONFIGS[name].read_only, is_sensitive=False,
             config_source=SOURCE_DYNAMIC_TOPIC if name in info.configs else SOURCE_DEFAULT)
        for name in TOPIC_CONFIGS
    )


def _may_topic(context: RequestContext, operation: Operation, name: str) -> bool:
    """The operation on the cluster (which covers every topic) or on the topic, as ControllerApis asks."""
    return context.authorize_cluster(operation) or context.authorize(operation, ResourceType.TOPIC, name)


async def _create_one(context: RequestContext, types: Any, topic: Any, validate_only: bool) -> Any:
    shows_configs = context.authorize(Operation.DESCRIBE_CONFIGS, ResourceType.TOPIC, topic.name)

    def result(code: ErrorCode, message: str | None = None, info: TopicInfo | None = None) -> Any:
        return make(types.CreatableTopicResult, name=topic.name,
                    topic_id=info.topic_id if info and not validate_only else None,
                    error_code=code, error_message=message,
                    topic_config_error_code=ErrorCode.none if shows_configs or not info
                    else ErrorCode.topic_authorization_failed,
                    num_partitions=info.partitions if info else -1,
                    replication_factor=1 if info else -1,
                    configs=_created_configs(types, info) if info and shows_configs else None)

    if not _may_topic(context, Operation.CREATE, topic.name):
        return result(ErrorCode.topic_authorization_failed, "Authorization failed.")
    try:
        partitions, configs = _check_new_topic(context, topic)
        if validate_only:
            if await context.storage.topic(topic.name) is not None:
                raise TopicExists(topic.name)
            info = TopicInfo(topic.name, _NIL_UUID, partitions, configs)
        else:
            info = await context.storage.create_topic(topic.name, partitions, configs)
    except Refused as refused:
        return result(refused.code, refused.message)
    except TopicExists:
        return result(ErrorCode.topic_already_exists, f"Topic '{topic.name}' already exists.")
    except InvalidStream as exc:
        return result(ErrorCode.invalid_config, str(exc))
    except StorageUnavailable as exc:
        return result(ErrorCode.request_timed_out, f"Redis unavailable: {exc}")
    return result(ErrorCode.none, None, info)


async def handle_create_topics(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    names = [topic.name for topic in request.topics]
    results = []
    for topic in request.topics:
        if names.count(topic.name) > 1:
            results.append(make(types.CreatableTopicResult, name=topic.name, topic_id=None,
                                error_code=ErrorCode.invalid_request,
                                error_message="Duplicate topic name in request.",
                                num_partitions=-1, replication_factor=-1, configs=None))
            continue
        results.append(await _create_one(context, types, topic, request.validate_only))
    return make(types.CreateTopicsResponse, throttle_time=NO_THROTTLE, topics=tuple(results))


async def handle_delete_topics(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    if context.api_version >= 6:
        wanted = [(state.name, state.topic_id) for state in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    results = []
    for name, topic_id in wanted:
        code, message = ErrorCode.none, None
        try:
            by_id = name is None
            if name is None:
                found = await context.storage.topic_by_id(topic_id)
                if found is None:
                    raise TopicNotFound(str(topic_id))
                name = found.name
            refused = _delete_refused(context, name)
            if refused is not None:
                # By ID, the name is told only to who may DESCRIBE the topic.
                results.append(make(types.DeletableTopicResult,
                                    name=None if by_id and refused == _HIDDEN else name,
                                    topic_id=topic_id, error_code=ErrorCode.topic_authorization_failed,
                                    error_message="Authorization failed."))
                continue
            info = await context.storage.delete_topic(name)
            topic_id = info.topic_id
        except TopicNotFound:
            code = ErrorCode.unknown_topic_id if name is None else ErrorCode.unknown_topic_or_partition
            message = "This server does not host this topic."
        except StorageUnavailable as exc:
            code, message = ErrorCode.request_timed_out, f"Redis unavailable: {exc}"
        results.append(make(types.DeletableTopicResult, name=name, topic_id=topic_id,
                            error_code=code, error_message=message))
    return make(types.DeleteTopicsResponse, throttle_time=NO_THROTTLE, responses=tuple(results))


_HIDDEN = "not DESCRIBE"


def _delete_refused(context: RequestContext, name: str) -> str | None:
    """Why the principal may not delete the topic: not even DESCRIBE it (_HIDDEN), or not DELETE it."""
    if context.authorize_cluster(Operation.DELETE):
        return None
    if not context.authorize(Operation.DESCRIBE, ResourceType.TOPIC, name):
        return _HIDDEN
    if not context.authorize(Operation.DELETE, ResourceType.TOPIC, name):
        return "not DELETE"
    return None


async def _grow_one(context: RequestContext, topic: Any, validate_only: bool) -> tuple[ErrorCode, str | None]:
    if not _may_topic(context, Operation.ALTER, topic.name):
        return ErrorCode.topic_authorization_failed, "Authorization failed."
    info = await context.storage.topic(topic.name)
    if info is None:
        return ErrorCode.unknown_topic_or_partition, f"The topic '{topic.name}' does not exist."
    if topic.count <= info.partitions:
        return ErrorCode.invalid_partitions, (
            f"Topic currently has {info.partitions} partitions, which is higher than or equal "
            f"to the requested {topic.count}.")
    if topic.count - info.partitions > MAX_PARTITIONS_PER_OPERATION:
        return ErrorCode.policy_violation, TOO_LARGE
    if topic.assignments is not None and any(
            tuple(a.broker_ids) != (context.broker.node_id,) for a in topic.assignments):
        return ErrorCode.invalid_replica_assignment, f"Replicas must be exactly [{context.broker.node_id}]"
    if not validate_only:
        await context.storage.create_partitions(topic.name, topic.count)
    return ErrorCode.none, None


async def handle_create_partitions(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    results = []
    for topic in request.topics:
        try:
            code, message = await _grow_one(context, topic, request.validate_only)
        except TopicNotFound:
            code, message = ErrorCode.unknown_topic_or_partition, "The topic was deleted meanwhile."
        except StorageUnavailable as exc:
            code, message = ErrorCode.request_timed_out, f"Redis unavailable: {exc}"
        results.append(make(types.CreatePartitionsTopicResult, name=topic.name, error_code=code,
                            error_message=message))
    return make(types.CreatePartitionsResponse, throttle_time=NO_THROTTLE, results=tuple(results))


def broker_configs(context: RequestContext) -> Mapping[str, tuple[str, int]]:
    """Broker configs worth showing: name -> (value, config type)."""
    config = context.config
    listeners = resolve(config)
    return {
        "broker.id": (str(context.broker.node_id), 3),
        "node.id": (str(context.broker.node_id), 3),
        "advertised.listeners": (",".join(f"{spec.name}://{spec.advertised}" for spec in listeners), 2),
        "listeners": (",".join(f"{spec.name}://{spec.bind}" for spec in listeners), 2),
        "listener.security.protocol.map": (
            ",".join(f"{name}:{protocol.value}"
                     for name, protocol in config.listener_security_protocol_map), 2),
        "sasl.enabled.mechanisms": (",".join(config.sasl_enabled_mechanisms), 7),
        "ssl.client.auth": (config.ssl_client_auth.value, 2),
        "connections.max.reauth.ms": (str(config.connections_max_reauth_ms), 5),
        "auto.create.topics.enable": (str(config.auto_create_topics).lower(), 1),
        "num.partitions": (str(config.default_partitions), 3),
        "default.replication.factor": ("1", 4),
        "socket.request.max.bytes": (str(config.max_request_size), 3),
        "message.max.bytes": (TOPIC_CONFIGS["max.message.bytes"].default, 3),
        "log.message.timestamp.type": ("CreateTime", 2),
        "compression.type": ("producer", 2),
        "log.retention.ms": (TOPIC_CONFIGS["retention.ms"].default, 5),
        "log.retention.check.interval.ms": (str(config.retention_check_interval_ms), 5),
        "producer.id.expiration.ms": (str(config.producer_id_expiration_ms), 3),
        "producer.id.expiration.check.interval.ms": (str(config.producer_id_expiration_check_interval_ms), 3),
        "transaction.max.timeout.ms": (str(MAX_TRANSACTION_TIMEOUT_MS), 3),
        "transactional.id.expiration.ms": (str(config.transactional_id_expiration_ms), 3),
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": (
            str(config.transaction_abort_timed_out_interval_ms), 3),
    }


def _config_entry(types: Any, request: Any, name: str, value: str, source: int, type_id: int,
                  read_only: bool = False) -> Any:
    synonyms = (
        (make(types.DescribeConfigsSynonym, name=name, value=value, source=source),)
        if getattr(request, "include_synonyms", False) else ()
    )
    return make(types.DescribeConfigsResourceResult, name=name, value=value, read_only=read_only,
                config_source=source, is_default=source == SOURCE_DEFAULT, is_sensitive=False,
                synonyms=synonyms, config_type=type_id, documentation=None)


def _config_refusal(context: RequestContext, resource: Any, operation: Operation) -> ErrorCode | None:
    """DESCRIBE_CONFIGS or ALTER_CONFIGS on the topic, or on the cluster for a broker."""
    if resource.resource_type == TOPIC_RESOURCE and not context.authorize(
            operation, ResourceType.TOPIC, resource.resource_name):
        return ErrorCode.topic_authorization_failed
    if resource.resource_type == BROKER_RESOURCE and not context.authorize_cluster(operation):
        return ErrorCode.cluster_authorization_failed
    if resource.resource_type == GROUP_RESOURCE and not context.authorize(
            operation, ResourceType.GROUP, resource.resource_name):
        return ErrorCode.group_authorization_failed
    return None


async def _describe_resource(context: RequestContext, types: Any, request: Any,
                             resource: Any) -> Any:
    keys = resource.configuration_keys

    def result(code: ErrorCode, message: str | None, entries: tuple[Any, ...] = ()) -> Any:
        return make(types.DescribeConfigsResult, error_code=code, error_message=message,
                    resource_type=resource.resource_type, resource_name=resource.resource_name,
                    configs=entries)

    refused = _config_refusal(context, resource, Operation.DESCRIBE_CONFIGS)
    if refused is not None:
        return result(refused, None)
    if resource.resource_type == TOPIC_RESOURCE:
        info = await context.storage.topic(resource.resource_name)
        if info is None:
            return result(ErrorCode.unknown_topic_or_partition,
                          f"Topic '{resource.resource_name}' does not exist.")
        entries = tuple(
            _config_entry(types, request, name, config_value(info, name),
                          SOURCE_DYNAMIC_TOPIC if name in info.configs else SOURCE_DEFAULT,
                          definition.type_id, definition.read_only)
            for name, definition in TOPIC_CONFIGS.items() if keys is None or name in keys
        )
        return result(ErrorCode.none, None, entries)
    if resource.resource_type == BROKER_RESOURCE:
        if resource.resource_name not in ("", str(context.broker.node_id)):
            return result(ErrorCode.invalid_request, f"Unexpected broker id {resource.resource_name}")
        entries = tuple(
            _config_entry(types, request, name, value, SOURCE_DEFAULT, type_id)
            for name, (value, type_id) in broker_configs(context).items()
            if keys is None or name in keys
        )
        return result(ErrorCode.none, None, entries)
    if resource.resource_type == GROUP_RESOURCE:
        entries = tuple(
            _config_entry(types, request, name, value, SOURCE_DYNAMIC_GROUP if is_set else SOURCE_DEFAULT,
                          type_id)
            for name, value, is_set, type_id in await context.shares.described_configs(resource.resource_name)
            if keys is None or name in keys
        )
        return result(ErrorCode.none, None, entries)
    return result(ErrorCode.invalid_request,
                  f"Unsupported resource type {resource.resource_type}")


async def handle_describe_configs(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    results = []
    for resource in request.resources:
        try:
            results.append(await _describe_resource(context, types, request, resource))
        except StorageUnavailable as exc:
            results.append(make(types.DescribeConfigsResult, error_code=ErrorCode.request_timed_out,
                                error_message=f"Redis unavailable: {exc}",
                                resource_type=resource.resource_type,
                                resource_name=resource.resource_name, configs=()))
    return make(types.DescribeConfigsResponse, throttle_time=NO_THROTTLE, results=tuple(results))


# IncrementalAlterConfigs operations.
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
LIST_TYPE = 7


def _incremental(current: Mapping[str, str], changes: Any) -> dict[str, str]:
    """A topic's configs after IncrementalAlterConfigs operations, or Refused."""
    configs = dict(current)
    for change in changes:
        name, op, value = change.name, change.config_operation, change.value
        definition = TOPIC_CONFIGS.get(name)
        if definition is None:
            raise Refused(ErrorCode.invalid_config, f"Unknown topic config name: {name}")
        if op == OP_SET:
            if value is None:
                raise Refused(ErrorCode.invalid_config, f"Invalid value None for configuration {name}")
            configs[name] = value
        elif op == OP_DELETE:
            configs.pop(name, None)
        elif op in (OP_APPEND, OP_SUBTRACT):
            if definition.type_id != LIST_TYPE:
                raise Refused(ErrorCode.invalid_config,
                              f"Config value append/subtract is not allowed for config {name}")
            items = [item for item in config_value_of(configs, name).split(",") if item]
            given = [item for item in (value or "").split(",") if item]
            if op == OP_APPEND:
                items += [item for item in given if item not in items]
            else:
                items = [item for item in items if item not in given]
            configs[name] = ",".join(items)
        else:
            raise Refused(ErrorCode.invalid_request, f"Unknown config operation {op}")
    return configs


def _keep_read_only(current: Mapping[str, str], altered: dict[str, str], changes: Any,
                    incremental: bool) -> dict[str, str]:
    """Refuse changes to configs fixed at creation; AlterConfigs, which replaces
    every config, keeps those it does not name."""
    named = {change.name for change in changes}
    for name, definition in TOPIC_CONFIGS.items():
        if not definition.read_only or altered.get(name) == current.get(name):
            continue
        if not incremental and name not in named and name in current:
            altered[name] = current[name]
            continue
        raise Refused(ErrorCode.invalid_config, f"{name} is set when a topic is created and cannot change")
    return altered


def config_value_of(configs: Mapping[str, str], name: str) -> str:
    return configs.get(name, TOPIC_CONFIGS[name].default)


async def _alter_resource(context: RequestContext, resource: Any, validate_only: bool,
                          incremental: bool) -> tuple[ErrorCode, str | None]:
    denied = _config_refusal(context, resource, Operation.ALTER_CONFIGS)
    if denied is not None:
        return denied, None
    if resource.resource_type == BROKER_RESOURCE:
        return ErrorCode.invalid_request, "Broker configs cannot be altered on kafka-redis-gateway"
    if resource.resource_type == GROUP_RESOURCE and incremental:
        return await _alter_group(context, resource, validate_only)
    if resource.resource_type != TOPIC_RESOURCE:
        return ErrorCode.invalid_request, f"Unsupported resource type {resource.resource_type}"
    info = await context.storage.topic(resource.resource_name)
    if info is None:
        return (ErrorCode.unknown_topic_or_partition,
                f"Topic '{resource.resource_name}' does not exist.")
    try:
        if incremental:
            configs = _incremental(info.configs, resource.configs)
        else:
            configs = {}
            for change in resource.configs:
                if change.name in configs:
                    raise Refused(ErrorCode.invalid_request, f"Duplicate config {change.name}")
                configs[change.name] = change.value
        problem = validate_configs(configs)
        if problem:
            raise Refused(ErrorCode.invalid_config, problem)
        if is_compacted(configs) != is_compacted(info.configs):
            raise Refused(ErrorCode.invalid_config,
                          "cleanup.policy cannot change between compact and delete on kafka-redis-gateway: "
                          "a compacted topic's offsets are laid out from its creation (docs/mapping.md)")
        if adopted_streams(configs) != adopted_streams(info.configs):
            # Read-only anyway; a client without the operator's leave is told
            # so first, the same as at CreateTopics.
            _check_adoption_allowed(context, adopted_streams(configs))
        configs = _keep_read_only(info.configs, configs, resource.configs, incremental)
    except Refused as refused:
        return refused.code, refused.message
    if not validate_only:
        await context.storage.set_topic_configs(info.name, configs)
    return ErrorCode.none, None


async def _alter_group(context: RequestContext, resource: Any, validate_only: bool,
                       ) -> tuple[ErrorCode, str | None]:
    """A share group's configs (IncrementalAlterConfigs SET and DELETE), kept in Redis."""
    changes: dict[str, str | None] = {}
    for change in resource.configs:
        if change.config_operation not in (OP_SET, OP_DELETE) or change.name in changes:
            return (ErrorCode.invalid_request,
                    f"Cannot apply operation {change.config_operation} to {change.name}")
        value = change.value if change.config_operation == OP_SET else None
        problem = share_config_problem(change.name, value)
        if problem:
            return ErrorCode.invalid_config, problem
        changes[change.name] = value
    if not validate_only:
        await context.shares.storage.set_configs(resource.resource_name, changes)
        context.shares.forget_settings(resource.resource_name)
    return ErrorCode.none, None


async def _alter_configs(context: RequestContext, request: Any, incremental: bool) -> Any:
    types = response_types(context)
    results = []
    for resource in request.resources:
        try:
            code, message = await _alter_resource(context, resource, request.validate_only, incremental)
        except TopicNotFound:
            code = ErrorCode.unknown_topic_or_partition
            message = "The topic changed or was deleted meanwhile."
        except StorageUnavailable as exc:
            code, message = ErrorCode.request_timed_out, f"Redis unavailable: {exc}"
        results.append(make(types.AlterConfigsResourceResponse, error_code=code, error_message=message,
                            resource_type=resource.resource_type, resource_name=resource.resource_name))
    response = (types.IncrementalAlterConfigsResponse if incremental else types.AlterConfigsResponse)
    return make(response, throttle_time=NO_THROTTLE, responses=tuple(results))


async def handle_alter_configs(context: RequestContext, request: Any) -> Any:
    return await _alter_configs(context, request, incremental=False)


async def handle_incremental_alter_configs(context: RequestContext, request: Any) -> Any:
    return await _alter_configs(context, request, incremental=True)


_NIL_UUID = uuid.UUID(int=0)

ROUTES = (
    Route(19, 2, 7, handle_create_topics, Access.AUTHORIZED),
    Route(20, 1, 6, handle_delete_topics, Access.AUTHORIZED),
    Route(32, 1, 4, handle_describe_configs, Access.AUTHORIZED),
    Route(33, 0, 2, handle_alter_configs, Access.AUTHORIZED),
    Route(37, 0, 3, handle_create_partitions, Access.AUTHORIZED),
    Route(44, 0, 1, handle_incremental_alter_configs, Access.AUTHORIZED),
)
