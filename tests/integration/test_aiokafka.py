"""aiokafka against the gateway: topic admin, every codec, record fields, offset lookups."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration import bulk

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


class Sent(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    async with admin_client(bootstrap) as admin:
        response = await admin.create_topics([NewTopic(topic, partitions, 1)])
    assert [error for _, error, *_ in response.topic_errors] == [0]


@asynccontextmanager
async def producer(bootstrap: str, **config: Any) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, **config)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def consumer(bootstrap: str, topic: str, partitions: int = 1,
                   **config: Any) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer assigned every partition of the topic."""
    client = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **config)
    await client.start()
    client.assign([TopicPartition(topic, partition) for partition in range(partitions)])
    try:
        yield client
    finally:
        await client.stop()


async def read_all(bootstrap: str, topic: str, partitions: int = 1, timeout: float = 120,
                   **config: Any) -> dict[int, list[Any]]:
    """Every record of each partition, from its start to its end offset when called."""
    async with consumer(bootstrap, topic, partitions, **config) as client:
        assigned = sorted(client.assignment())
        await client.seek_to_beginning(*assigned)
        ends = await client.end_offsets(assigned)
        records: dict[int, list[Any]] = {tp.partition: [] for tp in assigned}
        deadline = time.monotonic() + timeout
        while any([await client.position(tp) < ends[tp] for tp in assigned]):
            assert time.monotonic() < deadline, (
                f"consumer stuck: read {[len(r) for r in records.values()]} records, ends are {ends}")
            for tp, batch in (await client.getmany(timeout_ms=500)).items():
                records[tp.partition].extend(batch)
        return records


async def send_all(bootstrap: str, topic: str, records: Sequence[Sent], partition: int | None = 0,
                   **config: Any) -> list[Any]:
    """Produce records in order; their RecordMetadata."""
    async with producer(bootstrap, **config) as client:
        futures = [
            await client.send(topic, key=sent.key, value=sent.value, headers=list(sent.headers),
                              timestamp_ms=sent.timestamp, partition=partition)
            for sent in records
        ]
        return list(await asyncio.gather(*futures))


def varied_records(count: int) -> list[Sent]:
    """Null and empty keys and values, repeated and null headers, distinct timestamps.

    aiokafka refuses a record whose key and value are both null.
    """
    base = int(time.time() * 1000) - 3_600_000
    records = []
    for i in range(count):
        key = None if i % 5 == 0 else b"" if i % 5 == 1 else f"key-{i}".encode()
        value = b"" if i % 7 == 4 else f"value-{i}-".encode() * (1 + i % 9)
        if i % 7 == 3 and key is not None:
            value = None
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if i % 2:
            headers = (("trace", str(i).encode()), ("dup", b"first"), ("dup", b""), ("nil", None))
        records.append(Sent(key, value, headers, base + 1000 * i))
    return records


async def test_create_describe_and_delete_topics(bootstrap: str, topic_name: str) -> None:
    async with admin_client(bootstrap) as admin:
        created = await admin.create_topics([NewTopic(topic_name, 3, 1)])
        assert [(name, error) for name, error, *_ in created.topic_errors] == [(topic_name, 0)]
        assert topic_name in await admin.list_topics()
        (described,) = await admin.describe_topics([topic_name])
        assert described["error_code"] == 0
        assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2]

        again = await admin.create_topics([NewTopic(topic_name, 1, 1)])
        assert [error for _, error, *_ in again.topic_errors] == [36]  # TOPIC_ALREADY_EXISTS

        deleted = await admin.delete_topics([topic_name])
        assert [(name, error) for name, error, *_ in deleted.topic_error_codes] == [(topic_name, 0)]
        assert topic_name not in await admin.list_topics()


@pytest.mark.parametrize("codec", CODECS)
async def test_records_round_trip(bootstrap: str, topic_name: str, codec: str | None) -> None:
    await create_topic(bootstrap, topic_name)
    sent = varied_records(60)
    metadata = await send_all(bootstrap, topic_name, sent, compression_type=codec)
    assert [m.offset for m in metadata] == list(range(len(sent)))
    # The broker answered "no LogAppendTime" (-1). aiokafka 0.14 then gives
    # every record of a batch the first record's timestamp (it overwrites the
    # -1 in its loop), so only the first one is comparable.
    assert {m.timestamp_type for m in metadata} == {0}
    assert metadata[0].timestamp == sent[0].timestamp

    (received,) = (await read_all(bootstrap, topic_name)).values()
    assert [r.offset for r in received] == list(range(len(sent)))
    assert [Sent(r.key, r.value, tuple(r.headers), r.timestamp) for r in received] == sent
    assert {r.timestamp_type for r in received} == {0}  # CreateTime


