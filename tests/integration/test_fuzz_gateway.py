"""Fuzzing a running gateway over real sockets, every advertised API and version.

For each (API key, version) that ApiVersions advertises, the gateway gets
random valid requests (hypothesis builds them from kio's types: negative
partition indexes, huge partition counts, empty names, absurd timeouts and
unknown topic IDs come up on their own), the same requests mutated, every
kind of single mutation of one valid request, and random bytes, each framed
with a correct size prefix on a connection of its own. Each gets an answer
carrying its correlation ID, or the connection closed, or (a Fetch or
JoinGroup that legitimately waits) nothing within the wait, after which the
client simply goes away. After each API key a fresh client must still get
ApiVersions and Metadata answered; at the end a confluent-kafka producer and
consumer do a round trip, the gateway is still running, and its log holds no
traceback: a request that decodes but makes no sense must get a Kafka error
code, never an internal error.

Then requests that decode but make no sense, one by one, with the error
code Kafka answers them with; and one Produce full of small decompression
bombs, against the gateway's memory.

The gateway and its Redis are this module's own: the requests create,
delete and alter topics and groups at random.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import random
import struct
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_redis_gateway.protocol.framing import frame
from kafka_redis_gateway.protocol.records import Compression, Record, encode_batch
from kio.schema.errors import ErrorCode

from tests.fuzzing import (
    ADVERTISED,
    DECODABLE,
    Mutation,
    apply_edits,
    edits,
    encoded,
    mutations,
    sample_request,
    schema_of,
)
from tests.integration.test_protocol import (
    Wire,
    api_versions,
    batch,
    build,
    create_topic,
    create_topics,
    fetch,
    fetched,
    fetched_values,
    metadata,
    partition_errors,
    produce,
    request_types,
)
from tests.servers import GatewayProcess, RedisServer

# How long to wait for an answer before counting the request as parked (a
# Fetch with a long max wait, a JoinGroup waiting for its rebalance).
ANSWER_WAIT = 3.0
CONCURRENCY = 24
SINGLE_MUTATIONS_PER_VERSION = 25
RANDOM_REQUESTS_PER_VERSION = 8
# Log lines that mean a request reached an internal error.
INTERNAL_ERROR_MARKS = ("Traceback", "failed", "unexpected error", "internal error")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    base = tmp_path_factory.mktemp("fuzz")
    redis_server = RedisServer(base / "redis").start()
    gateway = GatewayProcess(redis_server.url, log_path=base / "gateway.log").start()
    yield gateway
    gateway.stop()
    redis_server.stop()


def internal_errors(log_path: Path, start: int = 0) -> list[str]:
    """Internal errors logged after byte ``start`` of the log, each with the
    traceback that follows it."""
    with log_path.open("rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    found = []
    for index, line in enumerate(lines):
        if any(mark in line for mark in INTERNAL_ERROR_MARKS) and not line.startswith("Traceback"):
            found.append("\n".join(lines[index:index + 40]))
    return found


def random_requests(schema: type[Any], count: int, seed: int) -> list[bytes]:
    """Valid random requests and the same requests mutated."""
    found: list[bytes] = []

    @settings(max_examples=count, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(entity=st.from_type(schema), changes=edits)
    def collect(entity: Any, changes: list[tuple[Mutation, int, bytes]]) -> None:
        request = encoded(entity)
        found.extend((request, apply_edits(request, changes)))

    collect()
    return found


def corpus(api_key: int, version: int) -> list[bytes]:
    rng = random.Random(api_key * 100 + version)
    prefix = struct.pack(">hhi", api_key, version, 7)
    garbage = [prefix + rng.randbytes(rng.randrange(0, 64)) for _ in range(4)]
    if (api_key, version) not in DECODABLE:
        return [*garbage, prefix + b"\xff\xff"]  # refused versions: nothing else to build
    schema = schema_of(api_key, version)
    singles = [mutated for _, mutated in mutations(sample_request(schema))]
    return [*garbage, *rng.sample(singles, min(SINGLE_MUTATIONS_PER_VERSION, len(singles))),
            *random_requests(schema, RANDOM_REQUESTS_PER_VERSION, rng.randrange(2**32))]


async def exchange(port: int, request: bytes) -> str:
    """Send one framed request on a new connection: answered, closed or parked."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame(request))
        await writer.drain()
        try:
            (size,) = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), ANSWER_WAIT))
            answer = await asyncio.wait_for(reader.readexactly(size), ANSWER_WAIT)
        except (asyncio.IncompleteReadError, ConnectionError):
            return "closed"
        except TimeoutError:
            return "parked"
        assert answer[:4] == request[4:8], "an answer with another request's correlation ID"
        return "answered"
    finally:
        writer.close()


