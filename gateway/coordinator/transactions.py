"""The transaction coordinator's steps that span more than one script call.

Each step on a transactional ID's state is one script (storage/transactions.py);
ending a transaction is three: prepare (EndTxn, or a fence), write the
outcome to every partition and group of the transaction, complete. Every
step is in Redis, so a gateway that dies between them leaves a prepared
transaction that the next coordinator of the ID completes, and whose
producer meanwhile gets CONCURRENT_TRANSACTIONS (retriable), as from Kafka.
"""

from __future__ import annotations

import logging

from kio.schema.errors import ErrorCode

from ..logs import printable
from ..storage import Storage
from ..storage.transactions import Ending

log = logging.getLogger(__name__)


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
