"""Read cursors: where each in-order reader of a partition left off.

A Kafka consumer fetches a partition at the offset right after the last
record it got. The gateway remembers, per stream and next offset, the ID of
the entry it returned last; the next read at that offset is then a plain
``XRANGE <stream> (<id> + COUNT n`` behind a small check script
(lua/cursor.lua) instead of read.lua, which copies every entry into Lua
tables and back. Measured on 8,333 100-byte entries: about 10 ms of Redis CPU
for the XRANGE against about 80 ms for read.lua (docs/benchmarks.md).

A cursor is only a hint: the check script confirms the entry still exists
(so a deleted and re-created topic falls back to read.lua), and an unknown
position simply reads with read.lua, which seeds the next cursor.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka_redis_gateway.protocol.records import Record

from .base import ReadRequest, ReadResult
from .entries import encode_entries, entry_to_record, id_millis, id_sequence

# A bound on remembered positions; past it the least recently used go, and
# a reader whose position went falls back to read.lua once.
MAX_CURSORS = 10_000


@dataclass(frozen=True, slots=True)
class Cursor:
    after_id: bytes  # the entry at offset - 1
    entry_bytes: float  # average field bytes per entry of the last read


class Cursors:
    """The most recently used MAX_CURSORS positions.

    A position stays after a read from it: a fetch whose records were not
    sent (over the response budget, or a response the client never got) is
    asked again at the same offset and still continues from its cursor. The
    positions readers have moved on from are the least recently used, so
    they are the ones that go.
    """

    def __init__(self) -> None:
        self._at: OrderedDict[tuple[str, int], Cursor] = OrderedDict()

    def find(self, stream: str, offset: int) -> Cursor | None:
        cursor = self._at.get((stream, offset))
        if cursor is not None:
            self._at.move_to_end((stream, offset))
        return cursor

    def remember(self, stream: str, offset: int, cursor: Cursor) -> None:
        self._at[(stream, offset)] = cursor
        self._at.move_to_end((stream, offset))
        if len(self._at) > MAX_CURSORS:
            self._at.popitem(last=False)


def entries_wanted(request: ReadRequest, cursor: Cursor) -> int:
    """How many entries to XRANGE so that the byte limit, not the count, usually stops the read.

    As many as max_bytes holds at the last read's average entry size, plus
    one: the plain XRANGE copies all it is asked for (it has no byte limit),
    so with entries like the last ones it copies about max_bytes. (It asked
    for at least 16, which with 1 MiB entries copied 16 MiB for a 1 MiB read.)
    """
    by_size = int(max(request.max_bytes, 0) / max(cursor.entry_bytes, 1.0)) + 1
    return max(1, min(request.max_records, by_size))


def read_result(request: ReadRequest, status: int, start: int, end: int, last_id: bytes,
                entries: Sequence[Any], sparse: bool = False) -> tuple[ReadResult, Cursor | None]:
    """The records of ``entries`` within the request's limits, and the cursor after them.

    The limits are read.lua's: at most ``max_records`` entries, and entries
    only while their fields' bytes stay within ``max_bytes``, except that the
    first entry always comes (KIP-74). read.lua has applied them already, so
    for its replies this cuts nothing; an XRANGE after a cursor may also hold
    entries appended after the check script ran, beyond ``end``.

    ``sparse``: the partition is a compacted topic's, whose entries' offsets
    are their IDs' sequence numbers, with holes; only the entries from the
    offset asked for to ``end`` are taken.
    """
    if sparse:
        return _sparse_result(request, status, start, end, last_id, entries)
    limit = min(request.max_records, max(0, end - request.offset), len(entries))
    if limit and not request.min_one and sum(map(len, entries[0][1])) > request.max_bytes:
        limit = 0  # the first record does not fit, and need not come
    if request.encoded:
        return _encoded_result(request, status, start, end, last_id, entries, limit)
    max_bytes = request.max_bytes
    native = request.native
    records: list[Record] = []
    append_times: list[int] = []
    size = 0
    for entry_id, fields in entries[:limit]:
        size += sum(map(len, fields))
        if size > max_bytes and records:
            size -= sum(map(len, fields))
            break
        records.append(entry_to_record(entry_id, fields, native))
        append_times.append(id_millis(entry_id))
    cursor = None
    if records:
        cursor = Cursor(entries[len(records) - 1][0], size / len(records))
    result = ReadResult(
        offset=request.offset,
        records=records,
        append_times=append_times,
        log_start_offset=start,
        high_watermark=end,
        last_id=last_id,
        out_of_range=status == 1,
    )
    return result, cursor


def _sparse_result(request: ReadRequest, status: int, start: int, end: int, last_id: bytes,
                   entries: Sequence[Any]) -> tuple[ReadResult, Cursor | None]:
    """read_result for a compacted topic: offsets from the entry IDs, holes between them."""
    entries = [entry for entry in entries if request.offset <= id_sequence(entry[0]) < end]
    limit = min(request.max_records, len(entries))
    if limit and not request.min_one and sum(map(len, entries[0][1])) > request.max_bytes:
        limit = 0
    offsets = [id_sequence(entry[0]) for entry in entries[:limit]]
    if request.encoded:
        return _encoded_result(request, status, start, end, last_id, entries, limit, offsets)
    records: list[Record] = []
    append_times: list[int] = []
    size = 0
    for entry_id, fields in entries[:limit]:
        size += sum(map(len, fields))
        if size > request.max_bytes and records:
            size -= sum(map(len, fields))
            break
        records.append(entry_to_record(entry_id, fields, request.native))
        append_times.append(id_millis(entry_id))
    cursor = Cursor(entries[len(records) - 1][0], size / len(records)) if records else None
    result = ReadResult(
        offset=offsets[0] if records else request.offset,
        records=records,
        append_times=append_times,
        log_start_offset=start,
        high_watermark=end,
        last_id=last_id,
        out_of_range=status == 1,
        offsets=offsets[:len(records)],
    )
    return result, cursor


def _encoded_result(request: ReadRequest, status: int, start: int, end: int, last_id: bytes,
                    entries: Sequence[Any], limit: int,
                    offsets: Sequence[int] | None = None) -> tuple[ReadResult, Cursor | None]:
    encoded, size = encode_entries(entries, limit, request.max_bytes, request.native, offsets)
    cursor = None
    if encoded is not None:
        cursor = Cursor(entries[encoded.count - 1][0], size / encoded.count)
    result = ReadResult(
        offset=offsets[0] if offsets and encoded is not None else request.offset,
        records=(),
        append_times=(),
        log_start_offset=start,
        high_watermark=end,
        last_id=last_id,
        out_of_range=status == 1,
        encoded=encoded,
        offsets=None if offsets is None or encoded is None else offsets[:encoded.count],
    )
    return result, cursor