async def test_keyed_records_stay_in_their_partition(bootstrap: str, topic_name: str) -> None:
    await create_topic(bootstrap, topic_name, 3)
    now = int(time.time() * 1000)
    sent = [Sent(f"user-{i % 10}".encode(), str(i).encode(), (), now) for i in range(200)]
    metadata = await send_all(bootstrap, topic_name, sent, partition=None)
    partition_of = {s.key: m.partition for s, m in zip(sent, metadata, strict=True)}
    assert len(set(partition_of.values())) > 1, "murmur2 put ten keys in one partition"

    received = await read_all(bootstrap, topic_name, partitions=3)
    assert sum(len(records) for records in received.values()) == len(sent)
    for partition, records in received.items():
        assert all(partition_of[r.key] == partition for r in records)
        values = [int(r.value) for r in records]
        assert values == sorted(values), f"partition {partition} out of produce order"


async def test_batches_from_many_concurrent_sends(bootstrap: str, topic_name: str) -> None:
    # aiokafka batches concurrent sends; the offsets must still be dense and
    # in the order each send was issued.
    await create_topic(bootstrap, topic_name)
    now = int(time.time() * 1000)
    sent = [Sent(None, b"%05d" % i, (), now) for i in range(5_000)]
    metadata = await send_all(bootstrap, topic_name, sent, linger_ms=20, compression_type="lz4")
    assert [m.offset for m in metadata] == list(range(len(sent)))
    (received,) = (await read_all(bootstrap, topic_name)).values()
    assert [r.value for r in received] == [s.value for s in sent]


async def test_offsets_for_times(bootstrap: str, topic_name: str) -> None:
    await create_topic(bootstrap, topic_name)
    sent = varied_records(20)  # timestamps one second apart, an hour ago
    await send_all(bootstrap, topic_name, sent)
    tp = TopicPartition(topic_name, 0)
    async with consumer(bootstrap, topic_name) as client:
        for wanted, offset in [(sent[0].timestamp - 10_000, 0), (sent[0].timestamp, 0),
                               (sent[5].timestamp - 500, 5), (sent[5].timestamp, 5),
                               (sent[19].timestamp, 19)]:
            found = (await client.offsets_for_times({tp: wanted}))[tp]
            assert found is not None, f"no offset for {wanted}"
            assert (found.offset, found.timestamp) == (offset, sent[offset].timestamp)
        future = int(time.time() * 1000) + 3_600_000
        assert (await client.offsets_for_times({tp: future}))[tp] is None


async def test_beginning_and_end_offsets(bootstrap: str, topic_name: str, redis_client: redis.Redis) -> None:
    await create_topic(bootstrap, topic_name, 2)
    await send_all(bootstrap, topic_name, varied_records(7), partition=0)
    await send_all(bootstrap, topic_name, varied_records(3), partition=1)
    tps = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)]
    async with consumer(bootstrap, topic_name, 2) as client:
        assert await client.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        assert await client.end_offsets(tps) == {tps[0]: 7, tps[1]: 3}

    redis_client.xtrim(f"kafka:{{{topic_name}:0}}", maxlen=2, approximate=False)
    async with consumer(bootstrap, topic_name, 2) as client:
        assert await client.beginning_offsets(tps) == {tps[0]: 5, tps[1]: 0}
        assert await client.end_offsets(tps) == {tps[0]: 7, tps[1]: 3}
    assert [r.offset for r in (await read_all(bootstrap, topic_name, 2))[0]] == [5, 6]


async def test_consumer_wakes_for_records_produced_while_it_waits(bootstrap: str, topic_name: str) -> None:
    await create_topic(bootstrap, topic_name)
    async with consumer(bootstrap, topic_name, fetch_max_wait_ms=5000) as client:
        await client.seek_to_end()
        assert await client.getmany(timeout_ms=200) == {}
        waiting = asyncio.create_task(client.getone())
        await asyncio.sleep(0.3)
        await send_all(bootstrap, topic_name, [Sent(b"k", b"late", (), int(time.time() * 1000))])
        record = await asyncio.wait_for(waiting, 30)
    assert (record.offset, record.value) == (0, b"late")


async def test_consumer_reads_records_added_natively(bootstrap: str, topic_name: str,
                                                     redis_client: redis.Redis) -> None:
    await create_topic(bootstrap, topic_name)
    await send_all(bootstrap, topic_name, [Sent(b"k", b"kafka", (), int(time.time() * 1000))])
    entry_id = redis_client.xadd(f"kafka:{{{topic_name}:0}}", {"value": b"native"})
    (received,) = (await read_all(bootstrap, topic_name)).values()
    assert [(r.offset, r.key, r.value) for r in received] == [(0, b"k", b"kafka"), (1, None, b"native")]
    assert received[1].timestamp == int(entry_id.split(b"-")[0])


@pytest.mark.slow
async def test_reads_100k_lz4_records_produced_by_confluent_kafka(bootstrap: str, topic_name: str) -> None:
    await asyncio.to_thread(bulk.create_topic, bootstrap, topic_name, bulk.PARTITIONS)
    delivered = await asyncio.to_thread(bulk.produce_keyed, bootstrap, topic_name, bulk.RECORDS, "lz4")
    received = await read_all(bootstrap, topic_name, bulk.PARTITIONS, timeout=300)
    consumed = {partition: [(r.offset, r.key, r.value) for r in records]
                for partition, records in received.items()}
    bulk.assert_matches_delivered(delivered, consumed)
