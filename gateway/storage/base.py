"""The storage interface the handlers program against."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from kafka_redis_gateway.protocol.records import EncodedRecords, Record, encode_records

from .entries import DEFAULT_NATIVE, NativeFormat
from .epochs import LeaderEpochs

if TYPE_CHECKING:
    from .producer_state import ActiveProducer
    from .transactions import (
        Ending,
        InitResult,
        InitTransaction,
        Producer,
        TransactionDescription,
        TransactionSummary,
    )

# Set by the client connection around each request it handles. An append
# calls it once its commands are written, in order, to the one Redis
# connection that every later command of the gateway follows on: Redis runs
# one connection's commands in order, so the Kafka connection may start its
# next request (decode it, send its appends) while this one waits for the
# reply, and appends still reach each partition in request order. Appends
# that do not go that way (acks=all: WAITAOF blocks a connection) never call
# it, and the next request waits for this one to finish.
appends_ordered: ContextVar[Callable[[], None] | None] = ContextVar("appends_ordered", default=None)


class StorageUnavailable(Exception):
    """Redis cannot be reached or did not answer in time (retriable)."""


class TopicExists(Exception):
    pass


class AppendRefused(Exception):
    """The append script refused a batch, writing nothing (a Kafka error code).

    Either its records are malformed (``message`` says how) or the
    idempotent-producer state refuses it (``message`` is None).
    """

    def __init__(self, error_code: int, message: str | None = None) -> None:
        super().__init__(message or f"producer state refused the batch with error {error_code}")
        self.error_code = error_code
        self.message = message


class NotDurable(Exception):
    """Appended, but Redis did not confirm the fsync or replicas in time."""


class OutcomeUnknown(Exception):
    """The append was sent, and Redis may or may not have run it: its reply was lost.

    Kafka's REQUEST_TIMED_OUT, which clients take as "possibly written";
    StorageUnavailable (KAFKA_STORAGE_ERROR, "not written") is only for
    appends that certainly did not run.
    """


class TopicNotFound(Exception):
    pass


class InvalidStream(Exception):
    """A topic cannot adopt these stream keys (INVALID_CONFIG, with this message)."""


class OffsetOutOfRange(Exception):
    """DeleteRecords asked for an offset past the end offset."""

    def __init__(self, log_start_offset: int) -> None:
        super().__init__(f"offset past the end; log start offset {log_start_offset}")
        self.log_start_offset = log_start_offset


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AppendResult:
    base_offset: int
    log_append_time: int
    log_start_offset: int
    # A retried idempotent batch that was already appended: nothing written.
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Records from ``offset`` on, with the partition's bounds at read time.

    ``out_of_range`` is set when the offset lies outside
    [log_start_offset, high_watermark]. ``last_id`` is the stream's newest
    entry ID, from which a long-poll waits for more.

    A read asked for ``encoded`` records leaves ``records`` and
    ``append_times`` empty and has them as one records section in
    ``encoded`` instead (None when there are none).
    """

    offset: int
    records: Sequence[Record]
    append_times: Sequence[int]
    log_start_offset: int
    high_watermark: int
    last_id: bytes
    out_of_range: bool = False
    encoded: EncodedRecords | None = None
    # A compacted topic's records have holes between them: their offsets
    # (``offset`` is then the first record's, which may be past the offset
    # asked for). None: the records are at offset, offset + 1, ...
    offsets: Sequence[int] | None = None
    # The partition's leader epochs as of the read (the current one last).
    epochs: LeaderEpochs = field(default_factory=LeaderEpochs)

    @property
    def record_count(self) -> int:
        return len(self.records) if self.encoded is None else self.encoded.count

    @property
    def next_offset(self) -> int:
        """The offset after the last record returned (where the reader goes on)."""
        if self.offsets is not None and self.record_count:
            return self.offsets[self.record_count - 1] + 1
        return self.offset + self.record_count


@dataclass(frozen=True, slots=True)
class CompactionSettings:
    """A compacted topic's configs, as compact.lua takes them (docs/mapping.md)."""

    min_lag_ms: int
    max_lag_ms: int
    segment_ms: int
    min_dirty_ratio: float
    delete_retention_ms: int


@dataclass(frozen=True, slots=True)
class CompactionStats:
    """What one compaction of a partition did: entries examined, entries removed, script calls."""

    examined: int = 0
    removed: int = 0
    calls: int = 0


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    log_start_offset: int
    end_offset: int
    max_timestamp_offset: int
    max_timestamp: int
    # The newest entry's append time (its ID's ms); -1 when the log is empty.
    newest_append_time: int = -1
    epochs: LeaderEpochs = field(default_factory=LeaderEpochs)


@dataclass(frozen=True, slots=True)
class OffsetQuery:
    """A partition's offsets (``timestamp`` None), or the first offset at or after a time."""

    topic: str
    partition: int
    timestamp: int | None = None
    # Record timestamps are append times (LogAppendTime topics), not the ts field.
    by_append_time: bool = False


