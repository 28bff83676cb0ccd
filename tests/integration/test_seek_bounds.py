"""What a seek (or a trim) copies out of a stream, per script call, on a real Redis.

Redis finds stream entries only by ID, so a script that needs the entry at an
offset walks from the nearest index point and copies every entry it passes
(XRANGE has no IDs-only form). These tests run the storage layer's Lua (the
prelude and one function's body, with EVAL, flagged no-writes as its
function is) with every XRANGE and XREVRANGE reply counted in bytes (entry
IDs, field names and values): a shim put before it shadows ``redis.call``.
Each call must stay within its bound, yield ("call again") when the seek is
longer, and the repeated calls must end with the right answer.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

import pytest
import redis
from kafka_redis_gateway.gateway.storage import RedisStorage, keys
from kafka_redis_gateway.gateway.storage.redis_storage import RETENTION_TRIM_ENTRIES
from kafka_redis_gateway.gateway.storage.scripts import PRELUDE, READ_ONLY

from tests.integration.test_storage import index_key, stream_key

ENTRY = 64 * 1024
COUNT = 300  # about 19 MiB, written natively: no index points
SEEK_BYTES, SEEK_BACK_BYTES = 1 << 20, 1 << 18  # lua/stream_info.lua
# A seek copies at most SEEK_BYTES forward, after SEEK_BACK_BYTES when it
# first tries back from the end; its steps are sized from the biggest entry
# seen (the first takes one entry), so it passes its budget by one entry at
# most, and a read copies one entry beyond max_bytes.
PER_CALL = SEEK_BYTES + SEEK_BACK_BYTES + 2 * ENTRY
BASE_MS = 1_600_000_000_000

COUNTING_SHIM = """
local real_redis = redis
local copied = 0
local function count(reply)
  for _, entry in ipairs(reply) do
    copied = copied + #entry[1]
    for _, part in ipairs(entry[2]) do
      copied = copied + #part
    end
  end