async def send_all(port: int, requests: list[bytes]) -> Counter[str]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(request: bytes) -> str:
        async with limit:
            return await exchange(port, request)

    return Counter(await asyncio.gather(*(one(request) for request in requests)))


def assert_healthy(gateway: GatewayProcess) -> None:
    assert gateway.process is not None and gateway.process.poll() is None, "the gateway exited"
    wire = Wire(gateway.bootstrap)
    try:
        assert wire.call(api_versions(3)).error_code == 0
        assert wire.call(metadata([], version=12)).brokers
    finally:
        wire.close()


API_KEYS = sorted({key for key, _ in ADVERTISED})


@pytest.mark.parametrize("api_key", API_KEYS)
def test_fuzzed_requests_get_answers_or_closed_connections(fuzzed: GatewayProcess, api_key: int) -> None:
    assert fuzzed.log_path is not None
    requests = [request for key, version in ADVERTISED if key == api_key
                for request in corpus(key, version)]
    log_start = fuzzed.log_path.stat().st_size
    outcomes = asyncio.run(send_all(fuzzed.port, requests))
    print(f"API {api_key}: {len(requests)} requests, {dict(outcomes)}")  # shown with pytest -s
    assert_healthy(fuzzed)
    assert sum(outcomes.values()) == len(requests)
    assert outcomes["answered"] + outcomes["closed"] > 0, outcomes
    errors = internal_errors(fuzzed.log_path, log_start)
    assert not errors, f"API {api_key}: {len(errors)} internal errors; the first:\n{errors[0]}"


# -- requests that decode but make no sense: Kafka's error codes ------------------


@pytest.fixture
def wire(fuzzed: GatewayProcess) -> Iterator[Wire]:
    connection = Wire(fuzzed.bootstrap)
    yield connection
    connection.close()


def create_result(wire: Wire, name: str, partitions: int) -> tuple[ErrorCode, str | None]:
    (result,) = wire.call(create_topics(name, partitions)).topics
    return result.error_code, result.error_message


def test_absurd_partition_counts(wire: Wire, topic_name: str) -> None:
    # Kafka's controller: INVALID_PARTITIONS for 0 and below (except -1, the
    # default), POLICY_VIOLATION for more than 10,000 records in one operation.
    assert create_result(wire, topic_name, 0)[0] == ErrorCode.invalid_partitions
    assert create_result(wire, topic_name, -7)[0] == ErrorCode.invalid_partitions
    assert create_result(wire, topic_name, 2**31 - 1)[0] == ErrorCode.policy_violation
    assert create_result(wire, "", 1)[0] == ErrorCode.invalid_topic_exception
    create_topic(wire, topic_name, 1)
    types = request_types(37, 3)
    grow = build(types.CreatePartitionsRequest, timeout=datetime.timedelta(seconds=10), validate_only=False,
                 topics=(build(types.CreatePartitionsTopic, name=topic_name, count=2**31 - 1,
                               assignments=None),))
    (result,) = wire.call(grow).results
    assert result.error_code == ErrorCode.policy_violation
    (answer,) = wire.call(metadata([topic_name])).topics
    assert len(answer.partitions) == 1  # nothing was created by the refused requests


