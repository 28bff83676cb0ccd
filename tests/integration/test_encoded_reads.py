"""Reads that return an encoded records section (ReadRequest.encoded), on a real Redis.

The fetch path asks the storage for records already encoded
(entries.encode_entries: the commonest entry shapes straight from their
fields, the others through entry_to_record). These tests check that this
gives byte for byte the batch that the Record path encodes, over entries of
every shape the mapping knows, with the same limits, whether the read
seeks (read.lua) or continues a cursor.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
import redis
from kafka_redis_gateway.gateway.storage import (
    AppendBatch,
    AppendRequest,
    ReadRequest,
    ReadResult,
    RedisStorage,
)
from kafka_redis_gateway.gateway.storage.entries import NativeFormat, encode_entries
from kafka_redis_gateway.protocol.records import (
    Compression,
    Record,
    decode_batches,
    encode_batch,
    encode_encoded_batch,
)

from tests.integration.test_storage import stream_key

TIMESTAMP = 1_700_000_000_000


@pytest.fixture
def topic() -> str:
    return f"e-{uuid.uuid4().hex[:12]}"


def awkward_records(count: int) -> list[Record]:
    """Keys, values, headers and timestamps in the shapes a fetch must keep exactly."""
    shapes: list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]] = [
        (None, b"value only", ()),
        (b"k", b"key and value", ()),
        (b"", b"", ()),  # empty, not null
        (None, None, ()),
        (b"k", None, (("trace", b"abc"),)),
        (None, b"v", (("h", b"1"), ("h", None), ("h", b""), ("x", b"2"))),  # repeated, null, empty
        ("ключ".encode(), "значение".encode(), (("ünï", "cödé".encode()),)),
        (b"big", b"x" * 20_000, ()),  # lengths past one- and two-byte varints
    ]
    records = []
    for index in range(count):
        key, value, headers = shapes[index % len(shapes)]
        # Timestamps go back and forth: negative deltas from the batch's first.
        records.append(Record(TIMESTAMP + (index // 3) * (-1) ** index, key, value, headers))
    return records


async def fill(storage: RedisStorage, topic: str, client: redis.Redis) -> int:
    """Own-format records, with native and hand-written entries in between; the end offset."""
    records = awkward_records(40)
    (result,) = await storage.append([AppendRequest(topic, 0, [AppendBatch.of_records(records[:20])])])
    assert not isinstance(result, Exception), result
    key = stream_key(topic)
    client.xadd(key, {"order_id": "1", "amount": "50"})  # native
    client.xadd(key, {"value": "no ts: the entry ID's time"})
    client.xadd(key, {"value": "v", "key": "k"})  # own fields, other order
    client.xadd(key, {"ts": "not a number", "value": "v"})
    client.xadd(key, {"ts": "+12", "value": "int() reads it"})
    client.xadd(key, {"ts": "7", "value": "v", "ts ": "native after all"})
    client.xadd(key, {b"h:\xff\xfe": b"non-UTF-8 header name", "value": "v"})
    (result,) = await storage.append([AppendRequest(topic, 0, [AppendBatch.of_records(records[20:])])])
    assert not isinstance(result, Exception), result
    return 47


async def read(storage: RedisStorage, request: ReadRequest) -> ReadResult:
    (result,) = await storage.read([request])
    assert isinstance(result, ReadResult), result
    return result


@pytest.mark.parametrize("max_bytes", [1, 90, 400, 25_000, 1 << 20])
@pytest.mark.parametrize("native", [NativeFormat(), NativeFormat(b"amount", b"order_id")])
async def test_encoded_reads_give_the_batches_of_record_reads(
        storage: RedisStorage, redis_server: object, redis_client: redis.Redis, topic: str,
        max_bytes: int, native: NativeFormat) -> None:
    end = await fill(storage, topic, redis_client)
    # A second storage for the Record reads, so that both keep their own
    # cursors: after the first read each continues one.
    plain = RedisStorage(storage.url)
    try:
        offset = 0
        while offset < end:
            request = ReadRequest(topic, 0, offset, max_bytes, 1000, native)
            encoded = await read(storage, replace(request, encoded=True))
            records = await read(plain, request)
            assert not encoded.records and encoded.encoded is not None
            assert encoded.record_count == len(records.records) > 0
            assert (encoded.log_start_offset, encoded.high_watermark, encoded.last_id) == (
                records.log_start_offset, records.high_watermark, records.last_id)
            batch = encode_encoded_batch(offset, encoded.encoded)
            assert batch == encode_batch(offset, records.records)
            ((header, decoded),) = decode_batches(batch)
            assert decoded == list(records.records)
            assert header.base_offset == offset
            offset += encoded.record_count
        assert offset == end
        at_end = await read(storage, ReadRequest(topic, 0, end, max_bytes, 1000, native, encoded=True))
        assert at_end.encoded is None and at_end.record_count == 0 and not at_end.out_of_range
    finally:
        await plain.close()


async def test_encoded_read_limits_and_out_of_range(storage: RedisStorage, redis_client: redis.Redis,
                                                    topic: str) -> None:
    await fill(storage, topic, redis_client)
    by_count = await read(storage, ReadRequest(topic, 0, 3, 1 << 20, 5, encoded=True))
    assert by_count.record_count == 5
    # The first entry comes whatever its size (KIP-74): offset 7 holds 20,000 bytes.
    first_only = await read(storage, ReadRequest(topic, 0, 7, 10, 1000, encoded=True))
    assert first_only.record_count == 1
    past_end = await read(storage, ReadRequest(topic, 0, 48, 1 << 20, 1000, encoded=True))
    assert past_end.out_of_range and past_end.encoded is None


def test_encode_entries_compresses_like_encode_batch() -> None:
    entries = [(f"{TIMESTAMP}-{i}".encode(), [b"ts", str(TIMESTAMP + i).encode(), b"value", b"v" * i])
               for i in range(300)]
    encoded, size = encode_entries(entries, 1000, 1 << 20)
    assert encoded is not None and encoded.count == 300
    assert size == sum(len(field) for _, fields in entries for field in fields)
    records = [Record(TIMESTAMP + i, None, b"v" * i, ()) for i in range(300)]
    for codec in Compression:
        expected = encode_batch(5, records, compression=codec)
        assert encode_encoded_batch(5, encoded, compression=codec) == expected
