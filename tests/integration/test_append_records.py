"""Records parsed by append.lua: held to the Python decoder, and through real clients.

The produce path hands each batch's records section to
gateway/storage/lua/append.lua unparsed. protocol/records.py's decoder is the
reference here: the records it decodes must become the same entries, and a
records section it refuses must be refused by the script with the same
Kafka error code, with nothing written. The script is called directly with
its documented arguments for the differential tests, and through the gateway
with confluent-kafka and raw Produce requests for the rest.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import confluent_kafka
import pytest
import redis
from crc32c import crc32c
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from kafka_redis_gateway.gateway.storage import keys
from kafka_redis_gateway.gateway.storage.entries import entry_to_record
from kafka_redis_gateway.gateway.storage.redis_storage import APPEND, INDEX_BYTES, INDEX_INTERVAL
from kafka_redis_gateway.gateway.storage.scripts import library
from kafka_redis_gateway.protocol.records import (
    Compression,
    Record,
    RecordError,
    _varint,
    decode_batches,
    encode_batch,
    encode_records,
)
from kio.schema.errors import ErrorCode

from tests.integration.test_protocol import (
    Wire,
    create_topic,
    fetch,
    fetched,
    partition_errors,
    produce,
)
from tests.unit.test_records import MALFORMED_RECORDS

CORRUPT, INVALID_TIMESTAMP, INVALID_RECORD = 2, 32, 87
NOW = 1_700_000_000_000
DIFFERENTIAL = settings(max_examples=150, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def append_script(redis_server: Any) -> Iterator[Any]:
    """append.lua as the gateway calls it: its function in the gateway's library."""
    client = redis_server.client()
    try:
        client.function_load(library().source)
    except redis.ResponseError as exc:  # another test loaded this version already
        assert "already exists" in str(exc)

    def call(keys: Sequence[str], args: Sequence[Any]) -> Any:
        return client.fcall(APPEND.name, len(keys), *keys, *args)

    yield call
    client.close()


def run_append(script: Any, topic: str, body: bytes, count: int, base_ts: int, max_ts: int,
               log_append_time: bool = False) -> Any:
    """append.lua on one batch, not idempotent: its arguments as the script's header documents them."""
    not_idempotent = [-1, -1, -1, -1]
    one_batch = [1, count, base_ts, max_ts, int(log_append_time), body]
    return script(keys=keys.partition_keys(topic, 0),
                  args=[INDEX_INTERVAL, INDEX_BYTES, *not_idempotent, "-", 0, 0, *one_batch])


def raw_entries(client: redis.Redis, topic: str) -> list[tuple[bytes, list[bytes]]]:
    """(ID, field names and values in order) of each entry: redis-py's XRANGE folds repeated fields."""
    reply = client.eval("return redis.call('XRANGE', KEYS[1], '-', '+')", 1, keys.stream(topic, 0))
    return [(entry_id, list(fields)) for entry_id, fields in reply]


def stored(client: redis.Redis, topic: str) -> list[Record]:
    return [entry_to_record(entry_id, fields) for entry_id, fields in raw_entries(client, topic)]


def stored_fields(client: redis.Redis, topic: str) -> list[list[bytes]]:
    return [fields for _, fields in raw_entries(client, topic)]


def batch_around(body: bytes, count: int, base_ts: int, max_ts: int) -> bytes:
    """A whole v2 batch (valid CRC) around a records section."""
    header = bytearray(encode_batch(0, [Record(base_ts, None, None, ())])[:61])
    struct.pack_into(">i", header, 8, 61 - 12 + len(body))
    struct.pack_into(">q", header, 27, base_ts)
    struct.pack_into(">q", header, 35, max_ts)
    struct.pack_into(">i", header, 57, count)
    struct.pack_into(">I", header, 17, crc32c(bytes(header[21:]) + body))
    return bytes(header) + body


def python_verdict(body: bytes, count: int, base_ts: int, max_ts: int) -> list[Record] | int:
    try:
        [(_, records)] = decode_batches(batch_around(body, count, base_ts, max_ts))
    except RecordError as exc:
        return exc.error_code
    if not records:
        return CORRUPT  # produce refuses a partition without records (as the script does)
    if any(not -(2**53) < record.timestamp < 2**53 for record in records):
        return INVALID_TIMESTAMP
    return records


def assert_same_verdict(script: Any, client: redis.Redis, body: bytes, count: int,
                        base_ts: int = NOW, max_ts: int = NOW) -> None:
    topic = f"a-{uuid.uuid4().hex[:12]}"
    expected = python_verdict(body, count, base_ts, max_ts)
    reply = run_append(script, topic, body, count, base_ts, max_ts)
    if isinstance(expected, int):
        assert reply[0] == -1 and reply[1] == expected, (reply, expected)
        assert not client.exists(*keys.partition_keys(topic, 0))
    else:
        assert reply[0] == 0, reply
        assert stored(client, topic) == expected


