"""The partition meta hash stands in for XINFO STREAM; index points are spaced by bytes too.

stream_info (lua/stream_info.lua) and append.lua take the end offset, last
ID and first ID from `kafka:{t:p}:meta` instead of XINFO STREAM, which copies
the first and last entries. These tests hold what they return to XINFO after
every kind of change to the stream, and count XINFO calls to check that the
gateway's own appends and reads do without it.
"""

from __future__ import annotations

import redis
from kafka_redis_gateway.gateway.storage import RedisStorage
from kafka_redis_gateway.gateway.storage.redis_storage import INDEX_BYTES, INDEX_INTERVAL
from kafka_redis_gateway.protocol.records import Record

from .test_storage import (
    HOUR_AGO,
    append,
    append_numbered,
    index_key,
    numbered,
    partition_offsets,
    read,
    stream_key,
)


def xinfo_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_xinfo|stream", stats.get("cmdstat_xinfo", {})).get("calls", 0))


async def assert_offsets_match_xinfo(storage: RedisStorage, client: redis.Redis, topic: str) -> None:
    """offsets.lua and read.lua (through stream_info) and the meta hash agree with XINFO STREAM.

    offsets.lua may not write (no-writes), so the meta is checked after
    read.lua, which refreshes it.
    """
    offsets = await partition_offsets(storage, topic)
    if not client.exists(stream_key(topic)):
        assert (offsets.log_start_offset, offsets.end_offset) == (0, 0)
        return
    info = client.xinfo_stream(stream_key(topic))
    added, length = info["entries-added"], info["length"]
    assert (offsets.log_start_offset, offsets.end_offset) == (added - length, added)
    result = await read(storage, topic, added - length, max_records=1)
    assert (result.log_start_offset, result.high_watermark) == (added - length, added)
    meta = client.hgetall(stream_key(topic) + ":meta")
    assert int(meta[b"end_offset"]) == added
    assert meta[b"last_id"] == info["last-generated-id"]
    assert int(meta[b"length"]) == length
    assert meta[b"first_id"] == info["recorded-first-entry-id"]


async def test_meta_agrees_with_xinfo_through_every_change(storage: RedisStorage, topic_name: str,
                                                           redis_client: redis.Redis) -> None:
    topic = topic_name
    client, key = redis_client, stream_key(topic)
    await append_numbered(storage, topic, 0, 10)
    await assert_offsets_match_xinfo(storage, client, topic)
    client.xadd(key, {"value": "native"})  # a native writer: offset 10
    await assert_offsets_match_xinfo(storage, client, topic)
    assert await append(storage, topic, numbered(11, 2)) == 11
    await assert_offsets_match_xinfo(storage, client, topic)
    client.xtrim(key, maxlen=5, approximate=False)  # log start 8
    await assert_offsets_match_xinfo(storage, client, topic)
    assert [r.value for r in (await read(storage, topic, 8, max_records=1)).records] == [b"8"]
    client.xtrim(key, maxlen=0, approximate=False)
    await assert_offsets_match_xinfo(storage, client, topic)
    assert await append(storage, topic, numbered(13, 1)) == 13
    await assert_offsets_match_xinfo(storage, client, topic)
    client.delete(key)  # deleted natively: offsets start again from 0
    await assert_offsets_match_xinfo(storage, client, topic)
    # ... and recreated natively (with a length other than the last one seen:
    # in the same millisecond as the last append, an equal length would go
    # unnoticed, as stream_info.lua says)
    client.xadd(key, {"value": "again"})
    client.xadd(key, {"value": "again"})
    await assert_offsets_match_xinfo(storage, client, topic)
    assert await append(storage, topic, numbered(2, 1)) == 2
    await assert_offsets_match_xinfo(storage, client, topic)
    client.delete(key)
    assert await append(storage, topic, numbered(0, 3)) == 0  # recreated by the gateway
    await assert_offsets_match_xinfo(storage, client, topic)
    client.hdel(key + ":meta", "end_offset", "length", "first_id", "last_id")  # data of older gateways
    await assert_offsets_match_xinfo(storage, client, topic)
    assert [r.value for r in (await read(storage, topic, 0)).records] == [b"0", b"1", b"2"]


async def test_appends_and_reads_do_without_xinfo(storage: RedisStorage, topic_name: str,
                                                  redis_client: redis.Redis) -> None:
    topic = topic_name
    await append_numbered(storage, topic, 0, 10)
    before = xinfo_calls(redis_client)
    for first in range(10, 30, 2):
        assert await append(storage, topic, numbered(first, 2)) == first
        assert len((await read(storage, topic, first, max_records=2)).records) == 2
    offsets = await partition_offsets(storage, topic)
    assert (offsets.log_start_offset, offsets.end_offset) == (0, 30)
    assert xinfo_calls(redis_client) == before
    # A native writer is noticed: XINFO once, then the meta holds again.
    redis_client.xadd(stream_key(topic), {"value": "30"})
    assert await append(storage, topic, numbered(31, 1)) == 31
    assert xinfo_calls(redis_client) == before + 1
    assert (await partition_offsets(storage, topic)).end_offset == 32
    assert xinfo_calls(redis_client) == before + 1


def large(first: int, count: int, size: int) -> list[Record]:
    return [Record(HOUR_AGO + offset, None, str(offset).encode().ljust(size, b"."), ())
            for offset in range(first, first + count)]


async def test_index_points_are_spaced_by_bytes_for_large_records(storage: RedisStorage, topic_name: str,
                                                                  redis_client: redis.Redis) -> None:
    topic = topic_name
    size = 100_000
    assert await append(storage, topic, large(0, 10, size)) == 0
    assert await append(storage, topic, large(10, 10, size)) == 10
    points = [int(score) for _, score in redis_client.zrange(index_key(topic), 0, -1, withscores=True)]
    # A point as soon as the entries since the last one reach INDEX_BYTES.
    every = -(-INDEX_BYTES // size)
    assert points == list(range(0, 20, every))
    assert every < INDEX_INTERVAL
    for offset in (0, 5, 19):
        (record,) = (await read(storage, topic, offset, max_records=1)).records
        assert record.value is not None and record.value.startswith(str(offset).encode() + b".")