end
local redis = setmetatable({call = function(...)
  local reply = real_redis.call(...)
  local command = string.upper((...))
  if command == 'XRANGE' or command == 'XREVRANGE' then
    count(reply)
  end
  return reply
end}, {__index = real_redis})
"""


def lua(file: str) -> str:
    return resources.files("kafka_redis_gateway.gateway.storage").joinpath("lua", file).read_text()


def counted(client: redis.Redis, file: str, keys: Sequence[str], args: Sequence[Any]) -> tuple[Any, int]:
    """The reply of ``lua/<file>`` and the bytes its XRANGE/XREVRANGE calls copied."""
    flags = "#!lua flags=no-writes\n" if file in READ_ONLY else ""
    source = (f"{flags}{COUNTING_SHIM}\n{lua(PRELUDE)}\nlocal function script()\n{lua(file)}\nend\n"
              "return {script(), copied}")
    reply, copied = client.eval(source, len(keys), *keys, *args)  # type: ignore[misc]
    return reply, int(copied)


def partition(topic: str) -> keys.PartitionKeys:
    return keys.own_partition_keys(topic, 0)


def until_answered(client: redis.Redis, file: str, keys: Sequence[str], args: Sequence[Any],
                   yielded: Any, resume: Any = lambda reply: ()) -> tuple[Any, list[int]]:
    """Call until the reply is not a yield; the answer and each call's copied bytes.

    ``resume``: what a yielded reply adds to the next call's arguments.
    """
    copies = []
    extra: Sequence[Any] = ()
    while True:
        reply, copied = counted(client, file, keys, [*args, *extra])
        copies.append(copied)
        assert len(copies) < 100, "the seek makes no progress"
        if not yielded(reply):
            return reply, copies
        extra = resume(reply)


@pytest.fixture
def topic(redis_client: redis.Redis) -> Iterator[str]:
    """A partition of COUNT native entries of ENTRY bytes, entry i at ID BASE_MS + i."""
    name = f"b-{uuid.uuid4().hex[:12]}"
    pipe = redis_client.pipeline(transaction=False)
    for offset in range(COUNT):
        value = b"%06d" % offset + b"x" * (ENTRY - 6)
        pipe.xadd(stream_key(name), {"value": value}, id=f"{BASE_MS + offset}-0")
    pipe.execute()
    yield name
    redis_client.delete(*partition(name).auxiliary, stream_key(name))


def entry_id(client: redis.Redis, topic: str, offset: int) -> bytes:
    return f"{BASE_MS + offset}-0".encode()


def assert_bounded(copies: list[int], total: int) -> None:
    assert max(copies) <= PER_CALL, f"one call copied {max(copies)} bytes: {copies}"
    assert len(copies) > total // (2 * SEEK_BYTES), "the seek did not yield"


def test_a_read_far_into_a_native_region_copies_a_bounded_amount_per_call(
        redis_client: redis.Redis, topic: str) -> None:
    keys = [stream_key(topic), index_key(topic), partition(topic).meta]
    (status, _, end, _, entries, _, _), copies = until_answered(
        redis_client, "read.lua", keys, [290, 1, ENTRY, 1], lambda reply: reply[0] == 2)
    assert (status, end) == (0, COUNT)
    assert [entry[1][1][:6] for entry in entries] == [b"000290"]
    assert_bounded(copies, 290 * ENTRY)
    # The walk indexed the region by bytes: a point at least every 256 KiB
    # of entries (4 of these), each naming the entry at its offset.
    points = [(int(score), member) for member, score in
              redis_client.zrange(index_key(topic), 0, -1, withscores=True)]
    offsets = [0] + [offset for offset, _ in points]
    assert offsets[-1] >= 286 and max(b - a for a, b in itertools.pairwise(offsets)) <= 4
    assert all(member == entry_id(redis_client, topic, offset) for offset, member in points)
    # A second seek there is one short call.
    (status, *_), copied = counted(redis_client, "read.lua", keys, [289, 1, ENTRY, 1])
    assert status == 0 and copied <= 2 * ENTRY + 256 * 1024 + 4 * ENTRY


def test_a_commit_far_into_a_native_region_copies_a_bounded_amount_per_call(
        redis_client: redis.Redis, topic: str) -> None:
    keys = [stream_key(topic), index_key(topic), partition(topic).commits, partition(topic).meta]
    reply, copies = until_answered(redis_client, "commit_offset.lua", keys, ["g", 151, -1, 0, ""],
                                   lambda reply: isinstance(reply, list))
    assert reply == entry_id(redis_client, topic, 150)
    assert_bounded(copies, 150 * ENTRY)
    (group,) = redis_client.xinfo_groups(stream_key(topic))
    assert (group["last-delivered-id"], group["entries-read"]) == (reply, 151)


def test_a_committed_offset_worked_out_from_a_native_group_copies_a_bounded_amount_per_call(
        redis_client: redis.Redis, topic: str) -> None:
    # A group created natively at an ID has no entries-read: the offset is counted.
    redis_client.xgroup_create(stream_key(topic), "native", id=entry_id(redis_client, topic, 290))
    keys = [stream_key(topic), index_key(topic), partition(topic).commits, partition(topic).meta]
    (offset, _, _), copies = until_answered(redis_client, "committed_offset.lua", keys, ["native"],
                                            lambda reply: reply[0] == -3, lambda reply: reply[1:])
    assert offset == 291
    assert_bounded(copies, 290 * ENTRY)


def test_delete_records_far_into_a_native_region_copies_a_bounded_amount_per_call(
        redis_client: redis.Redis, topic: str) -> None:
    keys = [stream_key(topic), index_key(topic), partition(topic).meta]
    (status, start), copies = until_answered(redis_client, "delete_records.lua", keys, [150],
                                             lambda reply: reply[0] == 2)
    assert (status, start) == (0, 150)
    assert redis_client.xrange(stream_key(topic), count=1)[0][0] == entry_id(redis_client, topic, 150)
    assert_bounded(copies, 150 * ENTRY)


def test_an_offset_for_time_far_into_a_native_region_copies_a_bounded_amount_per_call(
        redis_client: redis.Redis, topic: str) -> None:
    keys = [stream_key(topic), index_key(topic), partition(topic).meta]
    (offset, timestamp), copies = until_answered(
        redis_client, "offset_for_time.lua", keys, [BASE_MS + 290, 1000, 0, ""],
        lambda reply: reply[0] == -3, lambda reply: reply[1:])
    assert (offset, int(timestamp)) == (290, BASE_MS + 290)
    assert_bounded(copies, 290 * ENTRY)


def test_an_offset_for_time_examines_a_bounded_amount_per_call(redis_client: redis.Redis) -> None:
    # A backfill: records stamped long before their append, so every entry
    # appended after the time asked for is examined. Each call examines a
    # bounded amount and says where to go on.
    name = f"b-{uuid.uuid4().hex[:12]}"
    keys = [stream_key(name), index_key(name), partition(name).meta]
    try:
        pipe = redis_client.pipeline(transaction=False)
        for offset in range(COUNT):
            pipe.xadd(keys[0], {"ts": "0", "value": b"x" * ENTRY}, id=f"{BASE_MS + offset}-0")
        pipe.xadd(keys[0], {"ts": str(BASE_MS), "value": "on time"}, id=f"{BASE_MS + COUNT}-0")
        pipe.execute()
        args: list[Any] = [BASE_MS, 1000, 0, ""]
        copies = []
        while True:
            reply, copied = counted(redis_client, "offset_for_time.lua", keys, args)
            copies.append(copied)
            assert len(copies) < 100
            if reply[0] != -2:
                break
            args = [BASE_MS, 1000, 0, reply[1]]
        assert (reply[0], int(reply[1])) == (COUNT, BASE_MS)
        assert_bounded(copies, COUNT * ENTRY)
    finally:
        redis_client.delete(*keys, *partition(name).auxiliary)


async def test_retention_trims_a_bounded_number_of_entries_per_call(
        redis_client: redis.Redis, storage: RedisStorage) -> None:
    name = f"b-{uuid.uuid4().hex[:12]}"
    keys = [stream_key(name), index_key(name), partition(name).meta]
    try:
        pipe = redis_client.pipeline(transaction=False)
        for offset in range(25_000):  # appended long ago (explicit old IDs)
            pipe.xadd(keys[0], {"value": "old"}, id=f"{BASE_MS + offset}-0")
        pipe.execute()
        redis_client.xadd(keys[0], {"value": "new"})
        (start, more), _ = counted(redis_client, "retention.lua", keys, [60_000, -1, RETENTION_TRIM_ENTRIES])
        assert more == 1 and 25_001 - RETENTION_TRIM_ENTRIES <= redis_client.xlen(keys[0]) < 25_001
        assert start == 25_001 - redis_client.xlen(keys[0])
        # The storage layer calls again until nothing is due: exactly the new entry stays.
        assert await storage.apply_retention(name, 0, 60_000, -1) == 25_000
        assert [fields for _, fields in redis_client.xrange(keys[0])] == [{b"value": b"new"}]
    finally:
        redis_client.delete(*keys, *partition(name).auxiliary)