def raw_records(*records: bytes) -> bytes:
    """A records section of hand-written records (each without its length)."""
    return b"".join(_varint(len(raw)) + raw for raw in records)


# -- The script against the Python decoder --------------------------------------------


def shapes() -> list[Record]:
    """Records that take each path of the script's parser: fast (null key, 64-8191 bytes, no headers),
    short (keys up to 63 bytes, small and null values, no headers) and general (longer keys, headers,
    long records, wide varints)."""
    return [
        Record(NOW, None, b"v" * 100, ()),
        Record(NOW + 5000, None, b"v" * 100, ()),
        Record(NOW - 3, None, b"w" * 8000, ()),
        Record(NOW, None, b"", ()),
        Record(NOW, b"", None, ()),
        Record(NOW, None, None, ()),
        Record(NOW, b"key", b"value" * 30, ()),
        Record(NOW + 2**40, None, b"far-future delta" * 5, ()),
        Record(NOW, None, b"x" * 20_000, ()),
        Record(NOW, b"k" * 300, b"v" * 100, (("trace", b"abc"),)),
        Record(NOW, None, b"v" * 100, (("a", None), ("a", b""), ("a", b"again"), ("ünï", b"\x00\xff"))),
        Record(-1, None, b"no timestamp" * 10, ()),
        Record(NOW, b"key-7", b"v" * 100, ()),
        Record(NOW, b"k" * 63, b"v" * 10, ()),
        Record(NOW, b"k" * 64, b"v" * 10, ()),
        Record(NOW, None, b"v" * 63, ()),
        Record(NOW, b"k", None, ()),
    ]


def test_every_shape_becomes_the_entries_the_decoder_reads(append_script: Any,
                                                              redis_client: redis.Redis) -> None:
    records = shapes() * 3
    assert_same_verdict(append_script, redis_client, encode_records(records), len(records),
                        base_ts=records[0].timestamp)


def test_entry_fields_keep_null_and_empty_apart(append_script: Any, redis_client: redis.Redis,
                                                topic_name: str) -> None:
    records = [
        Record(NOW, None, b"v", ()),
        Record(NOW, b"", b"", ()),
        Record(NOW, b"k", None, (("h", None), ("h", b""), ("h", b"x"))),
    ]
    assert run_append(append_script, topic_name, encode_records(records), 3, NOW, NOW)[0] == 0
    ts = str(NOW).encode()
    assert stored_fields(redis_client, topic_name) == [
        [b"ts", ts, b"value", b"v"],
        [b"ts", ts, b"key", b"", b"value", b""],
        [b"ts", ts, b"key", b"k", b"h0:h", b"", b"h:h", b"", b"h:h", b"x"],
    ]


