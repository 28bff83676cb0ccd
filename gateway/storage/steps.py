"""Appends too large for one bounded Redis call: checked, then written, piece by piece.

Redis runs a script without serving anyone else, and a script that has
written cannot be killed, so no append call may run long (issue #12: one
zstd batch inflating to a million records ran append.lua for 13 s). Every
append call is bounded by the constants below, measured in
docs/benchmarks.md ("Bounded appends"):

- a request of at most ONE_CALL_BYTES of records sections and STEP_RECORDS
  declared records is appended in one call, as it always was ('-');
- a larger one of at most STEP_BYTES and STEP_RECORDS tries one call that
  refuses to write beyond STEP_RECORDS records or STEP_HEADERS headers
  ('+'; most producer batches of up to a few MiB end here);
- anything else is cut at record boundaries into pieces, each within
  STEP_RECORDS records, STEP_HEADERS headers (give or take one record's)
  and STEP_BYTES bytes (or one record, if larger): first every piece is
  parsed by calls that write nothing ('check'), so a malformed record
  anywhere refuses the whole request with nothing written; then the pieces
  are appended in order, one call each ('k/n').

The cutting happens in Redis, where the records are parsed anyway: each
check call gets bytes from the next record boundary on and answers how
many complete records it parsed and the bytes they take. Python walks no
record.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import AppendBatch, AppendRefused, AppendRequest, AppendResult
from .entries import id_millis

# Worst cases measured (docs/benchmarks.md): about 7 us per minimal record,
# 1.6 us per header, 1.4-4 ns per byte of keys and values; so each bound
# keeps a call under about 50 ms on the 2-core development VM.
STEP_RECORDS = 5_000
STEP_HEADERS = 20_000
STEP_BYTES = 4 << 20
# Any records section this small parses within the bounds above, whatever
# its shape (at most about 8,000 minimal records or 32,000 headers).
ONE_CALL_BYTES = 64 << 10
# The first check call of a batch gets this many bytes; later ones twice
# what the previous one parsed, so a piece of tiny records does not carry
# STEP_BYTES over the wire to use 45 kB of it.
FIRST_CHECK_BYTES = 64 << 10

CORRUPT_MESSAGE, INVALID_RECORD = 2, 87

# One append.lua call: its arguments after the keys -> its reply (or the exception).
Call = Callable[[Sequence[Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Piece:
    batch: AppendBatch
    records: bytes  # complete records, from a record boundary
    count: int
    ends_batch: bool


def fits_one_call(request: AppendRequest) -> bool:
    """Whether the request is appended in one unlimited call ('-')."""
    return (sum(len(batch.records) for batch in request.batches) <= ONE_CALL_BYTES
            and sum(batch.record_count for batch in request.batches) <= STEP_RECORDS)


def may_fit_one_call(request: AppendRequest) -> bool:
    """Whether one limited call ('+') may hold the request."""
    return (sum(len(batch.records) for batch in request.batches) <= STEP_BYTES
            and sum(batch.record_count for batch in request.batches) <= STEP_RECORDS)


def limits() -> list[Any]:
    return [STEP_RECORDS, STEP_HEADERS]


async def pieces_of(batches: Sequence[AppendBatch], check: Call) -> list[Piece] | Exception:
    """Every batch cut into pieces by check calls; the refusal of a malformed record, or Redis's error."""
    pieces: list[Piece] = []
    for batch in batches:
        cut = await _cut(batch, check)
        if isinstance(cut, Exception):
            return cut
        pieces += cut
    if not pieces:
        return AppendRefused(CORRUPT_MESSAGE, "no records")
    return pieces


async def _cut(batch: AppendBatch, check: Call) -> list[Piece] | Exception:
    records = batch.records
    pieces: list[Piece] = []
    at, held, size = 0, 0, FIRST_CHECK_BYTES
    while at < len(records):
        end = min(len(records), at + size)
        final = end == len(records)
        reply = await check(["check", *limits(), int(final), batch.base_timestamp, records[at:end]])
        if isinstance(reply, Exception):
            return reply
        refused = _refusal(reply)
        if refused is not None:
            return refused
        count, used, incomplete = (int(value) for value in reply)
        if count == 0:
            # The next record is longer than the bytes sent: send all of it.
            size = max(incomplete, 2 * size)
            continue
        pieces.append(Piece(batch, records[at:at + used], count, at + used == len(records)))
        at, held = at + used, held + count
        if held > batch.record_count:
            # Stop here: the declared counts are what --max-records-per-request bounds.
            break
        size = min(STEP_BYTES, max(FIRST_CHECK_BYTES, 2 * used))
    if held != batch.record_count:
        return AppendRefused(INVALID_RECORD, f"batch declares {batch.record_count} records but holds {held}")
    return pieces


def piece_args(piece: Piece, index: int, total: int) -> list[Any]:
    """append.lua's arguments from the step on, for piece ``index`` of ``total``."""
    batch = piece.batch
    flags = int(batch.log_append_time) + (0 if piece.ends_batch else 2)
    return [f"{index}/{total}", 0, 0, 1, piece.count, batch.base_timestamp, batch.max_timestamp,
            flags, piece.records]


async def append_pieces(pieces: Sequence[Piece], step: Call,
                        classify: Callable[[Exception], Exception]) -> AppendResult | Exception:
    """Append the pieces in order, one call each; the result as one append's.

    A piece that a previous attempt of the same idempotent batch wrote is
    skipped (append.lua answers where to resume), and the answer carries the
    first attempt's base offset and append time. A failure part-way leaves
    the pieces before it written: the producer's retry resumes (idempotent)
    or writes them again (not idempotent).
    """
    base: int | None = None
    append_ms = log_start = -1
    index = 0
    while index < len(pieces):
        reply = await step(piece_args(pieces[index], index, len(pieces)))
        if isinstance(reply, Exception):
            return classify(reply)
        refused = _refusal(reply)
        if refused is not None:
            return refused
        if int(reply[0]) == -3:  # written by an earlier attempt: resume
            index, base, append_ms = int(reply[1]), int(reply[2]), int(reply[3])
            continue
        if reply[1] is None:  # the whole batch was appended already
            return AppendResult(int(reply[0]), int(reply[3]), int(reply[2]), duplicate=True)
        if base is None:
            base, append_ms = int(reply[0]), id_millis(reply[1])
        log_start = int(reply[2])
        index += 1
    assert base is not None
    return AppendResult(base, append_ms, log_start)


def _refusal(reply: Any) -> AppendRefused | None:
    if int(reply[0]) != -1:
        return None
    message = reply[2].decode("utf-8", "replace") if len(reply) > 2 else None
    return AppendRefused(int(reply[1]), message)


class PartitionTurns:
    """Appends to a partition in the order they came, while one of them takes several calls.

    Only this gateway's order: other gateways and native writers may add
    entries between the pieces of a batch (docs/guarantees.md).
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, int] = {}

    def busy(self, stream: str) -> bool:
        """Whether an append in pieces holds or waits for the partition."""
        return stream in self._holders

    @contextlib.asynccontextmanager
    async def turn(self, stream: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(stream, asyncio.Lock())
        self._holders[stream] = self._holders.get(stream, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._holders[stream] -= 1
            if not self._holders[stream]:
                del self._holders[stream], self._locks[stream]
