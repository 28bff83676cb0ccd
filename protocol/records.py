"""Kafka record batch codec, magic v2 (KIP-98 format).

Layout (https://kafka.apache.org/documentation/#recordbatch)::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32
    magic int8 | crc uint32 | attributes int16 | lastOffsetDelta int32
    baseTimestamp int64 | maxTimestamp int64 | producerId int64
    producerEpoch int16 | baseSequence int32 | recordCount int32
    records...            (compressed as a whole when attributes say so)

    record: length varint | attributes int8 | timestampDelta varlong
            offsetDelta varint | keyLength varint | key | valueLength varint
            value | headerCount varint | [keyLength varint | key (UTF-8)
            valueLength varint | value] * headerCount

Varints are zigzag-encoded (Protocol Buffers style), a length of -1 is null.
The CRC is CRC-32C over everything from attributes to the end of the batch.

Decoding is the produce path and encoding the fetch path of the gateway, so
both run once per record the gateway handles: the per-record loops below are
written for CPython speed (locals, one- and two-byte varints inlined,
records built as plain tuples) rather than for elegance.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from crc32c import crc32c

from .compression import CodecError, Compression, compress, decompress

__all__ = [
    "CORRUPT_MESSAGE",
    "HEADER_SIZE",
    "INVALID_RECORD",
    "UNSUPPORTED_COMPRESSION_TYPE",
    "UNSUPPORTED_FOR_MESSAGE_FORMAT",
    "BatchHeader",
    "Compression",
    "Record",
    "RecordError",
    "TimestampType",
    "decode_batches",
    "encode_batch",
    "encode_records",
    "read_batch_bodies",
    "records_size_hint",
]

# Kafka error codes this module can report.
CORRUPT_MESSAGE = 2
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87


class TimestampType(enum.IntEnum):
    """Bit 3 of the batch attributes."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