def test_many_records_in_one_batch(append_script: Any, redis_client: redis.Redis, topic_name: str) -> None:
    # Offset deltas and timestamp deltas past one byte, 20,000 entries, index points.
    records = [Record(NOW + i // 7, None, b"%099d" % i, ()) for i in range(20_000)]
    last = NOW + 19_999 // 7
    assert run_append(append_script, topic_name, encode_records(records), len(records), NOW, last)[0] == 0
    assert stored(redis_client, topic_name) == records
    index = redis_client.zrange(keys.offset_index(topic_name, 0), 0, -1, withscores=True)
    assert [score for _, score in index] == [float(offset) for offset in range(0, 20_000, INDEX_INTERVAL)]
    assert redis_client.hmget(keys.partition_meta(topic_name, 0), "max_ts", "max_ts_offset") == [
        str(last).encode(), b"19999"]


@pytest.mark.parametrize("raw", MALFORMED_RECORDS)
def test_malformed_records_are_refused_like_the_decoder_does(append_script: Any, redis_client: redis.Redis,
                                                             raw: bytes) -> None:
    good = b"\x00\x00\x00\x01\x01\x00"
    assert_same_verdict(append_script, redis_client, raw_records(good, raw), 2)
    assert python_verdict(raw_records(good, raw), 2, NOW, NOW) == CORRUPT


def test_truncated_sections_are_corrupt(append_script: Any, redis_client: redis.Redis) -> None:
    body = encode_records(shapes())
    for end in [1, 2, 3, 50, 104, 105, len(body) // 2, len(body) - 1]:
        assert_same_verdict(append_script, redis_client, body[:end], len(shapes()))


@pytest.mark.parametrize("declared", [0, 1, 3, 1000])
def test_record_count_must_match_the_header(append_script: Any, redis_client: redis.Redis,
                                            declared: int) -> None:
    body = encode_records([Record(NOW, None, b"v" * 100, ())] * 2)
    assert_same_verdict(append_script, redis_client, body, declared)
    assert python_verdict(body, declared, NOW, NOW) == INVALID_RECORD


@pytest.mark.parametrize("timestamp", [2**53, -(2**53), 2**62])
def test_timestamps_lua_cannot_hold_exactly_are_refused(append_script: Any, redis_client: redis.Redis,
                                                        topic_name: str, timestamp: int) -> None:
    good = Record(NOW, None, b"first", ())
    body = encode_records([good, Record(timestamp, None, b"v", ())])
    assert run_append(append_script, topic_name, body, 2, NOW, NOW) == [-1, INVALID_TIMESTAMP,
                                                                       b"record timestamp out of range"]
    assert not redis_client.exists(keys.stream(topic_name, 0))


def test_log_append_time_batches_take_the_max_timestamp(append_script: Any, redis_client: redis.Redis,
                                                        topic_name: str) -> None:
    records = [Record(NOW + i, None, b"v", ()) for i in range(3)]
    reply = run_append(append_script, topic_name, encode_records(records), 3, NOW, NOW + 777,
                       log_append_time=True)
    assert reply[0] == 0
    assert [record.timestamp for record in stored(redis_client, topic_name)] == [NOW + 777] * 3


safe_timestamps = st.integers(NOW - 2**31, NOW + 2**31)
header_names = st.sampled_from(["a", "b", "trace", "ünï", ""])
records_strategy = st.lists(
    st.builds(
        Record,
        safe_timestamps,
        st.none() | st.binary(max_size=20),
        st.none() | st.binary(max_size=30) | st.binary(min_size=60, max_size=140),
        st.lists(st.tuples(header_names, st.none() | st.binary(max_size=8)), max_size=3).map(tuple),
    ),
    min_size=1,
    max_size=6,
)
mutation = st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), st.integers(0),
                     st.binary(min_size=1, max_size=8))


def mutated(data: bytes, mutations: Sequence[tuple[str, int, bytes]]) -> bytes:
    edited = bytearray(data)
    for kind, where, payload in mutations:
        if not edited:
            break
        position = where % len(edited)
        if kind == "flip":
            edited[position] ^= payload[0] or 1
        elif kind == "set":
            edited[position : position + len(payload)] = payload
        elif kind == "insert":
            edited[position:position] = payload
        elif kind == "delete":
            del edited[position : position + len(payload)]
        else:
            del edited[position:]
    return bytes(edited)


def assert_same_unless_timestamp(script: Any, client: redis.Redis, body: bytes, count: int) -> None:
    # A random 10-byte varlong can put a timestamp beyond 2^53 ms: the script
    # refuses that record as soon as it has read it (INVALID_TIMESTAMP), the
    # decoder reads on and may report a later record's error instead; those
    # inputs say nothing about the parsers agreeing, so they are skipped.
    topic = f"a-{uuid.uuid4().hex[:12]}"
    reply = run_append(script, topic, body, count, NOW, NOW)
    assume(not (reply[0] == -1 and reply[1] == INVALID_TIMESTAMP))
    client.delete(*keys.partition_keys(topic, 0))
    assert_same_verdict(script, client, body, count)


@DIFFERENTIAL
@given(records=records_strategy, mutations=st.lists(mutation, max_size=3), extra=st.integers(-1, 1))
def test_fuzz_mutated_sections_get_the_decoders_verdict(append_script: Any, redis_client: redis.Redis,
                                                        records: list[Record],
                                                        mutations: list[tuple[str, int, bytes]],
                                                        extra: int) -> None:
    body = mutated(encode_records(records), mutations)
    assert_same_unless_timestamp(append_script, redis_client, body, len(records) + extra)


@DIFFERENTIAL
@given(body=st.binary(max_size=300), count=st.integers(0, 8))
def test_fuzz_random_sections_get_the_decoders_verdict(append_script: Any, redis_client: redis.Redis,
                                                       body: bytes, count: int) -> None:
    assert_same_unless_timestamp(append_script, redis_client, body, count)


# -- Through the gateway ------------------------------------------------------------


@pytest.fixture
def wire(bootstrap: str) -> Iterator[Wire]:
    connection = Wire(bootstrap)
    yield connection
    connection.close()


def batch_with_body(body: bytes, count: int, base_ts: int = NOW) -> bytes:
    return batch_around(body, count, base_ts, base_ts)


def high_watermark(wire: Wire, topic: str, partition: int) -> int:
    return int(fetched(wire.call(fetch(12, 0, topic=topic, partition=partition))).high_watermark)


@pytest.mark.parametrize(
    ("body", "count", "code"),
    [
        pytest.param(raw_records(b"\x00\x00\x00\x04ab\x01\x00\xff"), 1, ErrorCode.corrupt_message,
                     id="record-longer-than-fields"),
        pytest.param(raw_records(b"\x00\x00\x00\x01\xc8\x01" + b"v" * 99 + b"\x00"), 1,
                     ErrorCode.corrupt_message, id="value-cut-short"),
        pytest.param(encode_records([Record(NOW, None, b"v" * 100, ())] * 3), 2, ErrorCode.invalid_record,
                     id="count-mismatch"),
        pytest.param(encode_records([Record(NOW, None, b"v", ()), Record(2**60, None, b"v", ())]), 2,
                     ErrorCode.invalid_timestamp, id="timestamp-out-of-range"),
    ],
)
def test_a_malformed_record_with_a_valid_crc_fails_only_its_partition(
        wire: Wire, topic_name: str, body: bytes, count: int, code: ErrorCode) -> None:
    create_topic(wire, topic_name, partitions=2)
    good = encode_batch(0, [Record(NOW, None, b"fine", ())])
    response = wire.call(produce(topic_name, {0: batch_with_body(body, count), 1: good}))
    assert partition_errors(response) == {0: code, 1: ErrorCode.none}
    assert high_watermark(wire, topic_name, 0) == 0
    assert high_watermark(wire, topic_name, 1) == 1


def test_a_batch_timestamp_out_of_range_is_refused(wire: Wire, topic_name: str) -> None:
    create_topic(wire, topic_name)
    data = encode_batch(0, [Record(2**53, None, b"v", ())])
    assert partition_errors(wire.call(produce(topic_name, {0: data}))) == {0: ErrorCode.invalid_timestamp}
    assert high_watermark(wire, topic_name, 0) == 0


def test_a_malformed_second_batch_writes_nothing_of_the_first(wire: Wire, topic_name: str) -> None:
    create_topic(wire, topic_name)
    good = encode_batch(0, [Record(NOW, None, b"first", ())])
    bad = batch_with_body(raw_records(b"\x00\x00\x00\x03ab\x01\x00"), 1)
    assert partition_errors(wire.call(produce(topic_name, {0: good + bad}))) == {0: ErrorCode.corrupt_message}
    assert high_watermark(wire, topic_name, 0) == 0


HeaderList = list[tuple[str, bytes | None]]


def produce_with_confluent(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None,
                                                                                 HeaderList]],
                           compression: str = "none") -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "compression.type": compression,
                                         "linger.ms": 50})
    errors: list[Any] = []
    for key, value, headers in messages:
        producer.produce(topic, value, key, partition=0, headers=headers or None,
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []


def consume_with_confluent(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes | None,
                                                                                 HeaderList]]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                                         "enable.auto.commit": False})
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        got: list[tuple[bytes | None, bytes | None, HeaderList]] = []
        deadline = time.monotonic() + 60
        while len(got) < count:
            assert time.monotonic() < deadline, f"read {len(got)} of {count}"
            for message in consumer.consume(1_000, timeout=0.5):
                assert message.error() is None, message.error()
                got.append((message.key(), message.value(), list(message.headers() or [])))
        return got
    finally:
        consumer.close()


