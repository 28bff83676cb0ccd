"""The transaction coordinator's steps that span more than one script call.

Each step on a transactional ID's state is one script (storage/transactions.py);
ending a transaction is three: prepare (EndTxn, or a fence), write the
outcome to every partition and group of the transaction, complete. Every
step is in Redis, so a gateway that dies between them leaves a prepared
transaction that the sweep finishes (below), and whose
producer meanwhile gets CONCURRENT_TRANSACTIONS (retriable), as from Kafka.

Transactions past their timeout are aborted, and prepared ones whose
gateway died are finished, by the cluster's controller every
``--transaction-abort-timed-out-interval-ms`` (run_timeouts), a bounded
step at a time; finishing twice is harmless (completing is idempotent).
Until coordinators hold leases on transactional IDs, the sweep writes
without a fencing token; each step is atomic on the ID's state all the same, so a sweep racing with the ID's
coordinator leaves one of the two outcomes, never a mix.
"""

from __future__ import annotations

import asyncio
import logging

from kio.schema.errors import ErrorCode

from .. import metrics
from ..cluster import Cluster
from ..logs import printable
from ..storage import Storage, StorageUnavailable
from ..storage.transactions import Ending, Producer, TransactionSummary
from .ownership import Ownership

log = logging.getLogger(__name__)

# States the sweep may end: Ongoing (when past its timeout), and those whose
# outcome is decided but not yet written everywhere.
ENDABLE = frozenset({"Ongoing", "PrepareCommit", "PrepareAbort"})
# Kafka's transactional.id.expiration.ms default: 7 days.
DEFAULT_EXPIRATION_MS = 604_800_000


async def finish(storage: Storage, ending: Ending) -> ErrorCode:
    """Write a prepared transaction's outcome to its partitions and groups, then complete it.

    Nothing is written to partitions or groups yet: Produce refuses
    transactional batches and TxnOffsetCommit is not served, so no
    transaction holds records or offsets whose fate depends on its outcome.
    """
    code = ErrorCode(await storage.complete_transaction(ending))
    if code != ErrorCode.none:
        log.warning("could not complete the %s of %s's transaction: %s", ending.outcome,
                    printable(ending.producer.transactional_id), code.name)
    return code


async def abort_for_new_producer(storage: Storage, transactional_id: str,
                                 fencing_token: int | None) -> ErrorCode:
    """A new producer instance initializes while the old one's transaction is Ongoing.

    As Kafka: the old producer is fenced (the epoch goes up), its transaction
    aborted, and the new one answered CONCURRENT_TRANSACTIONS, so it retries
    and gets the epoch after.
    """
    fenced = await storage.fence_transaction(transactional_id, fencing_token, "init")
    if isinstance(fenced, Ending):
        code = await finish(storage, fenced)
        if code != ErrorCode.none:
            return code
    elif fenced is not None:
        return ErrorCode(fenced)
    return ErrorCode.concurrent_transactions


async def lease_token(ownership: Ownership, transactional_id: str) -> int | None:
    """This gateway's fencing token for the ID, taking its lease unless another gateway's
    runs; None when another gateway coordinates it. Raises StorageUnavailable."""
    token = ownership.token(transactional_id)
    if token is None:
        token = await ownership.acquire(transactional_id)
    return token


async def abort_timed_out_once(storage: Storage, ownership: Ownership, cluster: Cluster,
                               expiration_ms: int = DEFAULT_EXPIRATION_MS) -> int:
    """Abort every Ongoing transaction past its timeout that this gateway coordinates, as Kafka's
    abortTimedOutTransactions: its producer is fenced (the epoch goes up) and its transaction
    aborted; finish every prepared one (its gateway died between prepare and complete); and
    forget IDs unused for ``expiration_ms`` with no transaction under way, as Kafka's
    removeExpiredTransactionalIds. The transactions ended and IDs forgotten.

    Step by step through the registry of transactional IDs (HSCAN): one
    pipelined read of the step's states, then for the transactions to end,
    their lease holders and one script call each, so neither Redis nor the
    event loop is held long. A transaction whose coordinator is gone is
    taken by the gateway FindCoordinator would name (its lease then moves).
    """
    cursor, ended = 0, 0
    while True:
        cursor, transactional_ids = await storage.transactional_ids(cursor)
        now_ms = await storage.now_ms()
        due = [summary for summary in await storage.transaction_summaries(transactional_ids)
               if summary is not None and (summary.state in ENDABLE
                                           or summary.updated_ms + expiration_ms <= now_ms)]
        holders = await ownership.holders([summary.transactional_id for summary in due]) if due else []
        for summary, holder in zip(due, holders, strict=True):
            if not cluster.coordinates(summary.transactional_id, holder):
                continue
            token = await lease_token(ownership, summary.transactional_id)
            if token is None:
                continue
            if summary.state not in ENDABLE:
                if await storage.expire_transaction(summary.transactional_id, token, expiration_ms):
                    log.info("forgot transactional ID %s: unused for %d ms",
                             printable(summary.transactional_id), expiration_ms)
                    ended += 1
            elif await _end_if_due(storage, summary, token):
                ended += 1
        if cursor == 0:
            return ended


async def _end_if_due(storage: Storage, summary: TransactionSummary, token: int) -> bool:
    transactional_id = summary.transactional_id
    if summary.state == "Ongoing":
        fenced = await storage.fence_transaction(transactional_id, token, "timeout")
        if isinstance(fenced, Ending) and await finish(storage, fenced) == ErrorCode.none:
            log.info("aborted %s's transaction: past its transaction.timeout.ms", printable(transactional_id))
            return True
    else:
        described = await storage.describe_transaction(transactional_id)
        if described is not None and described.state == summary.state:
            producer = Producer(transactional_id, described.producer_id, described.producer_epoch, token)
            ending = Ending(producer, summary.state == "PrepareCommit", described.members)
            if await finish(storage, ending) == ErrorCode.none:
                log.info("finished %s's prepared %s", printable(transactional_id), ending.outcome)
                return True
    return False


async def run_timeouts(storage: Storage, interval_ms: int, ownership: Ownership, cluster: Cluster,
                       expiration_ms: int = DEFAULT_EXPIRATION_MS) -> None:
    """End due transactions and forget expired IDs this gateway coordinates every interval,
    until cancelled."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        metrics.BACKGROUND_SWEEPS.labels("transaction_timeouts").inc()
        try:
            await abort_timed_out_once(storage, ownership, cluster, expiration_ms)
        except StorageUnavailable as exc:
            log.warning("transaction timeout sweep skipped, Redis unavailable: %s", exc)
        except Exception:  # keep the task alive; the next interval tries again
            log.exception("transaction timeout sweep failed")
