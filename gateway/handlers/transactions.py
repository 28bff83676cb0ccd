"""Transactions' admin APIs (issue #16).

ListTransactions (key 66) v0-v1: the transactional IDs this gateway
coordinates, with producer ID and state, as Kafka's
TransactionStateManager.listTransactionStates: state filters by Kafka's
state names (unknown ones come back in unknown_state_filters and match
nothing), producer ID filters, and from v1 a duration filter (only
transactions started longer ago than that, by Redis's clock; an Empty one
has no start and always passes, as in Kafka). The IDs come from the registry
in Redis (``kafka:txns``), read in bounded steps. v2's regular-expression
filter is not served (Java's and Python's regular expressions differ).

ACLs (as KafkaApis): only IDs the principal may DESCRIBE are listed.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..storage import StorageUnavailable
from ..storage.transactions import TransactionSummary
from ._build import NO_THROTTLE, make, response_types

LIST_TRANSACTIONS = 66
# Kafka's TransactionState names.
STATES = frozenset({"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort",
                    "PrepareEpochFence", "Dead"})


async def _summaries(context: RequestContext) -> list[TransactionSummary]:
    """Every transactional ID this gateway coordinates, step by step through the registry."""
    found: list[TransactionSummary] = []
    cursor = 0
    while True:
        cursor, transactional_ids = await context.storage.transactional_ids(cursor)
        mine = [transactional_id for transactional_id in transactional_ids
                if context.cluster.coordinates(transactional_id)]
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


ROUTES = (Route(LIST_TRANSACTIONS, 0, 1, handle_list_transactions, Access.AUTHORIZED),)
