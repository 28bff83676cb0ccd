"""How a Kafka record is laid out as a stream entry, and back.

An entry written by the gateway has, in this order:

- ``ts``: the record's CreateTime in ms (always present);
- ``key``: the key (absent for a null key);
- ``value``: the value (absent for a null value);
- ``h:<name>``: one field per header, in order, duplicates kept; a header
  with a null value is written as ``h0:<name>`` with an empty value.

Reading accepts any entry made of those fields, so a native
``XADD topic * value hello`` reads back as a record with value ``hello``, no
key, and the entry ID's milliseconds as its timestamp. Fields outside this
set are ignored here (the interop issue maps them).
"""

from __future__ import annotations

from collections.abc import Sequence

from kafka_redis_gateway.protocol.records import Record

TS = b"ts"
KEY = b"key"
VALUE = b"value"
HEADER = b"h:"
NULL_HEADER = b"h0:"

Arg = bytes | int | str


def append_args(records: Sequence[Record]) -> list[Arg]:
    """Flatten records into the append script's argument list."""
    args: list[Arg] = [len(records)]
    add = args.append
    for timestamp, key, value, headers in records:
        add(1 + (key is not None) + (value is not None) + len(headers))
        add(TS)
        add(timestamp)
        if key is not None:
            add(KEY)
            add(key)
        if value is not None:
            add(VALUE)
            add(value)
        for name, header_value in headers:
            if header_value is None:
                add(NULL_HEADER + name.encode())
                add(b"")
            else:
                add(HEADER + name.encode())
                add(header_value)
    return args


def id_millis(entry_id: bytes) -> int:
    return int(entry_id[: entry_id.index(b"-")])


def entry_to_record(entry_id: bytes, fields: Sequence[bytes]) -> Record:
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
    if timestamp is None:
        timestamp = id_millis(entry_id)
    return Record(timestamp, key, value, tuple(headers))


def _int_or_none(raw: bytes) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None
