"""Reads that continue a cursor (storage/cursors.py) and the append argument shapes, on a real Redis.

A read at the offset where the previous read of the same storage stopped is
served by cursor.lua plus a plain XRANGE; these tests check that it returns
exactly what read.lua would, also when the stream changed underneath it.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from kafka_redis_gateway.gateway.storage import (
    AppendBatch,
    AppendRequest,
    ReadRequest,
    ReadResult,
    RedisStorage,
)
from kafka_redis_gateway.protocol.records import Record

from tests.integration.test_storage import stream_key

TIMESTAMP = 1_700_000_000_000


@pytest.fixture
def topic() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


async def append(storage: RedisStorage, topic: str, records: list[Record]) -> int:
    (result,) = await storage.append([AppendRequest(topic, 0, [AppendBatch.of_records(records)])])
    assert not isinstance(result, Exception), result
    return result.base_offset


def numbered(first: int, count: int) -> list[Record]:
    return [Record(TIMESTAMP, None, str(offset).encode(), ()) for offset in range(first, first + count)]


async def read(storage: RedisStorage, topic: str, offset: int, max_bytes: int = 1 << 20) -> ReadResult:
    (result,) = await storage.read([ReadRequest(topic, 0, offset, max_bytes, 10_000)])
    assert isinstance(result, ReadResult), result
    return result


async def test_reading_on_returns_every_entry_once_with_native_entries_in_between(
        storage: RedisStorage, topic: str, redis_client: redis.Redis) -> None:
    await append(storage, topic, numbered(0, 50))
    offset, seen = 0, []
    for step in range(12):
        # Small reads, so most of them continue a cursor; native entries
        # arrive between reads and take offsets too.
        result = await read(storage, topic, offset, max_bytes=60)
        assert result.offset == offset
        seen += [record.value for record in result.records]
        offset += len(result.records)
        redis_client.xadd(stream_key(topic), {"value": f"n{step}"})
    while True:
        result = await read(storage, topic, offset)
        if not result.records:
            break
        seen += [record.value for record in result.records]
        offset += len(result.records)
    assert offset == result.high_watermark == 62
    values = [value.decode() for value in seen if value is not None]
    assert [v for v in values if not v.startswith("n")] == [str(i) for i in range(50)]
    assert [v for v in values if v.startswith("n")] == [f"n{i}" for i in range(12)]


async def test_a_cursor_into_a_deleted_and_recreated_stream_is_not_used(
        storage: RedisStorage, topic: str, redis_client: redis.Redis) -> None:
    await append(storage, topic, numbered(0, 20))
    first = await read(storage, topic, 0, max_bytes=20)
    offset = len(first.records)
    assert 0 < offset < 20
    redis_client.delete(stream_key(topic))
    await append(storage, topic, numbered(0, 30))
    result = await read(storage, topic, offset)
    assert [record.value for record in result.records] == [str(i).encode() for i in range(offset, 30)]


async def test_a_cursor_after_trimming(storage: RedisStorage, topic: str,
                                       redis_client: redis.Redis) -> None:
    await append(storage, topic, numbered(0, 20))
    offset = len((await read(storage, topic, 0, max_bytes=40)).records)
    # Trim up to and including the cursor's entry: the read starts at the new log start.
    redis_client.xtrim(stream_key(topic), maxlen=20 - offset, approximate=False)
    result = await read(storage, topic, offset)
    assert result.log_start_offset == offset
    assert [record.value for record in result.records] == [str(i).encode() for i in range(offset, 20)]
    # Trimmed past a cursor's position: out of range, as without a cursor.
    offset = 10 + len((await read(storage, topic, 10, max_bytes=4)).records)  # a cursor there
    redis_client.xtrim(stream_key(topic), maxlen=5, approximate=False)
    result = await read(storage, topic, offset)
    assert result.out_of_range and result.log_start_offset == 15


@pytest.mark.parametrize("records", [
    [Record(TIMESTAMP + i, b"k%d" % i, b"v%d" % i, ()) for i in range(5)],
    [Record(TIMESTAMP + i, b"k%d" % i, None, ()) for i in range(5)],
    [Record(TIMESTAMP + i, None, None, ()) for i in range(5)],
    [Record(TIMESTAMP, None, b"a", ()), Record(TIMESTAMP, b"k", b"b", ()),
     Record(TIMESTAMP, b"k", None, (("h", b"1"), ("h", None))), Record(TIMESTAMP, None, b"", ())],
], ids=["key-value", "key-only", "neither", "mixed"])
async def test_every_append_shape_round_trips(storage: RedisStorage, topic: str, records: list[Record],
                                              redis_client: redis.Redis) -> None:
    await append(storage, topic, records)
    assert list((await read(storage, topic, 0)).records) == records
    # The entries keep the documented field order (docs/mapping.md).
    (_, fields), *_ = redis_client.xrange(stream_key(topic), count=1)  # type: ignore[misc]
    first = records[0]
    expected = [b"ts"] + ([b"key"] if first.key is not None else []) + (
        [b"value"] if first.value is not None else [])
    assert list(fields)[: len(expected)] == expected


def cursor_reads(client: redis.Redis) -> int:
    """Reads served from a cursor so far: each is one MULTI/EXEC (cursor.lua and XRANGE)."""
    return int(client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0))


async def test_a_read_asked_again_still_continues_from_its_cursor(
        storage: RedisStorage, topic: str, redis_client: redis.Redis) -> None:
    # A fetch whose records were not sent (over the response budget, or an
    # answer the client never got) is asked again at the same offset.
    await append(storage, topic, numbered(0, 50))
    first = await read(storage, topic, 0, max_bytes=60)  # read.lua; leaves a cursor
    offset = len(first.records)
    before = cursor_reads(redis_client)
    again = [await read(storage, topic, offset, max_bytes=60) for _ in range(2)]
    assert cursor_reads(redis_client) - before == 2, "a read asked again went through read.lua"
    assert again[0].records == again[1].records
    assert again[0].records[0].value == str(offset).encode()


def redis_output_bytes(client: redis.Redis) -> int:
    return int(client.info("stats")["total_net_output_bytes"])


async def test_a_read_from_a_cursor_copies_about_its_max_bytes(
        storage: RedisStorage, topic: str, redis_client: redis.Redis) -> None:
    # The XRANGE after a cursor has no byte limit, only a count: sized from
    # the entries read before, it must not copy many entries more than fit.
    big = [Record(TIMESTAMP, None, b"%04d" % offset + b"x" * (256 * 1024), ()) for offset in range(40)]
    await append(storage, topic, big)
    first = await read(storage, topic, 0, max_bytes=300 * 1024)  # read.lua: one entry, and a cursor
    assert len(first.records) == 1
    before = redis_output_bytes(redis_client)
    second = await read(storage, topic, 1, max_bytes=300 * 1024)
    copied = redis_output_bytes(redis_client) - before
    assert [record.value[:4] for record in second.records] == [b"0001"]
    assert copied < 3 * 256 * 1024, f"{copied} bytes came from Redis for a 300 KiB read"
