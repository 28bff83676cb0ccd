"""The storage layer on a real Redis: offsets, native entries, the sparse index, trimming, time lookups."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence

import pytest
import redis
from kafka_redis_gateway.gateway.storage import (
    AppendBatch,
    AppendRequest,
    OffsetQuery,
    PartitionOffsets,
    ReadRequest,
    ReadResult,
    RedisStorage,
    TimeOffset,
)
from kafka_redis_gateway.protocol.records import Record

INTERVAL = 1024  # the index interval the append script is given
HOUR_AGO = int(time.time() * 1000) - 3_600_000


@pytest.fixture
def topic() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


def stream_key(topic: str, partition: int = 0) -> str:
    return f"kafka:{{{topic}:{partition}}}"


def index_key(topic: str, partition: int = 0) -> str:
    return f"kafka:{{{topic}:{partition}}}:idx"


def numbered(first: int, count: int, timestamp: int = HOUR_AGO, size: int = 0) -> list[Record]:
    """Records whose value is their intended offset (zero-padded to ``size``), timestamp + offset."""
    return [Record(timestamp + offset, None, str(offset).zfill(size).encode(), ())
            for offset in range(first, first + count)]


async def append(storage: RedisStorage, topic: str, records: Sequence[Record], partition: int = 0) -> int:
    """Append one batch; its base offset."""
    (result,) = await storage.append([AppendRequest(topic, partition, [AppendBatch.of_records(records)])])
    assert not isinstance(result, Exception), result
    return result.base_offset


async def append_numbered(storage: RedisStorage, topic: str, first: int, count: int,
                          batch: int = 500) -> None:
    for start in range(first, first + count, batch):
        base = await append(storage, topic, numbered(start, min(batch, first + count - start)))
        assert base == start


def add_native(client: redis.Redis, topic: str, first: int, count: int) -> None:
    """XADD entries with value = their offset, as a non-Kafka producer would."""
    pipe = client.pipeline(transaction=False)
    for offset in range(first, first + count):
        pipe.xadd(stream_key(topic), {"value": str(offset)})
    pipe.execute()


async def read(storage: RedisStorage, topic: str, offset: int, max_bytes: int = 1 << 20,
               max_records: int = 10_000, partition: int = 0) -> ReadResult:
    (result,) = await storage.read([ReadRequest(topic, partition, offset, max_bytes, max_records)])
    assert isinstance(result, ReadResult), result
    return result


async def partition_offsets(storage: RedisStorage, topic: str) -> PartitionOffsets:
    (found,) = await storage.list_offsets([OffsetQuery(topic, 0)])
    assert isinstance(found, PartitionOffsets), found
    return found


async def offset_for_time(storage: RedisStorage, topic: str, timestamp: int) -> tuple[int, int]:
    """(offset, timestamp) of the first record at or after ``timestamp``; (-1, -1) for none."""
    (found,) = await storage.list_offsets([OffsetQuery(topic, 0, timestamp)])
    assert isinstance(found, TimeOffset), found
    return found.offset, found.timestamp


def assert_index_consistent(client: redis.Redis, topic: str) -> None:
    """Every index point names the entry at its offset (or one trimmed away)."""
    ids = [entry_id for entry_id, _ in client.xrange(stream_key(topic))]
    info = client.xinfo_stream(stream_key(topic))
    start = info["entries-added"] - info["length"]
    for member, score in client.zrange(index_key(topic), 0, -1, withscores=True):
        offset = int(score)
        if offset >= start:
            assert ids[offset - start] == member, f"index point {offset} names {member!r}"


async def test_append_and_read_round_trip(storage: RedisStorage, topic: str) -> None:
    records = [
        Record(HOUR_AGO, b"key", b"value", ()),
        Record(HOUR_AGO + 1, None, b"no key", (("h", b"1"),)),
        Record(HOUR_AGO + 2, b"no value", None, ()),
        Record(HOUR_AGO + 3, b"", b"", (("dup", b"a"), ("dup", b""), ("nil", None), ("ünï", b"\x00\xff"))),
        Record(HOUR_AGO + 4, None, None, ()),
    ]
    assert await append(storage, topic, records[:2]) == 0
    assert await append(storage, topic, records[2:]) == 2

    result = await read(storage, topic, 0)
    assert list(result.records) == records
    assert (result.offset, result.log_start_offset, result.high_watermark) == (0, 0, 5)
    assert not result.out_of_range
    assert len(result.append_times) == 5
    assert all(abs(t - time.time() * 1000) < 600_000 for t in result.append_times)  # now, not CreateTime

    assert list((await read(storage, topic, 3)).records) == records[3:]
    at_end = await read(storage, topic, 5)
    assert (list(at_end.records), at_end.out_of_range) == ([], False)


async def test_append_writes_the_documented_entry_fields(storage: RedisStorage, topic: str,
                                                         redis_client: redis.Redis) -> None:
    await append(storage, topic, [Record(123, b"k", b"v", (("a", b"1"), ("n", None)))])
    await append(storage, topic, [Record(124, None, None, ())])
    (_, first), (_, second) = redis_client.xrange(stream_key(topic))
    assert list(first.items()) == [(b"ts", b"123"), (b"key", b"k"), (b"value", b"v"), (b"h:a", b"1"),
                                   (b"h0:n", b"")]
    assert list(second.items()) == [(b"ts", b"124")]


async def test_reads_several_partitions_in_one_call(storage: RedisStorage, topic: str) -> None:
    await append(storage, topic, numbered(0, 3), partition=0)
    await append(storage, topic, numbered(0, 5), partition=1)
    results = await storage.read([ReadRequest(topic, 1, 2, 1 << 20), ReadRequest(topic, 0, 9, 1 << 20),
                                  ReadRequest(topic, 2, 0, 1 << 20)])
    assert [type(r) for r in results] == [ReadResult] * 3
    one, zero, two = results
    assert [r.value for r in one.records] == [b"2", b"3", b"4"]
    assert zero.out_of_range and zero.high_watermark == 3
    assert (list(two.records), two.out_of_range, two.high_watermark) == ([], False, 0)


async def test_native_entries_take_offsets_between_appends(storage: RedisStorage, topic: str,
                                                           redis_client: redis.Redis) -> None:
    await append_numbered(storage, topic, 0, 3)
    native_id = redis_client.xadd(stream_key(topic), {"value": "hello"})
    add_native(redis_client, topic, 4, 1)
    assert await append(storage, topic, numbered(5, 3)) == 5

    result = await read(storage, topic, 0)
    assert [r.value for r in result.records] == [b"0", b"1", b"2", b"hello", b"4", b"5", b"6", b"7"]
    assert result.records[3] == Record(int(native_id.split(b"-")[0]), None, b"hello", ())
    assert result.high_watermark == 8
    assert [r.value for r in (await read(storage, topic, 4)).records] == [b"4", b"5", b"6", b"7"]


async def test_native_entries_with_unknown_fields_read_as_json_records(
        storage: RedisStorage, topic: str, redis_client: redis.Redis) -> None:
    entry_id = redis_client.xadd(stream_key(topic), {"temperature": "21.5", "ts": "not a number"})
    (record,) = (await read(storage, topic, 0)).records
    assert record == Record(int(entry_id.split(b"-")[0]), None,
                            b'{"temperature":"21.5","ts":"not a number"}', ())


async def test_seeks_through_a_region_added_natively(storage: RedisStorage, topic: str,
                                                     redis_client: redis.Redis) -> None:
    await append_numbered(storage, topic, 0, 5_000)
    add_native(redis_client, topic, 5_000, 10_000)
    await append_numbered(storage, topic, 15_000, 5_000)
    # The appends indexed their own records; the native region has no points.
    points = redis_client.zcard(index_key(topic))
    assert points == len(redis_client.zrangebyscore(index_key(topic), "-inf", 4_999)) + len(
        redis_client.zrangebyscore(index_key(topic), 15_000, "+inf"))

    # Far into the native region first, then back and around it, then anywhere.
    boundaries = [14_321, 6_000, 5_000, 4_999, 5_001, 9_999, 10_000, 12_345, 14_999, 15_000,
                  15_001, 19_999, 0, 1_023, 1_024, 2_047]
    for offset in boundaries + random.Random(20_000).sample(range(20_000), 100):
        result = await read(storage, topic, offset, max_records=3)
        expected = [str(o).encode() for o in range(offset, min(offset + 3, 20_000))]
        assert [r.value for r in result.records] == expected, f"read at offset {offset}"
        assert result.high_watermark == 20_000

    grown = redis_client.zcard(index_key(topic))
    assert grown > points, "seeking through the native region added no index points"
    assert_index_consistent(redis_client, topic)
    # Once indexed, the region reads the same.
    for offset in (5_500, 13_000, 14_999):
        assert [r.value for r in (await read(storage, topic, offset, max_records=1)).records] == [
            str(offset).encode()]


async def test_a_seek_longer_than_one_call_allows_continues(storage: RedisStorage, topic: str,
                                                             redis_client: redis.Redis) -> None:
    # A script call copies at most 1 MiB while seeking (stream_info.lua); this
    # seek walks about 1.7 MB of small entries.
    count = 70 * INTERVAL
    for first in range(0, count, 10_000):
        add_native(redis_client, topic, first, min(10_000, count - first))
    offset = count - 2 * INTERVAL
    assert [r.value for r in (await read(storage, topic, offset, max_records=2)).records] == [
        str(offset).encode(), str(offset + 1).encode()]
    assert redis_client.zcard(index_key(topic)) >= 64
    assert_index_consistent(redis_client, topic)


async def test_appends_after_a_native_region_index_themselves(storage: RedisStorage, topic: str,
                                                              redis_client: redis.Redis) -> None:
    add_native(redis_client, topic, 0, 3_000)
    await append_numbered(storage, topic, 3_000, 3_000)
    assert redis_client.zrangebyscore(index_key(topic), "-inf", "+inf", withscores=True)[0][1] == 3_000
    assert_index_consistent(redis_client, topic)
    for offset in (0, 2_999, 3_000, 4_500, 5_999):
        assert [r.value for r in (await read(storage, topic, offset, max_records=1)).records] == [
            str(offset).encode()]


async def test_trimming_advances_the_log_start(storage: RedisStorage, topic: str,
                                               redis_client: redis.Redis) -> None:
    await append_numbered(storage, topic, 0, 3_000)
    redis_client.xtrim(stream_key(topic), maxlen=1_500, approximate=False)
    # Index points at 0 and 1024 now lie below the start and must be ignored.
    assert redis_client.zrangebyscore(index_key(topic), "-inf", 1_499)

    offsets = await partition_offsets(storage, topic)
    assert (offsets.log_start_offset, offsets.end_offset) == (1_500, 3_000)
    below = await read(storage, topic, 1_499)
    assert below.out_of_range
    assert (below.log_start_offset, below.high_watermark, list(below.records)) == (1_500, 3_000, [])
    for offset in (1_500, 1_501, 2_047, 2_048, 2_999):
        result = await read(storage, topic, offset, max_records=2)
        assert not result.out_of_range
        assert result.records[0].value == str(offset).encode(), f"read at offset {offset}"
    assert (await read(storage, topic, 3_001)).out_of_range


async def test_trimming_everything_leaves_an_empty_log_at_the_end(storage: RedisStorage, topic: str,
                                                                  redis_client: redis.Redis) -> None:
    await append_numbered(storage, topic, 0, 10)
    redis_client.xtrim(stream_key(topic), maxlen=0, approximate=False)
    offsets = await partition_offsets(storage, topic)
    assert (offsets.log_start_offset, offsets.end_offset) == (10, 10)
    assert (await read(storage, topic, 9)).out_of_range
    assert list((await read(storage, topic, 10)).records) == []
    assert await append(storage, topic, numbered(10, 2)) == 10
    assert [r.value for r in (await read(storage, topic, 10)).records] == [b"10", b"11"]


async def test_offset_for_time(storage: RedisStorage, topic: str) -> None:
    assert await offset_for_time(storage, topic, 0) == (-1, -1)  # empty partition
    records = [Record(HOUR_AGO + 1000 * i, None, str(i).encode(), ()) for i in range(10)]
    await append(storage, topic, records)
    assert await offset_for_time(storage, topic, 0) == (0, HOUR_AGO)
    assert await offset_for_time(storage, topic, HOUR_AGO + 1000) == (1, HOUR_AGO + 1000)
    assert await offset_for_time(storage, topic, HOUR_AGO + 1001) == (2, HOUR_AGO + 2000)
    assert await offset_for_time(storage, topic, HOUR_AGO + 9000) == (9, HOUR_AGO + 9000)
    assert await offset_for_time(storage, topic, HOUR_AGO + 9001) == (-1, -1)


async def test_offset_for_time_of_native_entries(storage: RedisStorage, topic: str,
                                                 redis_client: redis.Redis) -> None:
    await append(storage, topic, numbered(0, 2))  # an hour ago
    entry_id = redis_client.xadd(stream_key(topic), {"value": "native"})
    millis = int(entry_id.split(b"-")[0])
    assert await offset_for_time(storage, topic, HOUR_AGO + 1) == (1, HOUR_AGO + 1)
    assert await offset_for_time(storage, topic, HOUR_AGO + 2) == (2, millis)
    assert await offset_for_time(storage, topic, millis) == (2, millis)


async def test_offset_for_time_after_trimming(storage: RedisStorage, topic: str,
                                              redis_client: redis.Redis) -> None:
    records = [Record(HOUR_AGO + i, None, str(i).encode(), ()) for i in range(2_500)]
    for start in range(0, 2_500, 500):
        await append(storage, topic, records[start:start + 500])
    redis_client.xtrim(stream_key(topic), maxlen=1_000, approximate=False)
    assert await offset_for_time(storage, topic, 0) == (1_500, HOUR_AGO + 1_500)
    assert await offset_for_time(storage, topic, HOUR_AGO + 2_100) == (2_100, HOUR_AGO + 2_100)


async def test_offset_for_time_in_a_long_backfill(storage: RedisStorage, topic: str) -> None:
    # Records carrying old CreateTimes (a backfill, a mirror) all appended now:
    # the answer lies far from the first entry appended after the time asked for.
    await append_numbered(storage, topic, 0, 5_000)  # timestamps HOUR_AGO + offset
    for offset in (0, 999, 1_000, 2_500, 4_999):
        found = await offset_for_time(storage, topic, HOUR_AGO + offset)
        assert found == (offset, HOUR_AGO + offset), f"lookup of the time of offset {offset}"


async def test_offset_for_time_compares_timestamps_beyond_doubles_exactly(
        storage: RedisStorage, topic: str, redis_client: redis.Redis) -> None:
    # Lua numbers are doubles: 2^53 + 1 reads as 2^53, and tostring() of a
    # time of 10^14 or more is "1e+14", which XRANGE refuses.
    beyond = 2**53 + 1
    redis_client.xadd(stream_key(topic), {"ts": str(beyond), "value": "far"}, id=f"{beyond}-0")
    assert await offset_for_time(storage, topic, 10**14) == (0, beyond)
    assert await offset_for_time(storage, topic, beyond) == (0, beyond)
    assert await offset_for_time(storage, topic, beyond + 1) == (-1, -1)
    assert await offset_for_time(storage, topic, 2**63 - 1) == (-1, -1)


async def test_offset_for_time_beyond_every_record(storage: RedisStorage, topic: str) -> None:
    await append_numbered(storage, topic, 0, 3)
    for timestamp in (10**14, 10**15 + 7, 2**53, 2**63 - 1):
        assert await offset_for_time(storage, topic, timestamp) == (-1, -1), timestamp


async def test_offsets_report_the_max_timestamp(storage: RedisStorage, topic: str,
                                                redis_client: redis.Redis) -> None:
    empty = await partition_offsets(storage, topic)
    assert (empty.log_start_offset, empty.end_offset, empty.max_timestamp_offset,
            empty.max_timestamp) == (0, 0, -1, -1)

    await append(storage, topic, [Record(HOUR_AGO + 5, None, b"a", ()), Record(HOUR_AGO + 9, None, b"b", ()),
                                  Record(HOUR_AGO + 2, None, b"c", ())])
    await append(storage, topic, [Record(HOUR_AGO + 7, None, b"d", ())])
    offsets = await partition_offsets(storage, topic)
    assert (offsets.end_offset, offsets.max_timestamp_offset, offsets.max_timestamp) == (4, 1, HOUR_AGO + 9)

    # A native entry's time is its ID, newer than every CreateTime above.
    entry_id = redis_client.xadd(stream_key(topic), {"value": "native"})
    offsets = await partition_offsets(storage, topic)
    assert (offsets.max_timestamp_offset, offsets.max_timestamp) == (4, int(entry_id.split(b"-")[0]))


async def test_max_timestamp_of_a_native_entry_followed_by_older_records(
        storage: RedisStorage, topic: str, redis_client: redis.Redis) -> None:
    await append(storage, topic, [Record(HOUR_AGO, None, b"a", ())])
    entry_id = redis_client.xadd(stream_key(topic), {"value": "native"})
    await append(storage, topic, [Record(HOUR_AGO + 1, None, b"b", ())])
    offsets = await partition_offsets(storage, topic)
    assert (offsets.max_timestamp_offset, offsets.max_timestamp) == (1, int(entry_id.split(b"-")[0]))


async def test_max_timestamp_trimmed_away_falls_back_to_the_newest_entry(
        storage: RedisStorage, topic: str, redis_client: redis.Redis) -> None:
    await append(storage, topic, [Record(HOUR_AGO + 9, None, b"a", ())])
    await append(storage, topic, [Record(HOUR_AGO + 1, None, b"b", ()), Record(HOUR_AGO + 2, None, b"c", ())])
    redis_client.xtrim(stream_key(topic), maxlen=2, approximate=False)
    offsets = await partition_offsets(storage, topic)
    assert offsets.log_start_offset == 1
    assert offsets.max_timestamp_offset == 2


@pytest.mark.parametrize("max_bytes", [0, 10, 1_000, 2_100, 5_000, 1 << 20])
async def test_read_respects_max_bytes_but_returns_at_least_one_entry(storage: RedisStorage, topic: str,
                                                                      max_bytes: int) -> None:
    await append(storage, topic, numbered(0, 5, size=1_000))
    # Each entry: "ts" + 13 digits + "value" + 1,000 bytes.
    entry_size = 2 + 13 + 5 + 1_000
    expected = min(5, max(1, max_bytes // entry_size))
    result = await read(storage, topic, 0, max_bytes=max_bytes)
    assert [int(r.value) for r in result.records] == list(range(expected))


async def test_read_respects_max_records(storage: RedisStorage, topic: str) -> None:
    await append_numbered(storage, topic, 0, 50)
    assert [r.value for r in (await read(storage, topic, 10, max_records=4)).records] == [
        b"10", b"11", b"12", b"13"]


@pytest.mark.parametrize("existing", [0, 3], ids=["new-stream", "existing-stream"])
async def test_wait_for_entries_wakes_on_a_native_xadd(storage: RedisStorage, topic: str,
                                                       redis_client: redis.Redis, existing: int) -> None:
    if existing:
        await append_numbered(storage, topic, 0, existing)
    last_id = (await read(storage, topic, existing)).last_id
    waiter = asyncio.create_task(storage.wait_for_entries([(topic, 0, last_id)], 60_000))
    await asyncio.sleep(0.3)
    assert not waiter.done(), "wait_for_entries returned before anything was added"
    await asyncio.to_thread(add_native, redis_client, topic, existing, 1)
    await asyncio.wait_for(waiter, 30)
    assert [r.value for r in (await read(storage, topic, existing)).records] == [str(existing).encode()]


async def test_wait_for_entries_times_out_quietly(storage: RedisStorage, topic: str) -> None:
    await append_numbered(storage, topic, 0, 1)
    last_id = (await read(storage, topic, 1)).last_id
    await storage.wait_for_entries([(topic, 0, last_id)], 100)