def test_negative_partitions_offsets_and_sizes(wire: Wire, topic_name: str) -> None:
    create_topic(wire, topic_name, 1)
    assert partition_errors(wire.call(produce(topic_name, {-1: batch(b"x")}))) == {
        -1: ErrorCode.unknown_topic_or_partition}
    assert fetched(wire.call(fetch(12, 0, topic=topic_name, partition=-3))).error_code == (
        ErrorCode.unknown_topic_or_partition)
    assert fetched(wire.call(fetch(12, -5, topic=topic_name))).error_code == ErrorCode.offset_out_of_range
    assert partition_errors(wire.call(produce(topic_name, {0: batch(b"x")}))) == {0: ErrorCode.none}
    # Negative sizes and an absurd wait: answered at once, since data is there.
    request = fetch(12, 0, topic=topic_name, max_wait_ms=2**31 - 1)
    (topic,) = request.topics
    (partition,) = topic.partitions
    odd = dataclasses.replace(request, max_bytes=-1, min_bytes=-1, topics=(dataclasses.replace(
        topic, partitions=(dataclasses.replace(partition, partition_max_bytes=-100),)),))
    response = wire.call(odd)
    assert response.error_code == ErrorCode.none
    assert fetched(response).error_code == ErrorCode.none
    assert (fetched(response).high_watermark, fetched_values(fetched(response))) == (1, [b"x"])


def test_unknown_topic_ids_and_null_names(wire: Wire) -> None:
    unknown = uuid.uuid4()
    assert fetched(wire.call(fetch(13, 0, topic_id=unknown))).error_code == ErrorCode.unknown_topic_id
    types = request_types(3, 12)
    by_id = build(types.MetadataRequest, allow_auto_topic_creation=False,
                  include_topic_authorized_operations=False,
                  topics=(build(types.MetadataRequestTopic, name=None, topic_id=unknown),))
    (answer,) = wire.call(by_id).topics
    assert answer.error_code == ErrorCode.unknown_topic_id
    # Before v12 a topic name may not be null (Kafka: INVALID_REQUEST).
    types = request_types(3, 10)
    nameless = build(types.MetadataRequest, allow_auto_topic_creation=False,
                     include_cluster_authorized_operations=False, include_topic_authorized_operations=False,
                     topics=(build(types.MetadataRequestTopic, name=None, topic_id=unknown),))
    (answer,) = wire.call(nameless).topics
    assert answer.error_code == ErrorCode.invalid_request


def bomb(codec: Compression) -> bytes:
    """A batch of a few KiB that inflates to 8 MiB."""
    return encode_batch(0, [Record(0, None, b"\x00" * 8000, ())] * 1000, compression=codec)


def vm_hwm_kib(pid: int) -> int:
    """The process's peak resident set size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_many_small_decompression_bombs_in_one_produce(fuzzed: GatewayProcess, topic_name: str) -> None:
    """64 partitions of an 8 MiB zstd bomb each (512 MiB inflated, a few
    hundred KiB on the wire): the request's decompression budget (64 MiB
    for all partitions together) refuses the ones beyond it with
    CORRUPT_MESSAGE, and the gateway's peak memory stays far below 512 MiB."""
    assert fuzzed.process is not None
    wire = Wire(fuzzed.bootstrap)
    try:
        create_topic(wire, topic_name, partitions=64)
        batch = bomb(Compression.ZSTD)
        response = wire.call(produce(topic_name, dict.fromkeys(range(64), batch)))
    finally:
        wire.close()
    codes = Counter(p.error_code for answer in response.responses for p in answer.partition_responses)
    assert codes[2] > 0 and codes[0] > 0, codes  # CORRUPT_MESSAGE beyond the budget, success within
    assert codes[0] * 8 <= 64, codes
    assert vm_hwm_kib(fuzzed.process.pid) < 400 * 1024
    assert_healthy(fuzzed)


def test_clients_still_work_after_the_fuzzing(fuzzed: GatewayProcess, topic_name: str) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": fuzzed.bootstrap})
    for index in range(100):
        producer.produce(topic_name, value=b"after fuzzing %d" % index)
    assert producer.flush(30) == 0
    consumer = confluent_kafka.Consumer({"bootstrap.servers": fuzzed.bootstrap, "group.id": "after-fuzz",
                                        "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic_name])
        values: list[bytes] = []
        for _ in range(60):
            values += [m.value() for m in consumer.consume(100, timeout=1) if m.error() is None]
            if len(values) >= 100:
                break
    finally:
        consumer.close()
    assert values == [b"after fuzzing %d" % index for index in range(100)]
    assert fuzzed.log_path is not None
    assert not internal_errors(fuzzed.log_path)
    assert fuzzed.process is not None and fuzzed.process.poll() is None