@dataclass(frozen=True, slots=True)
class TimeOffset:
    """The first offset whose record timestamp is at or after a time, and that timestamp.

    Both -1 when no record qualifies.
    """

    offset: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class AppendBatch:
    """One record batch to append: its header's numbers and its records, not parsed.

    ``records`` is the batch's records section, uncompressed, as the Kafka
    wire format lays it out (protocol/records.py); the append script parses
    and checks it, so the gateway builds no object per record.
    """

    record_count: int
    base_timestamp: int
    max_timestamp: int
    records: bytes
    # LogAppendTime batches: every record's timestamp is max_timestamp.
    log_append_time: bool = False

    @classmethod
    def of_records(cls, records: Sequence[Record]) -> AppendBatch:
        """A batch of ``records`` (tests and tools; the produce path has the wire bytes)."""
        return cls(len(records), records[0].timestamp, max(record.timestamp for record in records),
                   encode_records(records))


@dataclass(frozen=True, slots=True)
class AppendRequest:
    topic: str
    partition: int
    batches: Sequence[AppendBatch]
    # Idempotent producers: ID, epoch and the batches' sequence range.
    producer_id: int = -1
    producer_epoch: int = -1
    first_sequence: int = -1
    last_sequence: int = -1


@dataclass(frozen=True, slots=True)
class ReadRequest:
    topic: str
    partition: int
    offset: int
    max_bytes: int
    max_records: int = 10_000
    # How entries outside the gateway's record format become records.
    native: NativeFormat = DEFAULT_NATIVE
    # One encoded records section (ReadResult.encoded) instead of Records:
    # for CreateTime topics, whose batches need no per-record append time.
    encoded: bool = False
    # The first record comes even when it alone exceeds max_bytes (KIP-74);
    # False: only records within max_bytes. max_records 0 reads only the
    # partition's offsets.
    min_one: bool = True


class Storage(Protocol):
    """What the gateway needs from its log and metadata store."""

    async def cluster_id(self) -> str: ...

    async def topics(self) -> Mapping[str, TopicInfo]: ...

    async def topic(self, name: str) -> TopicInfo | None: ...

    async def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None: ...

    async def create_topic(
        self, name: str, partitions: int, configs: Mapping[str, str]
    ) -> TopicInfo: ...

    async def delete_topic(self, name: str) -> TopicInfo: ...

    async def create_partitions(self, name: str, count: int) -> TopicInfo: ...

    async def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicInfo: ...

    async def append(
        self, requests: Sequence[AppendRequest], *, durable_within_ms: int | None = None
    ) -> list[AppendResult | Exception]: ...

    async def new_producer_id(self) -> int: ...

    async def init_transaction(self, request: InitTransaction) -> InitResult: ...

    async def add_to_transaction(self, producer: Producer, members: Sequence[str]) -> int: ...

    async def end_transaction(self, producer: Producer, commit: bool) -> Ending | int: ...

    async def fence_transaction(self, transactional_id: str, fencing_token: int | None,
                                reason: str) -> Ending | int | None: ...

    async def complete_transaction(self, ending: Ending) -> int: ...

    async def expire_transaction(self, transactional_id: str, fencing_token: int | None,
                                 expiration_ms: int) -> bool: ...

    async def transactional_ids(self, cursor: int) -> tuple[int, list[str]]: ...

    async def transaction_summaries(
        self, transactional_ids: Sequence[str]) -> list[TransactionSummary | None]: ...

    async def now_ms(self) -> int: ...

    async def describe_transaction(self, transactional_id: str) -> TransactionDescription | None: ...

    async def active_producers(self, topic: str, partition: int,
                               cursor: int) -> tuple[int, list[ActiveProducer]]: ...

    async def read(self, requests: Sequence[ReadRequest]) -> list[ReadResult | Exception]: ...

    async def wait_for_entries(
        self, positions: Sequence[tuple[str, int, bytes]], timeout_ms: int
    ) -> None: ...

    async def list_offsets(
        self, queries: Sequence[OffsetQuery]
    ) -> list[PartitionOffsets | TimeOffset | Exception]: ...

    async def leader_epochs(
        self, partitions: Sequence[tuple[str, int]]
    ) -> list[tuple[int, LeaderEpochs] | Exception]: ...

    async def delete_records(self, topic: str, partition: int, offset: int) -> int: ...

    async def expire_producers(self, topic: str, partition: int, cursor: str,
                               expiration_ms: int) -> tuple[str, int]: ...

    async def apply_retention(
        self, topic: str, partition: int, retention_ms: int, retention_bytes: int
    ) -> int: ...

    async def compact(self, topic: str, partition: int, settings: CompactionSettings) -> CompactionStats: ...

    async def close(self) -> None: ...
