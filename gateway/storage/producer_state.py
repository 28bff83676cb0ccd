"""What DescribeProducers shows of the idempotent producers' state on a partition.

append.lua keeps one hash field per producer ID on the partition
(``kafka:{<topic>:<partition>}:producers``):
``epoch;first:last:offset:append_ms[:next_piece];...``, its last five
batches, the newest last.
"""

from __future__ import annotations

from dataclasses import dataclass

# Fields one step of reading a partition's producers asks for (HSCAN COUNT).
PRODUCER_SCAN_STEP = 1000


@dataclass(frozen=True, slots=True)
class ActiveProducer:
    producer_id: int
    producer_epoch: int
    # Of its newest batch on the partition: the last sequence number and
    # when it was appended (Redis time, ms); -1 when it has none.
    last_sequence: int
    last_append_ms: int


def parse(producer_id: bytes | str, raw: bytes | str) -> ActiveProducer:
    text = raw.decode() if isinstance(raw, bytes) else raw
    epoch, *batches = text.split(";")
    last_sequence, last_append_ms = -1, -1
    if batches:
        fields = batches[-1].split(":")
        last_sequence = int(fields[1])
        last_append_ms = int(fields[3]) if len(fields) > 3 and fields[3] else -1
    return ActiveProducer(int(producer_id), int(epoch), last_sequence, last_append_ms)
