"""Transaction coordinator state in Redis, one hash per transactional ID.

``keys.transaction(id)`` holds the producer ID and epoch the ID's producer
has, the previous ones (so a retried InitProducerId is recognized), the
transaction's state and timeout; the coordinator's lease sits beside them in
the same hash, so each script that writes the state checks the writer's
fencing token in the same step and slot (``lua/txn_*.lua``). No gateway
keeps transaction state only in memory: whichever gateway coordinates the ID
next carries on from this hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import keys
from .scripts import ScriptCall, function

INIT = function("txn_init.lua")
# txn_init.lua's reply when it needs a fresh producer ID to go on.
NEEDS_PRODUCER_ID = -2
# The token of a writer that checks none (no coordinator lease yet).
UNCHECKED = "-"


@dataclass(frozen=True, slots=True)
class InitTransaction:
    """An InitProducerId with a transactional ID, as txn_init.lua takes it."""

    transactional_id: str
    timeout_ms: int
    # What the request names (KIP-360), -1 for none.
    producer_id: int = -1
    producer_epoch: int = -1
    fencing_token: int | None = None

    def call(self, fresh_producer_id: int | None) -> ScriptCall:
        token = UNCHECKED if self.fencing_token is None else self.fencing_token
        fresh = UNCHECKED if fresh_producer_id is None else fresh_producer_id
        return ScriptCall(INIT, [keys.transaction(self.transactional_id)],
                          [token, self.timeout_ms, self.producer_id, self.producer_epoch, fresh])


@dataclass(frozen=True, slots=True)
class InitResult:
    """error_code 0 with the producer's ID and epoch, else a Kafka error code."""

    error_code: int
    producer_id: int = -1
    producer_epoch: int = -1
