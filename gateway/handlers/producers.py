"""InitProducerId (key 22), v0-v5: producer IDs for idempotent producers.

As Kafka's TransactionCoordinator does for a request without a transactional
ID, every request gets a fresh producer ID with epoch 0, whatever ID and
epoch it names: IDs come from a counter in Redis, so they are unique across
gateway restarts and across gateways sharing one Redis. (Bumping the named
ID's epoch instead, as KIP-360 does only for transactional producers, would
let any client fence any idempotent producer for good: IDs are sequential.)
A producer ID without an epoch or an epoch without an ID: INVALID_REQUEST,
as Kafka's KafkaApis answers.

With a transactional ID (KIP-98, KIP-360) the ID's state in Redis decides
(storage/transactions.py, lua/txn_init.lua), as Kafka's
TransactionCoordinator does: a new ID gets a new producer ID with epoch 0,
a known one the next epoch of its producer ID (a new producer ID once its
epochs are used up), which fences every producer of an older epoch; a
request naming a producer that is not the ID's current one gets
PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v4, which does not know it),
a retried one the same answer again. The gateway holding the ID's
coordinator lease answers (taking it when no gateway's lease runs; the
others answer NOT_COORDINATOR), and its writes carry the lease's fencing
token. While the previous producer's
transaction is Ongoing, that producer is fenced and its transaction
aborted, and the request answered CONCURRENT_TRANSACTIONS (the client
retries). A timeout outside 1 ms to 15 minutes
(transaction.max.timeout.ms) gets INVALID_TRANSACTION_TIMEOUT.

Transactions are not served yet all the same (docs/compatibility.md):
FindCoordinator for a transaction coordinator answers
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which librdkafka and the Java client
treat as fatal, so ``init_transactions()`` fails at once instead of
retrying every 500 ms until its timeout, with a message
(handlers/groups.py); each client ID is logged once. An empty transactional
ID gets INVALID_REQUEST, as from Kafka.

ACLs (as KafkaApis): an idempotent producer needs IDEMPOTENT_WRITE on the
cluster or WRITE on at least one topic, else CLUSTER_AUTHORIZATION_FAILED;
a transactional one WRITE on its transactional ID, else
TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

import logging
from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..coordinator.transactions import abort_for_new_producer, lease_token
from ..dispatch import Access, Route
from ..security.acls import Operation, ResourceType
from ..storage import StorageUnavailable
from ..storage.transactions import ONGOING, InitTransaction
from ._build import NO_THROTTLE, make, response_types

API_KEY = 22
NO_PRODUCER_ID, NO_PRODUCER_EPOCH = -1, -1
# Kafka's transaction.max.timeout.ms default: longer timeouts are refused.
MAX_TRANSACTION_TIMEOUT_MS = 900_000
# The first InitProducerId version whose clients know PRODUCER_FENCED.
PRODUCER_FENCED_SINCE = 4

# What the log and FindCoordinator tell a client that wants transactions.
TRANSACTIONS_NOT_SERVED = "transactions are not served by kafka-redis-gateway"

log = logging.getLogger(__name__)


class OncePerKey:
    """Whether a key is new, remembering at most ``limit`` keys.

    Client IDs are the client's to choose, so the memory is capped: once
    full it starts afresh (a client may then be logged once more).
    """

    def __init__(self, limit: int = 1000) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def first(self, key: str) -> bool:
        if key in self._seen:
            return False
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(key)
        return True


_TRANSACTIONAL_CLIENTS = OncePerKey()


def refuse_transactions(context: RequestContext, what: str) -> ErrorCode:
    """The fatal error for a transactional request; logs its client once."""
    client_id = context.header.client_id or ""
    if _TRANSACTIONAL_CLIENTS.first(client_id):
        log.warning("client %r from %s asked for %s: %s (answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED)",
                    client_id, context.peer, what, TRANSACTIONS_NOT_SERVED)
    return ErrorCode.transactional_id_authorization_failed


async def handle(context: RequestContext, request: Any) -> Any:
    types = response_types(context)

    def response(code: ErrorCode, producer_id: int = NO_PRODUCER_ID, epoch: int = NO_PRODUCER_EPOCH) -> Any:
        return make(types.InitProducerIdResponse, throttle_time=NO_THROTTLE, error_code=code,
                    producer_id=producer_id, producer_epoch=epoch)

    if request.transactional_id == "":
        return response(ErrorCode.invalid_request)
    named = (getattr(request, "producer_id", NO_PRODUCER_ID) == NO_PRODUCER_ID,
             getattr(request, "producer_epoch", NO_PRODUCER_EPOCH) == NO_PRODUCER_EPOCH)
    if named[0] != named[1]:
        return response(ErrorCode.invalid_request)
    if request.transactional_id is not None:
        code, producer_id, epoch = await _init_transactional(context, request)
        return response(code, producer_id, epoch)
    if not (context.authorize_cluster(Operation.IDEMPOTENT_WRITE)
            or context.authorize_any(Operation.WRITE, ResourceType.TOPIC)):
        return response(ErrorCode.cluster_authorization_failed)
    try:
        producer_id = await context.storage.new_producer_id()
    except StorageUnavailable:
        return response(ErrorCode.coordinator_not_available)
    return response(ErrorCode.none, producer_id, 0)


async def _init_transactional(context: RequestContext, request: Any) -> tuple[ErrorCode, int, int]:
    """(error code, producer ID, epoch) for a transactional producer, as Kafka's coordinator answers."""
    transactional_id: str = request.transactional_id
    none = (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
    if not context.authorize(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return (ErrorCode.transactional_id_authorization_failed, *none)
    timeout_ms = int(request.transaction_timeout.total_seconds() * 1000)
    if not 0 < timeout_ms <= MAX_TRANSACTION_TIMEOUT_MS:
        return (ErrorCode.invalid_transaction_timeout, *none)
    try:
        token = await lease_token(context.transactions, transactional_id)
        if token is None:
            return (ErrorCode.not_coordinator, *none)
        init = InitTransaction(transactional_id, timeout_ms,
                               getattr(request, "producer_id", NO_PRODUCER_ID),
                               getattr(request, "producer_epoch", NO_PRODUCER_EPOCH), token)
        result = await context.storage.init_transaction(init)
        if result.error_code == ONGOING:
            aborted = await abort_for_new_producer(context.storage, transactional_id, init.fencing_token)
            return (aborted, *none)
    except StorageUnavailable:
        return (ErrorCode.coordinator_not_available, *none)
    code = ErrorCode(result.error_code)
    if code == ErrorCode.producer_fenced and context.api_version < PRODUCER_FENCED_SINCE:
        # Older clients do not know PRODUCER_FENCED (KafkaApis answers the same).
        code = ErrorCode.invalid_producer_epoch
    return code, result.producer_id, result.producer_epoch


ROUTES = (Route(API_KEY, 0, 5, handle, Access.AUTHORIZED),)
