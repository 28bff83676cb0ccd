"""Appends too large for one bounded Redis call (gateway/storage/steps.py, issue #12).

Each append.lua call is held to STEP_RECORDS records and STEP_BYTES bytes:
the tests read every call's arguments back from SLOWLOG (logging every
command while they run) and check those bounded quantities, never timings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
import redis
from kafka_redis_gateway.gateway.storage import AppendBatch, AppendRequest, AppendResult, RedisStorage, steps
from kafka_redis_gateway.gateway.storage.base import AppendRefused
from kafka_redis_gateway.protocol.records import Record, encode_batch, encode_records

from tests.integration.test_protocol import Wire, create_topic, produce
from tests.servers import GatewayProcess, RedisServer
from tests.unit.test_records import MALFORMED_RECORDS

from .test_append_records import consume_with_confluent, raw_records
from .test_storage import stream_key

NOW = int(time.time() * 1000)
CORRUPT_MESSAGE, RECORD_LIST_TOO_LARGE, OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_RECORD = 2, 18, 45, 87


@pytest.fixture
def every_command_logged(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """SLOWLOG keeps every command (and enough of them) while the test runs."""
    before = redis_client.config_get("slowlog-*")
    redis_client.config_set("slowlog-log-slower-than", 0)
    redis_client.config_set("slowlog-max-len", 100_000)  # commands inside scripts count too
    redis_client.slowlog_reset()
    yield redis_client
    redis_client.config_set("slowlog-log-slower-than", before["slowlog-log-slower-than"])
    redis_client.config_set("slowlog-max-len", before["slowlog-max-len"])


def tiny(count: int, first: int = 0) -> list[Record]:
    return [Record(NOW, None, b"%d" % i, ()) for i in range(first, first + count)]


def argument_bytes(argument: bytes) -> int:
    """An argument's length as SLOWLOG shows it: long ones end in '... (N more bytes)'."""
    if argument.endswith(b" more bytes)"):
        shown, more = argument.rsplit(b"... (", 1)
        return len(shown) + int(more.split()[0])
    return len(argument)


def append_calls(client: redis.Redis, stream: str) -> list[list[bytes]]:
    """The append.lua calls on the stream that SLOWLOG holds, oldest first: their ARGV."""
    raw = redis.Redis(connection_pool=client.connection_pool)
    raw.response_callbacks.pop("SLOWLOG GET", None)  # the command's words, not one joined string
    calls = []
    for entry in reversed(raw.execute_command("SLOWLOG", "GET", 100_000)):
        words = entry[3]
        if words[0].upper() == b"FCALL" and words[1].endswith(b"_append") and words[3] == stream.encode():
            calls.append(words[3 + int(words[2]):])
    return calls


def values(client: redis.Redis, stream: str) -> list[bytes]:
    return [fields[b"value"] for _, fields in client.xrange(stream)]


async def append_one(storage: RedisStorage, request: AppendRequest) -> AppendResult | Exception:
    (result,) = await storage.append([request])
    return result


async def test_a_large_batch_of_tiny_records_is_appended_whole_in_bounded_calls(
        storage: RedisStorage, topic_name: str, every_command_logged: redis.Redis) -> None:
    client, stream = every_command_logged, stream_key(topic_name)
    count = 3 * steps.STEP_RECORDS + 123
    result = await append_one(storage, AppendRequest(topic_name, 0, [AppendBatch.of_records(tiny(count))]))
    assert isinstance(result, AppendResult) and result.base_offset == 0
    assert values(client, stream) == [b"%d" % i for i in range(count)]
    assert client.xinfo_stream(stream)["entries-added"] == count  # dense offsets 0..count-1

    calls = append_calls(client, stream)
    checks = [argv for argv in calls if argv[6] == b"check"]
    pieces = [argv for argv in calls if b"/" in argv[6]]
    assert len(checks) >= 4 and len(pieces) >= 4 and len(calls) == len(checks) + len(pieces)
    for argv in checks:
        assert int(argv[7]) == steps.STEP_RECORDS and argument_bytes(argv[11]) <= steps.STEP_BYTES
    # Pieces in order, each within the bounds, together the whole batch.
    assert [argv[6] for argv in pieces] == [b"%d/%d" % (k, len(pieces)) for k in range(len(pieces))]
    assert all(int(argv[10]) <= steps.STEP_RECORDS for argv in pieces)
    assert all(argument_bytes(argv[14]) <= steps.STEP_BYTES for argv in pieces)
    assert sum(int(argv[10]) for argv in pieces) == count
    # Checks come before any piece: nothing is written before all is parsed.
    assert calls.index(pieces[0]) == len(checks)



@pytest.mark.parametrize("raw", MALFORMED_RECORDS[:3])
async def test_a_malformed_record_in_the_last_piece_writes_nothing(
        storage: RedisStorage, topic_name: str, every_command_logged: redis.Redis, raw: bytes) -> None:
    client, stream = every_command_logged, stream_key(topic_name)
    count = 2 * steps.STEP_RECORDS + 7
    body = encode_records(tiny(count)) + raw_records(raw)
    result = await append_one(storage, AppendRequest(topic_name, 0, [AppendBatch(count + 1, NOW, NOW, body)]))
    assert isinstance(result, AppendRefused) and result.error_code == CORRUPT_MESSAGE
    assert not client.exists(stream)
    checks = [argv for argv in append_calls(client, stream) if argv[6] == b"check"]
    assert len(checks) >= 3  # cut into pieces, every one parsed before any was written


