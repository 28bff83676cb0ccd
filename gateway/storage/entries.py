"""How a Kafka record is laid out as a stream entry, and back.

An entry written by the gateway has, in this order:

- ``ts``: the record's CreateTime in ms (always present);
- ``key``: the key (absent for a null key);
- ``value``: the value (absent for a null value);
- ``h:<name>``: one field per header, in order, duplicates kept; a header
  with a null value is written as ``h0:<name>`` with an empty value.

Reading accepts any entry made of those fields, so a native
``XADD topic * value hello`` reads back as a record with value ``hello``, no
key, and the entry ID's milliseconds as its timestamp.

An entry with any other field name is a *native* entry, mapped as the
topic's :class:`NativeFormat` says (docs/mapping.md, "Native entries"): by
default the value is a JSON object of all its fields; with a value field
that field is the value, an optional key field is the key, and the other
fields are headers. A native entry's timestamp is its ID's milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka_redis_gateway.protocol.records import (
    NULL_LENGTH,
    SMALL_VARINT_LIMIT,
    SMALL_VARINTS,
    EncodedRecords,
    Record,
    encode_record,
    offset_deltas,
    sparse_offset_deltas,
    varint,
)

TS = b"ts"
KEY = b"key"
VALUE = b"value"
HEADER = b"h:"
NULL_HEADER = b"h0:"

_new_record = tuple.__new__  # builds a Record without NamedTuple's keyword handling


@dataclass(frozen=True, slots=True)
class NativeFormat:
    """How a topic maps native entries (topic configs redis.value.field, redis.key.field)."""

    value_field: bytes | None = None
    key_field: bytes | None = None


DEFAULT_NATIVE = NativeFormat()


def id_sequence(entry_id: bytes) -> int:
    """An entry ID's sequence number: the offset of a compacted topic's entry (docs/mapping.md)."""
    return int(entry_id[entry_id.index(b"-") + 1:])


def id_millis(entry_id: bytes) -> int:
    return int(entry_id[: entry_id.index(b"-")])


def entry_to_record(
    entry_id: bytes, fields: Sequence[bytes], native: NativeFormat = DEFAULT_NATIVE
) -> Record:
    # The commonest shapes first (ts and value; ts, key and value): no loop.
    if len(fields) == 4 and fields[0] == TS and fields[2] == VALUE:
        created = _int_or_none(fields[1])
        if created is not None:
            return _new_record(Record, (created, None, fields[3], ()))
    elif len(fields) == 6 and fields[0] == TS and fields[2] == KEY and fields[4] == VALUE:
        created = _int_or_none(fields[1])
        if created is not None:
            return _new_record(Record, (created, fields[3], fields[5], ()))
    # One pass: the first field outside the gateway's format hands the entry
    # to the native mapping (this runs once per record a fetch returns).
    timestamp: int | None = None
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes | None]] = []
    for i in range(0, len(fields) - 1, 2):
        name = fields[i]
        if name == VALUE:
            value = fields[i + 1]
        elif name == KEY:
            key = fields[i + 1]
        elif name == TS:
            timestamp = _int_or_none(fields[i + 1])
        elif name.startswith(HEADER):
            headers.append((name[2:].decode("utf-8", "replace"), fields[i + 1]))
        elif name.startswith(NULL_HEADER):
            headers.append((name[3:].decode("utf-8", "replace"), None))
        else:
            return native_to_record(entry_id, fields, native)
    if timestamp is None:
        timestamp = id_millis(entry_id)
    return Record(timestamp, key, value, tuple(headers))


def native_to_record(entry_id: bytes, fields: Sequence[bytes], native: NativeFormat) -> Record:
    """A native entry as a record: the key and value fields, or a JSON object of the fields."""
    key: bytes | None = None
    value: bytes | None = None
    rest: list[tuple[bytes, bytes]] = []
    for i in range(0, len(fields) - 1, 2):
        name, field_value = fields[i], fields[i + 1]
        if native.key_field is not None and name == native.key_field and key is None:
            key = field_value
        elif native.value_field is not None and name == native.value_field and value is None:
            value = field_value
        else:
            rest.append((name, field_value))
    if native.value_field is None:
        return Record(id_millis(entry_id), key, json_object(rest), ())
    headers = tuple((name.decode("utf-8", "replace"), field_value) for name, field_value in rest)
    return Record(id_millis(entry_id), key, value, headers)


def json_object(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A JSON object of field names and values, UTF-8 encoded; a repeated name keeps its last value.

    Bytes that are not valid UTF-8 become JSON escapes of lone surrogates,
    ``\\udc80``-``\\udcff`` for bytes 0x80-0xff (Python's surrogateescape):
    valid UTF-8 text never decodes to those, so the escape is unambiguous,
    and ``json.loads(v)`` then ``.encode("utf-8", "surrogateescape")``
    gives the original bytes back.
    """
    obj = {name.decode("utf-8", "surrogateescape"): field_value.decode("utf-8", "surrogateescape")
           for name, field_value in pairs}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def _int_or_none(raw: bytes) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


