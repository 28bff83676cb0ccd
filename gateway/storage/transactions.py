"""Transaction coordinator state in Redis, one hash per transactional ID.

The states and their steps are Kafka's (TransactionCoordinator, for
transaction versions 0 and 1): InitProducerId (``txn_init.lua``) leaves the
ID Empty with its producer's epoch; AddPartitionsToTxn and AddOffsetsToTxn
(``txn_add.lua``) make it Ongoing and list its partitions (fields
``p:<topic>:<partition>``) and groups (``g:<group>``); EndTxn prepares the
outcome (``txn_end.lua``: PrepareCommit, PrepareAbort), the outcome is
written to each partition and group, and the transaction completes
(``txn_complete.lua``: CompleteCommit, CompleteAbort, its list cleared). A
new producer instance or the transaction timeout fences the producer and
aborts an Ongoing transaction (``txn_fence.lua``). An ID unused for
transactional.id.expiration.ms is forgotten (``txn_expire.lua``).

``keys.transaction(id)`` holds the producer ID and epoch the ID's producer
has, the previous ones (so a retried InitProducerId is recognized), the
transaction's state and timeout; the coordinator's lease sits beside them in
the same hash, so each script that writes the state checks the writer's
fencing token in the same step and slot (``lua/txn_*.lua``). No gateway
keeps transaction state only in memory: whichever gateway coordinates the ID
next carries on from this hash.
"""

from __future__ import annotations

from collections.abc import Mapping
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


ADD = function("txn_add.lua")
EXPIRE = function("txn_expire.lua")
END = function("txn_end.lua")
FENCE = function("txn_fence.lua")
COMPLETE = function("txn_complete.lua")

# txn_init.lua's reply when the previous producer's transaction is Ongoing.
ONGOING = -3
# txn_fence.lua's reply when there is nothing to abort.
NOTHING_TO_ABORT = -1
# How many partitions and groups one transaction may hold: ending it reads
# and clears them in one script call (Kafka has no limit).
MAX_TRANSACTION_MEMBERS = 10_000
PARTITION_PREFIX, GROUP_PREFIX = "p:", "g:"
# Transactional IDs one step of a sweep looks at (HSCAN COUNT).
TRANSACTION_SCAN_STEP = 100


def partition_member(topic: str, partition: int) -> str:
    # Topic names never contain ':' (Kafka allows [a-zA-Z0-9._-]).
    return f"{PARTITION_PREFIX}{topic}:{partition}"


def group_member(group: str) -> str:
    return f"{GROUP_PREFIX}{group}"


@dataclass(frozen=True, slots=True)
class TransactionSummary:
    """What ListTransactions shows of a transactional ID."""

    transactional_id: str
    producer_id: int
    state: str
    # When its transaction started (Redis time, ms); -1 while Empty.
    started_ms: int
    # When its state last changed (Redis time, ms).
    updated_ms: int


SUMMARY_FIELDS = ("pid", "state", "started_ms", "updated_ms")


def summary(transactional_id: str, fields: list[bytes | None]) -> TransactionSummary | None:
    """From SUMMARY_FIELDS' values; None when the ID has no state (deleted meanwhile)."""
    producer_id, state, started, updated = fields
    if producer_id is None or state is None or updated is None:
        return None
    return TransactionSummary(transactional_id, int(producer_id), state.decode(),
                              -1 if started is None else int(started), int(updated))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class TransactionDescription:
    """What DescribeTransactions shows of a transactional ID."""

    producer_id: int
    producer_epoch: int
    state: str
    timeout_ms: int
    # When its transaction started (Redis time, ms); -1 while Empty.
    started_ms: int
    members: Members

    @staticmethod
    def parse(fields: Mapping[bytes | str, bytes | str]) -> TransactionDescription | None:
        """From the state hash (HGETALL); None when the ID has no state."""
        text = {_text(name): _text(value) for name, value in fields.items()}
        if "pid" not in text:
            return None
        return TransactionDescription(int(text["pid"]), int(text["epoch"]), text["state"],
                                      int(text["timeout_ms"]), int(text.get("started_ms", -1)),
                                      Members.parse(list(text)))


@dataclass(frozen=True, slots=True)
class Members:
    """The partitions and groups a transaction wrote to, as its state hash lists them."""

    partitions: tuple[tuple[str, int], ...] = ()
    groups: tuple[str, ...] = ()

    @staticmethod
    def parse(fields: list[bytes | str]) -> Members:
        partitions, groups = [], []
        for raw in fields:
            name = raw.decode() if isinstance(raw, bytes) else raw
            if name.startswith(PARTITION_PREFIX):
                topic, _, partition = name[len(PARTITION_PREFIX):].rpartition(":")
                partitions.append((topic, int(partition)))
            elif name.startswith(GROUP_PREFIX):
                groups.append(name[len(GROUP_PREFIX):])
        return Members(tuple(partitions), tuple(groups))


@dataclass(frozen=True, slots=True)
class Producer:
    """Who acts on a transaction: its transactional ID's producer ID and epoch, and the
    writer's fencing token (None: not checked)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    fencing_token: int | None = None

    @property
    def key(self) -> str:
        return keys.transaction(self.transactional_id)

    @property
    def args(self) -> list[int | str]:
        """The first arguments of every script that checks the producer: token, ID, epoch."""
        token = UNCHECKED if self.fencing_token is None else self.fencing_token
        return [token, self.producer_id, self.producer_epoch]


@dataclass(frozen=True, slots=True)
class Ending:
    """A transaction prepared to commit or abort: what to write its outcome to, then complete."""

    producer: Producer
    commit: bool
    members: Members

    @property
    def outcome(self) -> str:
        return "commit" if self.commit else "abort"


def add_call(producer: Producer, members: list[str]) -> ScriptCall:
    return ScriptCall(ADD, [producer.key], [*producer.args, MAX_TRANSACTION_MEMBERS, *members])


def end_call(producer: Producer, commit: bool) -> ScriptCall:
    return ScriptCall(END, [producer.key], [*producer.args, "commit" if commit else "abort"])


def fence_call(transactional_id: str, fencing_token: int | None, reason: str) -> ScriptCall:
    token = UNCHECKED if fencing_token is None else fencing_token
    return ScriptCall(FENCE, [keys.transaction(transactional_id)], [token, reason])


def expire_call(transactional_id: str, fencing_token: int | None, expiration_ms: int) -> ScriptCall:
    token = UNCHECKED if fencing_token is None else fencing_token
    return ScriptCall(EXPIRE, [keys.transaction(transactional_id)], [token, expiration_ms])


def complete_call(ending: Ending) -> ScriptCall:
    return ScriptCall(COMPLETE, [ending.producer.key], [*ending.producer.args, ending.outcome])