async def test_a_batch_declaring_more_records_than_its_pieces_hold_writes_nothing(
        storage: RedisStorage, topic_name: str, redis_client: redis.Redis) -> None:
    count = 2 * steps.STEP_RECORDS + 7
    batch = AppendBatch(count + 1, NOW, NOW, encode_records(tiny(count)))
    result = await append_one(storage, AppendRequest(topic_name, 0, [batch]))
    assert isinstance(result, AppendRefused) and result.error_code == INVALID_RECORD
    assert not redis_client.exists(stream_key(topic_name))


def idempotent(topic: str, records: Sequence[Record], first_sequence: int) -> AppendRequest:
    return AppendRequest(topic, 0, [AppendBatch.of_records(records)], producer_id=4242, producer_epoch=0,
                         first_sequence=first_sequence, last_sequence=first_sequence + len(records) - 1)


async def test_an_idempotent_retry_after_a_failure_between_pieces_resumes_without_duplicates(
        storage: RedisStorage, topic_name: str, redis_client: redis.Redis) -> None:
    stream, count = stream_key(topic_name), 3 * steps.STEP_RECORDS + 5
    request = idempotent(topic_name, tiny(count), 0)

    # The first attempt stops after two pieces (as if the gateway died there).
    async def check(args: Sequence[Any]) -> Any:
        return await storage._check_records(request, args)

    async def step(args: Sequence[Any]) -> Any:
        return await storage._append_piece(request, args, ())

    pieces = await steps.pieces_of(request.batches, check)
    assert isinstance(pieces, list) and len(pieces) >= 4
    written = 0

    async def failing_step(args: Sequence[Any]) -> Any:
        nonlocal written
        if written == 2:
            return ConnectionError("the gateway died here")
        written += 1
        return await step(args)

    failed = await steps.append_pieces(pieces, failing_step, lambda error: error)
    assert isinstance(failed, ConnectionError)
    assert redis_client.xlen(stream) == pieces[0].count + pieces[1].count

    # The producer's next batch may not land between the pieces: refused, retriably.
    later = idempotent(topic_name, tiny(1, count), count)
    refused = await append_one(storage, later)
    assert isinstance(refused, AppendRefused) and refused.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER

    # The retry resumes after the written pieces: every record once, in order.
    retried = await append_one(storage, request)
    assert isinstance(retried, AppendResult) and (retried.base_offset, retried.duplicate) == (0, False)
    assert values(redis_client, stream) == [b"%d" % i for i in range(count)]
    again = await append_one(storage, request)
    assert isinstance(again, AppendResult) and (again.base_offset, again.duplicate) == (0, True)
    assert redis_client.xlen(stream) == count
    resumed = await append_one(storage, later)
    assert isinstance(resumed, AppendResult) and resumed.base_offset == count


async def test_headers_beyond_one_calls_limit_go_in_pieces(
        storage: RedisStorage, topic_name: str, every_command_logged: redis.Redis) -> None:
    client, stream = every_command_logged, stream_key(topic_name)
    # Few records, many headers: within STEP_RECORDS and STEP_BYTES, beyond STEP_HEADERS.
    headers = tuple((f"h{i}", b"") for i in range(100))
    count = steps.STEP_HEADERS // 100 * 3
    records = [Record(NOW, None, b"%d" % i, headers) for i in range(count)]
    result = await append_one(storage, AppendRequest(topic_name, 0, [AppendBatch.of_records(records)]))
    assert isinstance(result, AppendResult) and result.base_offset == 0
    assert values(client, stream) == [b"%d" % i for i in range(count)]
    calls = append_calls(client, stream)
    assert calls[0][6] == b"+"  # one limited call first, refused without writing ({-4})
    pieces = [argv for argv in calls if b"/" in argv[6]]
    assert len(pieces) >= 3
    assert all(int(argv[10]) * 100 <= steps.STEP_HEADERS + 100 for argv in pieces)


def test_records_beyond_the_per_request_cap_get_record_list_too_large(
        redis_server: RedisServer, tmp_path: Path, topic_name: str) -> None:
    gateway = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--max-records-per-request", "1000"])
    gateway.start()
    try:
        with closing(Wire(gateway.bootstrap)) as wire:
            create_topic(wire, topic_name, partitions=3)
            six_hundred = encode_batch(0, tiny(600))
            response = wire.call(produce(topic_name, {0: six_hundred, 1: six_hundred,
                                                      2: encode_batch(0, tiny(400))}))
    finally:
        gateway.stop()
    codes = {p.index: p.error_code for p in response.responses[0].partition_responses}
    # 600 fit; 600 more would make 1,200; the next 400 make 1,000.
    assert codes == {0: 0, 1: RECORD_LIST_TOO_LARGE, 2: 0}


def test_a_real_idempotent_producer_s_large_batch_goes_in_pieces_and_reads_back_in_order(
        bootstrap: str, every_command_logged: redis.Redis, topic_name: str) -> None:
    redis_client, count = every_command_logged, 4 * steps.STEP_RECORDS
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "compression.type": "zstd",
        "linger.ms": 2000, "batch.num.messages": count, "batch.size": 64 << 20})
    offsets: list[int] = []
    for index in range(count):
        producer.produce(topic_name, value=b"%d" % index,
                         on_delivery=lambda error, message: offsets.append(
                             -1 if error is not None else message.offset()))
    assert producer.flush(60) == 0
    assert sorted(offsets) == list(range(count))
    # Cut into pieces by the gateway, stored whole and in order.
    modes = [argv[6] for argv in append_calls(redis_client, stream_key(topic_name))]
    assert b"check" in modes and any(b"/" in mode for mode in modes)
    assert redis_client.xlen(stream_key(topic_name)) == count
    assert [value for _, value, _ in consume_with_confluent(bootstrap, topic_name, count)] == [
        b"%d" % index for index in range(count)]