AWKWARD: list[tuple[bytes | None, bytes | None, HeaderList]] = [
    (None, b"value only", []),
    (b"", b"", []),
    (b"key only", None, []),
    (None, None, []),
    (b"k", b"v" * 100, [("h", None), ("h", b""), ("h", b"repeated"), ("other", b"x")]),
    (None, b"big" * 150_000, []),
    (None, b"%099d" % 7, []),
]


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_records_of_every_shape_come_back(bootstrap: str, redis_client: redis.Redis,
                                                    topic_name: str, compression: str) -> None:
    many = [(None, b"%099d" % i, []) for i in range(5_000)]
    messages: list[tuple[bytes | None, bytes | None, HeaderList]] = [*AWKWARD, *many, *AWKWARD]
    produce_with_confluent(bootstrap, topic_name, messages, compression)
    assert consume_with_confluent(bootstrap, topic_name, len(messages)) == messages
    fields = stored_fields(redis_client, topic_name)
    assert [entry[2:] for entry in fields[:5]] == [
        [b"value", b"value only"],
        [b"key", b"", b"value", b""],
        [b"key", b"key only"],
        [],
        [b"key", b"k", b"value", b"v" * 100,
         b"h0:h", b"", b"h:h", b"", b"h:h", b"repeated", b"h:other", b"x"],
    ]


def test_compressed_batches_from_the_python_codec(wire: Wire, topic_name: str,
                                                  redis_client: redis.Redis) -> None:
    create_topic(wire, topic_name)
    records = shapes()
    for codec in Compression:
        data = encode_batch(0, records, compression=codec)
        assert partition_errors(wire.call(produce(topic_name, {0: data}))) == {0: ErrorCode.none}
    assert stored(redis_client, topic_name) == records * len(Compression)