def encode_entries(entries: Sequence[Any], limit: int, max_bytes: int,
                   native: NativeFormat = DEFAULT_NATIVE,
                   offsets: Sequence[int] | None = None) -> tuple[EncodedRecords | None, int]:
    """The first entries as one Kafka records section, and their field bytes.

    Takes at most ``limit`` entries, and entries only while their fields'
    bytes stay within ``max_bytes``, except that the first always comes
    (KIP-74): the limits of ``cursors.read_result``. None when no entry is
    taken.

    The records are exactly those ``entry_to_record`` gives (tests compare
    the two), but the commonest shapes (ts and value; ts, key and value) are
    encoded straight from the entry's fields, without a Record in between,
    and a run of entries with the same ``ts`` parses it once: this loop is
    the fetch path's cost per record (docs/benchmarks.md). Other entries go
    through ``entry_to_record``.

    ``offsets``: the entries' offsets when they have holes (a compacted
    topic); without, the entries are at consecutive offsets.
    """
    parts: list[bytes] = []
    append = parts.append
    small, small_limit, null = SMALL_VARINTS, SMALL_VARINT_LIMIT, NULL_LENGTH
    size = count = 0
    base_ts = max_ts = timestamp = 0
    last_ts_field: bytes | None = None  # the ts field that timestamp and timestamp_part are of
    timestamp_part = b""
    taken = entries[:limit]
    deltas = offset_deltas(len(taken)) if offsets is None else sparse_offset_deltas(offsets[:limit])
    for (entry_id, fields), offset_part in zip(taken, deltas, strict=True):
        field_count = len(fields)
        if field_count == 4 and fields[0] == TS and fields[2] == VALUE:
            ts_field, key, value = fields[1], None, fields[3]
            entry_size = 7 + len(ts_field) + len(value)
        elif field_count == 6 and fields[0] == TS and fields[2] == KEY and fields[4] == VALUE:
            ts_field, key, value = fields[1], fields[3], fields[5]
            entry_size = 10 + len(ts_field) + len(key) + len(value)
        else:
            ts_field = key = value = None
            entry_size = sum(map(len, fields))
        size += entry_size
        if size > max_bytes and count:
            size -= entry_size
            break
        if ts_field is not None and ts_field != last_ts_field:
            created = _int_or_none(ts_field)
            if created is None:
                ts_field = None  # entry_to_record decides what this timestamp is
            else:
                if not count:
                    base_ts = max_ts = created
                timestamp, last_ts_field = created, ts_field
                timestamp_part = varint(timestamp - base_ts)
                max_ts = max(max_ts, timestamp)
        if ts_field is None:
            record = entry_to_record(entry_id, fields, native)
            if not count:
                base_ts = max_ts = record[0]
            max_ts = max(max_ts, record[0])
            append(encode_record(record, base_ts, offset_part))
            count += 1
            continue
        if key is None:
            key_part = null
            key = b""
        else:
            length = len(key)
            key_part = small[length << 1] if length < small_limit else varint(length)
        length = len(value)
        record_bytes = b"".join((b"\x00", timestamp_part, offset_part, key_part, key,
                                 small[length << 1] if length < small_limit else varint(length),
                                 value, b"\x00"))
        length = len(record_bytes)
        append(small[length << 1] if length < small_limit else varint(length))
        append(record_bytes)
        count += 1
    if not count:
        return None, 0
    last_delta = -1 if offsets is None else offsets[count - 1] - offsets[0]
    return EncodedRecords(count, b"".join(parts), base_ts, max_ts, last_delta), size
