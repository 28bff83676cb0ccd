"""Transactions' admin APIs (issue #16), and the producers on partitions.

ListTransactions (key 66) v0-v1: the transactional IDs this gateway
coordinates (holds the lease of, or would take it: the one FindCoordinator
is to name), with producer ID and state, as Kafka's
TransactionStateManager.listTransactionStates: state filters by Kafka's
state names (unknown ones come back in unknown_state_filters and match
nothing), producer ID filters, and from v1 a duration filter (only
transactions started longer ago than that, by Redis's clock; an Empty one
has no start and always passes, as in Kafka). The IDs come from the registry
in Redis (``kafka:txns``), read in bounded steps. v2's regular-expression
filter is not served (Java's and Python's regular expressions differ).

DescribeTransactions (key 65) v0: each transactional ID's state, producer
ID and epoch, timeout, start time (none while Empty) and partitions, as
Kafka's TransactionCoordinator.handleDescribeTransactions: another gateway's
ID gets NOT_COORDINATOR, an unknown one TRANSACTIONAL_ID_NOT_FOUND, an
empty one INVALID_REQUEST. Groups whose offsets the transaction commits are
not listed (Kafka lists the __consumer_offsets partition, which the gateway
does not have). Clients cannot find the coordinator yet (FindCoordinator
refuses transaction keys), so only raw requests reach it.

DescribeProducers (key 61) v0: the producers with state on each partition
(idempotent producers' last batches, kept by the append script and forgotten
after --producer-id-expiration-ms), each with its epoch, the last sequence
number and append time of its newest batch there; coordinator epoch and
transaction start offset are -1 (no transactional batches yet). Read in
bounded HSCAN steps. Any gateway answers for any partition.

ACLs (as KafkaApis): ListTransactions lists only IDs the principal may
DESCRIBE, DescribeTransactions answers the others
TRANSACTIONAL_ID_AUTHORIZATION_FAILED; DescribeProducers needs READ on the topic, else
TOPIC_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..storage import StorageUnavailable, TopicInfo
from ..storage.producer_state import ActiveProducer
from ..storage.transactions import TransactionDescription, TransactionSummary
from ._build import NO_THROTTLE, make, millis_to_datetime, response_types

DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 61, 65, 66
# Kafka's TransactionState names.
STATES = frozenset({"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort",
                    "PrepareEpochFence", "Dead"})


async def _summaries(context: RequestContext) -> list[TransactionSummary]:
    """Every transactional ID this gateway coordinates, step by step through the registry."""
    found: list[TransactionSummary] = []
    cursor = 0
    while True:
        cursor, transactional_ids = await context.storage.transactional_ids(cursor)
        holders = await context.transactions.holders(transactional_ids) if transactional_ids else []
        mine = [transactional_id for transactional_id, holder in zip(transactional_ids, holders, strict=True)
                if context.cluster.coordinates(transactional_id, holder)]
        if mine:
            found.extend(s for s in await context.storage.transaction_summaries(mine) if s is not None)
        if cursor == 0:
            return found


async def handle_list_transactions(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    state_filters = set(request.state_filters)
    producer_filters = set(request.producer_id_filters)
    duration_ms = getattr(request, "duration_filter", -1)

    def response(code: ErrorCode, states: tuple[Any, ...] = ()) -> Any:
        return make(types.ListTransactionsResponse, throttle_time=NO_THROTTLE, error_code=code,
                    unknown_state_filters=tuple(sorted(state_filters - STATES)), transaction_states=states)

    try:
        summaries = await _summaries(context)
        now_ms = await context.storage.now_ms() if duration_ms >= 0 else 0
    except StorageUnavailable:
        return response(ErrorCode.coordinator_not_available)

    def included(summary: TransactionSummary) -> bool:
        return ((not state_filters or summary.state in state_filters)
                and (not producer_filters or summary.producer_id in producer_filters)
                and (duration_ms < 0 or now_ms - summary.started_ms > duration_ms)
                and context.authorize(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID,
                                      summary.transactional_id))

    return response(ErrorCode.none, tuple(
        make(types.TransactionState, transactional_id=summary.transactional_id,
             producer_id=summary.producer_id, transaction_state=summary.state)
        for summary in summaries if included(summary)))


# -- DescribeTransactions ------------------------------------------------------------------


def _transaction_state(context: RequestContext, transactional_id: str, code: ErrorCode,
                       described: TransactionDescription | None = None) -> Any:
    """The answer for one ID; its partitions only in topics the principal may DESCRIBE, as Kafka."""
    types = response_types(context)
    if described is None:
        # Kafka leaves the fields at their schema defaults: 0 (compared in test_differential).
        return make(types.TransactionState, error_code=code, transactional_id=transactional_id,
                    transaction_state="", transaction_timeout=datetime.timedelta(0),
                    transaction_start_time=millis_to_datetime(0), producer_id=0, producer_epoch=0,
                    topics=())
    by_topic: dict[str, list[int]] = {}
    for topic, partition in described.members.partitions:
        if context.authorize(Operation.DESCRIBE, ResourceType.TOPIC, topic):
            by_topic.setdefault(topic, []).append(partition)
    return make(types.TransactionState, error_code=code, transactional_id=transactional_id,
                transaction_state=described.state,
                transaction_timeout=datetime.timedelta(milliseconds=described.timeout_ms),
                # -1 (none, while Empty) is encoded as the instant 1 ms before the epoch.
                transaction_start_time=millis_to_datetime(described.started_ms),
                producer_id=described.producer_id, producer_epoch=described.producer_epoch,
                topics=tuple(make(types.TopicData, topic=topic, partitions=tuple(sorted(partitions)))
                             for topic, partitions in sorted(by_topic.items())))


async def _described(context: RequestContext, transactional_id: str) -> Any:
    if not context.authorize(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return _transaction_state(context, transactional_id, ErrorCode.transactional_id_authorization_failed)
    if not transactional_id:
        return _transaction_state(context, transactional_id, ErrorCode.invalid_request)
    try:
        (holder,) = await context.transactions.holders([transactional_id])
        if not context.cluster.coordinates(transactional_id, holder):
            return _transaction_state(context, transactional_id, ErrorCode.not_coordinator)
        described = await context.storage.describe_transaction(transactional_id)
    except StorageUnavailable:
        return _transaction_state(context, transactional_id, ErrorCode.coordinator_not_available)
    if described is None:
        return _transaction_state(context, transactional_id, ErrorCode.transactional_id_not_found)
    return _transaction_state(context, transactional_id, ErrorCode.none, described)


async def handle_describe_transactions(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    # One answer per ID listed, as Kafka; an ID listed again is read once.
    answers: dict[str, Any] = {}
    for transactional_id in request.transactional_ids:
        if transactional_id not in answers:
            answers[transactional_id] = await _described(context, transactional_id)
    return make(types.DescribeTransactionsResponse, throttle_time=NO_THROTTLE, transaction_states=tuple(
        answers[transactional_id] for transactional_id in request.transactional_ids))


# -- DescribeProducers --------------------------------------------------------------------


async def _readable_topic(context: RequestContext, name: str) -> TopicInfo | ErrorCode:
    if not context.authorize(Operation.READ, ResourceType.TOPIC, name):
        return ErrorCode.topic_authorization_failed
    info = await context.storage.topic(name)
    return ErrorCode.unknown_topic_or_partition if info is None else info


async def _active_producers(context: RequestContext, topic: str, partition: int) -> list[ActiveProducer]:
    found: list[ActiveProducer] = []
    cursor = 0
    while True:
        cursor, producers = await context.storage.active_producers(topic, partition, cursor)
        found.extend(producers)
        if cursor == 0:
            return sorted(found, key=lambda producer: producer.producer_id)


async def _partition(context: RequestContext, topic: TopicInfo | ErrorCode, index: int,
                     answered: dict[tuple[str, int], Any]) -> Any:
    """One partition's answer; a partition named again in the request is read once
    (``answered``), so Redis is asked at most once per existing partition."""
    types = response_types(context)

    def answer(code: ErrorCode, producers: tuple[Any, ...] = ()) -> Any:
        return make(types.PartitionResponse, partition_index=index, error_code=code, error_message=None,
                    active_producers=producers)

    if isinstance(topic, ErrorCode):
        return answer(topic)
    if not 0 <= index < topic.partitions:
        return answer(ErrorCode.unknown_topic_or_partition)
    if (topic.name, index) in answered:
        return answered[topic.name, index]
    try:
        producers = await _active_producers(context, topic.name, index)
    except StorageUnavailable:
        return answer(ErrorCode.kafka_storage_error)
    answered[topic.name, index] = answer(ErrorCode.none, tuple(
        make(types.ProducerState, producer_id=producer.producer_id, producer_epoch=producer.producer_epoch,
             last_sequence=producer.last_sequence, last_timestamp=producer.last_append_ms,
             coordinator_epoch=-1, current_txn_start_offset=-1)
        for producer in producers))
    return answered[topic.name, index]


async def handle_describe_producers(context: RequestContext, request: Any) -> Any:
    types = response_types(context)
    topics = []
    answered: dict[tuple[str, int], Any] = {}
    for topic_request in request.topics:
        try:
            topic = await _readable_topic(context, topic_request.name)
        except StorageUnavailable:
            topic = ErrorCode.kafka_storage_error
        partitions = [await _partition(context, topic, index, answered)
                      for index in topic_request.partition_indexes]
        topics.append(make(types.TopicResponse, name=topic_request.name, partitions=tuple(partitions)))
    return make(types.DescribeProducersResponse, throttle_time=NO_THROTTLE, topics=tuple(topics))


ROUTES = (
    Route(DESCRIBE_PRODUCERS, 0, 0, handle_describe_producers, Access.AUTHORIZED),
    Route(DESCRIBE_TRANSACTIONS, 0, 0, handle_describe_transactions, Access.AUTHORIZED),
    Route(LIST_TRANSACTIONS, 0, 1, handle_list_transactions, Access.AUTHORIZED),
)