class RecordError(Exception):
    """Input that cannot be accepted, with the Kafka error code to answer."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


class Record(NamedTuple):
    """One record; a tuple because building millions of them must be cheap."""

    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


_COMPRESSION_MASK = 0x07
_TIMESTAMP_TYPE_BIT = 0x08
_TRANSACTIONAL_BIT = 0x10
_CONTROL_BIT = 0x20


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The fixed 61-byte header of a v2 record batch, as found on the wire."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def compression(self) -> Compression:
        return Compression(self.attributes & _COMPRESSION_MASK)

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType(1 if self.attributes & _TIMESTAMP_TYPE_BIT else 0)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_BIT)


# ---------------------------------------------------------------------------
# Fixed layout

_HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = _HEADER.size  # 61
# Everything after the CRC is covered by it; the leader epoch is not, so a
# broker can stamp it without recomputing the checksum.
_CRC_START = 21
_CRC_OFFSET = 17
_MAGIC_OFFSET = 16
# batchLength counts the bytes after itself.
_LENGTH_END = 12
_MIN_BATCH_LENGTH = HEADER_SIZE - _LENGTH_END
_CRC = struct.Struct(">I")
_MAX_VARINT_BYTES = 5
_MAX_VARLONG_BYTES = 10
_EMPTY: tuple[tuple[str, bytes | None], ...] = ()
_new_record = tuple.__new__


# ---------------------------------------------------------------------------
# Varints


def _read_varint(buf: bytes, pos: int, max_bytes: int) -> tuple[int, int]:
    """Zigzag varint at ``pos`` -> (value, next position). ``max_bytes`` caps it."""
    b = buf[pos]
    if b < 0x80:  # most lengths and deltas: one byte, no loop
        return (b >> 1) ^ -(b & 1), pos + 1
    b2 = buf[pos + 1]
    if b2 < 0x80:  # 100-byte values and deltas up to 8191: two bytes
        raw = (b & 0x7F) | (b2 << 7)
        return (raw >> 1) ^ -(raw & 1), pos + 2
    return _read_varint_long(buf, pos, max_bytes)


def _read_varint_long(buf: bytes, pos: int, max_bytes: int) -> tuple[int, int]:
    # Three bytes or more: rare enough that a loop (at most 10 turns) is fine.
    raw = 0
    shift = 0
    for i in range(pos, pos + max_bytes):
        b = buf[i]
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            return (raw >> 1) ^ -(raw & 1), i + 1
        shift += 7
    raise RecordError(CORRUPT_MESSAGE, f"varint longer than {max_bytes} bytes")


def _encode_uvarint(raw: int) -> bytes:
    # Slow path of _varint for values that do not fit the table.
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


# Encoded forms of all one- and two-byte unsigned varints, so encoding a
# length or delta is a list lookup instead of a Python loop.
_UVARINT = [_encode_uvarint(raw) for raw in range(1 << 14)]
_UVARINT_LIMIT = 1 << 14


def _varint(value: int) -> bytes:
    """Zigzag varint/varlong encoding of ``value``."""
    raw = (value << 1) ^ (value >> 63)
    if raw < _UVARINT_LIMIT:
        return _UVARINT[raw]
    return _encode_uvarint(raw)


_NULL = _varint(-1)
# Decoded values of all one- and two-byte varints, indexed by their 14 bits.
_ZIGZAG = [(raw >> 1) ^ -(raw & 1) for raw in range(1 << 14)]


# ---------------------------------------------------------------------------
# Decoding


def decode_batches(
    data: bytes | memoryview, *, max_uncompressed: int = 64 << 20
) -> list[tuple[BatchHeader, list[Record]]]:
    """Decode every record batch in a produce request's ``records`` field.

    Raises RecordError for anything malformed, including a trailing partial
    batch (fetch responses may end with one; produce input may not).
    ``max_uncompressed`` bounds the total decompressed size of all batches
    in ``data``, so one request cannot make the gateway inflate gigabytes.
    """
    return [(header, _read_records(body, header))
            for header, body in read_batch_bodies(data, max_uncompressed=max_uncompressed)]


def read_batch_bodies(
    data: bytes | memoryview, *, max_uncompressed: int = 64 << 20
) -> list[tuple[BatchHeader, bytes]]:
    """Check every record batch in ``data`` and return its records section, not parsed.

    Everything per batch is checked as in :func:`decode_batches` (magic,
    length, CRC, codec, record count sign, decompression within
    ``max_uncompressed``); the records section comes back decompressed, in
    the layout of the module docstring, for a consumer that parses records
    itself (the produce path hands it to Redis: gateway/storage/lua/append.lua).
    """
    # One copy of a memoryview buys cheap indexing and slicing for the rest.
    buf = data if isinstance(data, bytes) else bytes(data)
    budget = max_uncompressed
    batches: list[tuple[BatchHeader, bytes]] = []
    pos = 0
    end = len(buf)
    while pos < end:
        header, batch_end = _read_header(buf, pos)
        body, used = _batch_body(buf, pos + HEADER_SIZE, batch_end, header, budget)
        budget -= used
        batches.append((header, body))
        pos = batch_end
    return batches


def _read_header(buf: bytes, pos: int) -> tuple[BatchHeader, int]:
    """Validate magic, length and CRC of the batch at ``pos``; parse its header."""
    available = len(buf) - pos
    if available <= _MAGIC_OFFSET:
        raise RecordError(CORRUPT_MESSAGE, "truncated record batch header")
    # Magic first: in the v0/v1 message set format the bytes after it mean
    # something else, so nothing else can be checked before knowing it.
    magic = buf[pos + _MAGIC_OFFSET]
    if magic != 2:
        if magic in (0, 1):
            raise RecordError(UNSUPPORTED_FOR_MESSAGE_FORMAT, f"message format v{magic} is not supported")
        raise RecordError(CORRUPT_MESSAGE, f"unknown record batch magic {magic}")
    if available < HEADER_SIZE:
        raise RecordError(CORRUPT_MESSAGE, "truncated record batch header")
    fields = _HEADER.unpack_from(buf, pos)
    batch_length = fields[1]
    if batch_length < _MIN_BATCH_LENGTH:
        raise RecordError(CORRUPT_MESSAGE, f"record batch length {batch_length} is too small")
    batch_end = pos + _LENGTH_END + batch_length
    if batch_end > len(buf):
        raise RecordError(CORRUPT_MESSAGE, "truncated record batch")
    if crc32c(memoryview(buf)[pos + _CRC_START : batch_end]) != fields[4]:
        raise RecordError(CORRUPT_MESSAGE, "record batch CRC mismatch")
    header = BatchHeader(*fields)
    if header.attributes & _COMPRESSION_MASK > Compression.ZSTD:
        raise RecordError(
            UNSUPPORTED_COMPRESSION_TYPE,
            f"unknown compression codec {header.attributes & _COMPRESSION_MASK}",
        )
    if header.record_count < 0:
        raise RecordError(CORRUPT_MESSAGE, f"negative record count {header.record_count}")
    return header, batch_end


def _batch_body(buf: bytes, start: int, end: int, header: BatchHeader, budget: int) -> tuple[bytes, int]:
    """The records section, decompressed -> (bytes, decompressed size used)."""
    codec = Compression(header.attributes & _COMPRESSION_MASK)
    if codec == Compression.NONE:
        return buf[start:end], 0
    try:
        body = decompress(codec, memoryview(buf)[start:end], budget)
    except CodecError as exc:
        raise RecordError(CORRUPT_MESSAGE, str(exc)) from exc
    return body, len(body)


def _read_records(buf: bytes, header: BatchHeader) -> list[Record]:
    """Parse exactly ``header.record_count`` records filling all of ``buf``."""
    try:
        records, pos = _record_loop(buf, header.base_timestamp)
    except IndexError:
        # A varint or a field ran past the end of the records section.
        raise RecordError(CORRUPT_MESSAGE, "truncated record") from None
    except UnicodeDecodeError:
        raise RecordError(CORRUPT_MESSAGE, "header key is not UTF-8") from None
    if pos > len(buf):
        # The last record's value or header claimed bytes that are not there.
        raise RecordError(CORRUPT_MESSAGE, "truncated record")
    if len(records) != header.record_count:
        raise RecordError(
            INVALID_RECORD,
            f"batch declares {header.record_count} records but holds {len(records)}",
        )
    if header.attributes & _TIMESTAMP_TYPE_BIT:
        # LOG_APPEND_TIME: the broker's time, stored as maxTimestamp, is the
        # timestamp of every record; the deltas keep the producer's values.
        # Rare on produce, so it is a second pass instead of a test per record.
        fixed = header.max_timestamp
        records = [_new_record(Record, (fixed, *record[1:])) for record in records]
    return records


def _record_loop(buf: bytes, base_ts: int) -> tuple[list[Record], int]:
    """Parse records until ``buf`` is exhausted -> (records, end position).

    The hot loop. A function call costs as much as a slice here, so varints
    are read inline: one byte, then two bytes (values 64..8191 such as
    100-byte values or offset deltas in a 1000-record batch), and only
    longer ones go through a call. Zigzag decoding is a table lookup.

    Bounds are checked lazily: reading past the end raises IndexError (the
    caller reports CORRUPT_MESSAGE), slicing past it is caught by comparing
    each record's end with its declared length, and a last record that
    overruns ``buf`` leaves the returned position past the end.
    """
    zigzag = _ZIGZAG
    long_varint = _read_varint_long
    new_record = _new_record
    record_cls = Record
    empty = _EMPTY
    records: list[Record] = []
    append = records.append
    end = len(buf)
    pos = 0
    while pos < end:
        b = buf[pos]
        if b < 0x80:
            record_end = pos + 1 + zigzag[b]
            pos += 1
        elif (b2 := buf[pos + 1]) < 0x80:
            record_end = pos + 2 + zigzag[(b2 << 7) | (b & 0x7F)]
            pos += 2
        else:
            length, pos = long_varint(buf, pos, _MAX_VARINT_BYTES)
            record_end = pos + length
        # attributes: one byte, unused in v2; then the timestamp delta
        b = buf[pos + 1]
        if b < 0x80:
            timestamp = base_ts + zigzag[b]
            pos += 2
        elif (b2 := buf[pos + 2]) < 0x80:
            timestamp = base_ts + zigzag[(b2 << 7) | (b & 0x7F)]
            pos += 3
        else:
            delta, pos = long_varint(buf, pos + 1, _MAX_VARLONG_BYTES)
            timestamp = base_ts + delta
        # offset delta: skipped, the caller assigns offsets
        if buf[pos] < 0x80:
            pos += 1
        elif buf[pos + 1] < 0x80:
            pos += 2
        else:
            pos = long_varint(buf, pos, _MAX_VARINT_BYTES)[1]
        # key: usually short
        b = buf[pos]
        if b < 0x80:
            size = zigzag[b]
            pos += 1
        else:
            size, pos = long_varint(buf, pos, _MAX_VARINT_BYTES)
        if size >= 0:
            key: bytes | None = buf[pos : pos + size]
            pos += size
        else:
            _check_null(size)
            key = None
        # value
        b = buf[pos]
        if b < 0x80:
            size = zigzag[b]
            pos += 1
        elif (b2 := buf[pos + 1]) < 0x80:
            size = zigzag[(b2 << 7) | (b & 0x7F)]
            pos += 2
        else:
            size, pos = long_varint(buf, pos, _MAX_VARINT_BYTES)
        if size >= 0:
            value: bytes | None = buf[pos : pos + size]
            pos += size
        else:
            _check_null(size)
            value = None
        # headers: none, or one (a trace id, say), are the common cases
        b = buf[pos]
        if b == 0:
            headers = empty
            pos += 1
        elif b == 2:
            # exactly one header, inlined like the fields above
            b = buf[pos + 1]
            if b < 0x80:
                size = zigzag[b]
                pos += 2
            else:
                size, pos = long_varint(buf, pos + 1, _MAX_VARINT_BYTES)
            if size < 0:
                raise RecordError(CORRUPT_MESSAGE, f"bad header key length {size}")
            header_key = buf[pos : pos + size].decode()
            pos += size
            b = buf[pos]
            if b < 0x80:
                size = zigzag[b]
                pos += 1
            else:
                size, pos = long_varint(buf, pos, _MAX_VARINT_BYTES)
            if size >= 0:
                headers = ((header_key, buf[pos : pos + size]),)
                pos += size
            else:
                _check_null(size)
                headers = ((header_key, None),)
        else:
            headers, pos = _read_headers(buf, pos, record_end)
        if pos != record_end:
            raise RecordError(CORRUPT_MESSAGE, "record length does not match its fields")
        append(new_record(record_cls, (timestamp, key, value, headers)))
    return records, pos


def _check_null(length: int) -> None:
    """A negative length must be -1 (null); anything else is corrupt."""
    if length != -1:
        raise RecordError(CORRUPT_MESSAGE, f"negative length {length}")


def _read_headers(buf: bytes, pos: int, record_end: int) -> tuple[tuple[tuple[str, bytes | None], ...], int]:
    """Any number of headers at ``pos`` (at the count) -> (headers, next position)."""
    count, pos = _read_varint(buf, pos, _MAX_VARINT_BYTES)
    # Each header takes at least two bytes: refuse absurd counts up front.
    if count < 0 or count * 2 > record_end - pos:
        raise RecordError(CORRUPT_MESSAGE, f"bad header count {count}")
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(count):
        size, pos = _read_varint(buf, pos, _MAX_VARINT_BYTES)
        if size < 0:
            raise RecordError(CORRUPT_MESSAGE, f"bad header key length {size}")
        key = buf[pos : pos + size].decode()
        pos += size
        size, pos = _read_varint(buf, pos, _MAX_VARINT_BYTES)
        if size >= 0:
            value: bytes | None = buf[pos : pos + size]
            pos += size
        else:
            _check_null(size)
            value = None
        headers.append((key, value))
    return tuple(headers), pos


# ---------------------------------------------------------------------------
# Encoding


def encode_batch(
    base_offset: int,
    records: Sequence[Record],
    *,
    compression: Compression = Compression.NONE,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = 0,
    log_append_time: int | None = None,
) -> bytes:
    """Encode ``records`` as one v2 batch with offsets ``base_offset + index``.

    The base timestamp is the first record's; deltas may be negative. With
    LOG_APPEND_TIME, ``log_append_time`` is required and becomes maxTimestamp,
    which readers take as every record's timestamp.
    """
    if not records:
        raise ValueError("a record batch needs at least one record")
    base_ts = records[0][0]
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        if log_append_time is None:
            raise ValueError("LOG_APPEND_TIME batches need log_append_time")
        max_ts = log_append_time
    else:
        max_ts = max(record[0] for record in records)
    body = b"".join(_encode_records(records, base_ts))
    return _framed(base_offset, body, len(records), base_ts, max_ts, compression, timestamp_type,
                   producer_id, producer_epoch, base_sequence, partition_leader_epoch)


@dataclass(frozen=True, slots=True)
class EncodedRecords:
    """A batch's records section encoded elsewhere (the storage, from stream entries).

    ``body`` holds ``count`` records, uncompressed, with offset deltas 0 to
    count - 1 and timestamp deltas from ``first_timestamp``; or, from a
    compacted log with holes, rising deltas whose last is
    ``last_offset_delta`` (-1: count - 1).
    """

    count: int
    body: bytes
    first_timestamp: int
    max_timestamp: int
    last_offset_delta: int = -1


def encode_encoded_batch(base_offset: int, records: EncodedRecords, *,
                         compression: Compression = Compression.NONE, leader_epoch: int = 0) -> bytes:
    """One CreateTime batch of already encoded records: only the header and CRC are computed here."""
    if records.count <= 0:
        raise ValueError("a record batch needs at least one record")
    last_delta = records.last_offset_delta if records.last_offset_delta >= 0 else records.count - 1
    return _framed(base_offset, records.body, records.count, records.first_timestamp,
                   records.max_timestamp, compression, TimestampType.CREATE_TIME, -1, -1, -1, leader_epoch,
                   last_delta)


def _framed(base_offset: int, body: bytes, count: int, base_ts: int, max_ts: int,
            compression: Compression, timestamp_type: TimestampType, producer_id: int,
            producer_epoch: int, base_sequence: int, partition_leader_epoch: int,
            last_offset_delta: int | None = None) -> bytes:
    """The batch header and CRC around a records section (compressed here as asked)."""
    if compression != Compression.NONE:
        body = compress(compression, body)
    attributes = int(compression) | (_TIMESTAMP_TYPE_BIT if timestamp_type else 0)
    header = bytearray(
        _HEADER.pack(
            base_offset,
            HEADER_SIZE - _LENGTH_END + len(body),
            partition_leader_epoch,
            2,  # magic
            0,  # CRC, filled in below: it covers the rest of this header
            attributes,
            count - 1 if last_offset_delta is None else last_offset_delta,
            base_ts,
            max_ts,
            producer_id,
            producer_epoch,
            base_sequence,
            count,
        )
    )
    crc = crc32c(body, crc32c(memoryview(header)[_CRC_START:]))
    _CRC.pack_into(header, _CRC_OFFSET, crc)
    return b"".join((header, body))


def _encode_records(records: Sequence[Record], base_ts: int) -> list[bytes]:
    """Pieces of the uncompressed records section, to be joined once.

    Like the decoder, written for CPython: varints come from a table, each
    record is one join of a tuple, and the commonest header shapes (none,
    or one) skip the general header encoder.
    """
    uvarint = _UVARINT
    limit = _UVARINT_LIMIT
    varint = _varint
    null = _NULL
    # Header keys repeat across records; encode each distinct key once per
    # batch (a per-call cache: header keys come from clients, unbounded).
    key_prefixes: dict[str, bytes] = {}
    parts: list[bytes] = []
    append = parts.append
    for (timestamp, key, value, headers), offset_part in zip(
        records, _offset_deltas(len(records)), strict=True
    ):
        delta = timestamp - base_ts
        raw = (delta << 1) ^ (delta >> 63)
        timestamp_part = uvarint[raw] if raw < limit else _encode_uvarint(raw)
        if key is None:
            key_part = null
            key = b""
        else:
            size = len(key)
            key_part = uvarint[size << 1] if size < 8192 else varint(size)
        if value is None:
            value_part = null
            value = b""
        else:
            size = len(value)
            value_part = uvarint[size << 1] if size < 8192 else varint(size)
        if not headers:
            record = b"".join(
                (b"\x00", timestamp_part, offset_part, key_part, key, value_part, value, b"\x00")
            )
        elif len(headers) == 1:
            ((header_key, header_value),) = headers
            prefix = key_prefixes.get(header_key)
            if prefix is None:
                prefix = key_prefixes[header_key] = b"\x02" + _encode_bytes(header_key.encode())
            if header_value is None:
                header_part = null
                header_value = b""
            else:
                size = len(header_value)
                header_part = uvarint[size << 1] if size < 8192 else varint(size)
            record = b"".join(
                (
                    b"\x00",  # record attributes, unused
                    timestamp_part,
                    offset_part,
                    key_part,
                    key,
                    value_part,
                    value,
                    prefix,
                    header_part,
                    header_value,
                )
            )
        else:
            record = b"".join(
                (
                    b"\x00",
                    timestamp_part,
                    offset_part,
                    key_part,
                    key,
                    value_part,
                    value,
                    _encode_headers(headers),
                )
            )
        size = len(record)
        append(uvarint[size << 1] if size < 8192 else varint(size))
        append(record)
    return parts


def encode_record(record: Record, base_ts: int, offset_delta: bytes) -> bytes:
    """One record as a records section holds it, length prefix included.

    ``offset_delta`` comes encoded (``offset_deltas``). The general form of
    what ``_encode_records`` writes, for callers that encode records one by
    one (the storage's fetch path, for entries off its fast path).
    """
    timestamp, key, value, headers = record
    body = b"".join((
        b"\x00",  # record attributes, unused
        _varint(timestamp - base_ts),
        offset_delta,
        _NULL if key is None else _encode_bytes(key),
        _NULL if value is None else _encode_bytes(value),
        _encode_headers(headers),
    ))
    return _varint(len(body)) + body


# For callers that encode records sections themselves (the storage's fetch
# path): zigzag varints of 0 to 8191 are SMALL_VARINTS[2 * n].
SMALL_VARINTS = _UVARINT
SMALL_VARINT_LIMIT = _UVARINT_LIMIT // 2
varint = _varint
NULL_LENGTH = _NULL


def offset_deltas(count: int) -> list[bytes]:
    """The encoded offset deltas 0 to count - 1."""
    return _offset_deltas(count)


def sparse_offset_deltas(offsets: Sequence[int]) -> list[bytes]:
    """The encoded offset deltas of records at ``offsets`` (rising, with holes) from the first."""
    base = offsets[0] if offsets else 0
    return [_varint(offset - base) for offset in offsets]


def encode_records(records: Sequence[Record]) -> bytes:
    """The uncompressed records section of a batch of ``records``, base timestamp the first record's."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    return b"".join(_encode_records(records, records[0][0]))


def _offset_deltas(count: int) -> list[bytes]:
    # Offset deltas are 0..count-1: a slice of the table (zigzag(i) = 2i)
    # instead of an encode per record.
    deltas = _UVARINT[0 : 2 * min(count, 8192) : 2]
    deltas.extend(_varint(index) for index in range(8192, count))
    return deltas


def _encode_bytes(data: bytes) -> bytes:
    """Length-prefixed (zigzag varint) bytes."""
    return _varint(len(data)) + data


def _encode_headers(headers: tuple[tuple[str, bytes | None], ...]) -> bytes:
    parts = [_varint(len(headers))]
    for key, value in headers:
        parts.append(_encode_bytes(key.encode()))
        parts.append(_NULL if value is None else _encode_bytes(value))
    return b"".join(parts)


def records_size_hint(records: Sequence[Record]) -> int:
    """Upper bound of ``encode_batch(..., records)`` size without compression.

    Cheap enough to size fetch responses before encoding: it assumes the
    worst-case varint widths instead of computing them.
    """
    size = HEADER_SIZE
    for _, key, value, headers in records:
        # length(5) + attributes(1) + timestamp delta(10) + offset delta(5)
        # + key and value lengths(5 each) + header count(5)
        size += 36 + (len(key) if key else 0) + (len(value) if value else 0)
        for h_key, h_value in headers:
            size += 10 + len(h_key.encode()) + (len(h_value) if h_value else 0)
    return size
