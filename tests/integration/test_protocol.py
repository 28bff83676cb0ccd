"""The wire protocol spoken directly over a socket with the project's own codecs.

Requests are kio entities encoded by ``encode_request``; replies are decoded
with ``response_schema`` and kio's ``entity_reader``, so every answer is also
checked to be well-formed for the version asked.
"""

from __future__ import annotations

import datetime
import socket
import struct
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from kafka_redis_gateway.gateway.embedded import free_port
from kafka_redis_gateway.gateway.handlers import ROUTES
from kafka_redis_gateway.protocol.framing import frame
from kafka_redis_gateway.protocol.messages import (
    RequestHeader,
    encode_request,
    request_schema,
    response_schema,
)
from kafka_redis_gateway.protocol.records import Record, decode_batches, encode_batch
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader

from tests.integration.operations_support import scrape, value
from tests.servers import GatewayProcess, RedisServer

PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS, CREATE_TOPICS = 0, 1, 2, 3, 18, 19
DELETE_RECORDS = 21
# The gateway's default socket.request.max.bytes.
MAX_REQUEST_SIZE = 100 * 1024 * 1024


def request_types(api_key: int, version: int) -> ModuleType:
    schema = request_schema(api_key, version)
    assert schema is not None, f"kio has no request schema for API {api_key} v{version}"
    return sys.modules[schema.__module__]


def build(cls: Any, **values: Any) -> Any:
    """An entity from the values its version has fields for."""
    names = {field.name for field in fields(cls)}
    return cls(**{name: value for name, value in values.items() if name in names})


class Wire:
    """One client connection speaking raw Kafka frames."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self._next_id = 1

    def close(self) -> None:
        self.sock.close()

    def encode(self, body: Any, correlation_id: int | None = None) -> tuple[int, bytes]:
        if correlation_id is None:
            correlation_id, self._next_id = self._next_id, self._next_id + 1
        header = RequestHeader(body.__api_key__, body.__version__, correlation_id, "protocol-test")
        return correlation_id, frame(encode_request(header, body))

    def send(self, body: Any, correlation_id: int | None = None) -> int:
        correlation_id, data = self.encode(body, correlation_id)
        self.sock.sendall(data)
        return correlation_id

    def receive_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._exactly(4))
        return self._exactly(size)

    def receive(self, api_key: int, version: int) -> tuple[int, Any]:
        """The next response, decoded as the answer to ``api_key`` v``version``."""
        return decode_response(self.receive_frame(), api_key, version)

    def call(self, body: Any) -> Any:
        correlation_id = self.send(body)
        answered, response = self.receive(body.__api_key__, body.__version__)
        assert answered == correlation_id
        return response

    def closed_by_server(self, timeout: float = 10) -> bool:
        """Whether the server closes the connection (rather than answering or waiting)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def _exactly(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = self.sock.recv(size)
            if not chunk:
                raise ConnectionError("server closed the connection")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)


def decode_response(payload: bytes, api_key: int, version: int) -> tuple[int, Any]:
    schema = response_schema(api_key, version)
    (correlation_id,) = struct.unpack_from(">i", payload)
    offset = 4
    if schema.__header_schema__.__flexible__:
        assert payload[offset] == 0, "response header carries unexpected tagged fields"
        offset += 1
    body, _ = entity_reader(schema)(payload, offset)
    return correlation_id, body


@pytest.fixture
def wire(bootstrap: str) -> Iterator[Wire]:
    connection = Wire(bootstrap)
    yield connection
    connection.close()


# -- request builders -----------------------------------------------------------


def api_versions(version: int, name: str = "protocol-test", software_version: str = "1.0") -> Any:
    return build(request_types(API_VERSIONS, version).ApiVersionsRequest,
                 client_software_name=name, client_software_version=software_version)


def metadata(names: list[str], version: int = 12) -> Any:
    types = request_types(METADATA, version)
    return build(types.MetadataRequest,
                 topics=tuple(build(types.MetadataRequestTopic, name=name, topic_id=None) for name in names),
                 allow_auto_topic_creation=True, include_cluster_authorized_operations=False,
                 include_topic_authorized_operations=False)


def create_topics(name: str, partitions: int) -> Any:
    types = request_types(CREATE_TOPICS, 7)
    return types.CreateTopicsRequest(topics=(
        types.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1, assignments=(),
                             configs=()),
    ))


def produce(topic: str, batches: dict[int, bytes], version: int = 9, acks: int = 1) -> Any:
    types = request_types(PRODUCE, version)
    partitions = tuple(build(types.PartitionProduceData, index=index, records=records)
                       for index, records in batches.items())
    return build(types.ProduceRequest, transactional_id=None, acks=acks,
                 timeout=datetime.timedelta(seconds=10),
                 topic_data=(build(types.TopicProduceData, name=topic, partition_data=partitions),))


def fetch(version: int, offset: int, topic: str | None = None, topic_id: uuid.UUID | None = None,
          partition: int = 0, max_wait_ms: int = 0, min_bytes: int = 1) -> Any:
    types = request_types(FETCH, version)
    fetch_partition = build(types.FetchPartition, partition=partition, fetch_offset=offset,
                            partition_max_bytes=1 << 20, current_leader_epoch=-1,
                            last_fetched_epoch=-1, log_start_offset=-1)
    return build(types.FetchRequest, replica_id=-1, max_wait=datetime.timedelta(milliseconds=max_wait_ms),
                 min_bytes=min_bytes, max_bytes=1 << 24, isolation_level=0, session_id=0, session_epoch=-1,
                 topics=(build(types.FetchTopic, topic=topic, topic_id=topic_id,
                               partitions=(fetch_partition,)),),
                 forgotten_topics_data=(), rack_id="")


def list_offsets(topic: str, timestamp: int = -1, version: int = 8) -> Any:
    types = request_types(LIST_OFFSETS, version)
    partition = build(types.ListOffsetsPartition, partition_index=0, current_leader_epoch=-1,
                      timestamp=timestamp)
    return build(types.ListOffsetsRequest, replica_id=-1, isolation_level=0,
                 topics=(build(types.ListOffsetsTopic, name=topic, partitions=(partition,)),))


def delete_records(topic: str, partition: int, offset: int, version: int = 2) -> Any:
    types = request_types(DELETE_RECORDS, version)
    target = build(types.DeleteRecordsPartition, partition_index=partition, offset=offset)
    return build(types.DeleteRecordsRequest, timeout=datetime.timedelta(seconds=30),
                 topics=(build(types.DeleteRecordsTopic, name=topic, partitions=(target,)),))


def batch(*values: bytes) -> bytes:
    now = int(time.time() * 1000)
    return encode_batch(0, [Record(now, None, value, ()) for value in values])


def legacy_message_set(magic: int, value: bytes) -> bytes:
    """One message in the pre-0.11 format (magic 0 or 1)."""
    timestamp = struct.pack(">q", int(time.time() * 1000)) if magic == 1 else b""
    key_and_value = struct.pack(">i", -1) + struct.pack(">i", len(value)) + value
    body = struct.pack(">bb", magic, 0) + timestamp + key_and_value
    message = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(message)) + message


def partition_errors(response: Any) -> dict[int, int]:
    return {p.index: p.error_code for topic in response.responses for p in topic.partition_responses}


def fetched(response: Any) -> Any:
    """The one partition of a one-partition fetch response."""
    (topic,) = response.responses
    (partition,) = topic.partitions
    return partition


def fetched_values(partition: Any) -> list[bytes | None]:
    return [record.value for _, records in decode_batches(partition.records) for record in records]


def create_topic(wire: Wire, name: str, partitions: int = 1) -> uuid.UUID:
    (result,) = wire.call(create_topics(name, partitions)).topics
    assert result.error_code == ErrorCode.none, result.error_message
    return result.topic_id


def assert_serves(bootstrap: str, *connections: Wire) -> None:
    """Each given connection, and a new one, still answer ApiVersions."""
    fresh = Wire(bootstrap)
    try:
        for connection in (*connections, fresh):
            assert connection.call(api_versions(3)).error_code == ErrorCode.none
    finally:
        fresh.close()


# -- ApiVersions ----------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_api_versions_lists_the_served_ranges(wire: Wire, version: int) -> None:
    response = wire.call(api_versions(version))
    assert response.error_code == ErrorCode.none
    ranges = {entry.api_key: (entry.min_version, entry.max_version) for entry in response.api_keys}
    assert len(ranges) == len(response.api_keys), "an API key is listed twice"
    assert ranges == {route.api_key: (route.advertised_min, route.max_version) for route in ROUTES}
    assert ranges[API_VERSIONS] == (0, 4)
    assert ranges[PRODUCE][1] >= 3 and ranges[FETCH][0] <= 4 <= 12 <= ranges[FETCH][1]
    assert all(low <= high for low, high in ranges.values())


def test_api_versions_refuses_a_malformed_client_software_name(wire: Wire) -> None:
    assert wire.call(api_versions(3, name="not a name!")).error_code == ErrorCode.invalid_request


def test_too_new_api_versions_gets_a_v0_answer_with_the_supported_range(wire: Wire) -> None:
    correlation_id, data = wire.encode(api_versions(3), correlation_id=77)
    # Rewrite the version in the header (after size and API key) to v9.
    wire.sock.sendall(data[:6] + struct.pack(">h", 9) + data[8:])
    answered, response = wire.receive(API_VERSIONS, 0)
    assert answered == correlation_id
    assert response.error_code == ErrorCode.unsupported_version
    assert [(k.api_key, k.min_version, k.max_version) for k in response.api_keys] == [(API_VERSIONS, 0, 4)]
    # The client retries at a version it now knows, on the same connection.
    assert wire.call(api_versions(3)).error_code == ErrorCode.none


# -- connection handling ----------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(wire: Wire, topic_name: str) -> None:
    create_topic(wire, topic_name)
    kinds = [
        api_versions(3),
        metadata([topic_name]),
        produce(topic_name, {0: batch(b"v")}),
        list_offsets(topic_name),
        fetch(12, 0, topic=topic_name),
    ]
    requests = [kinds[i % len(kinds)] for i in range(20)]
    correlation_ids = [1000 + 7 * i for i in range(20)]
    wire.sock.sendall(b"".join(wire.encode(body, cid)[1] for body, cid in zip(requests, correlation_ids,
                                                                             strict=True)))
    produced, end_offsets = [], []
    for body, correlation_id in zip(requests, correlation_ids, strict=True):
        answered, response = wire.receive(body.__api_key__, body.__version__)
        assert answered == correlation_id
        if body.__api_key__ == PRODUCE:
            (topic,) = response.responses
            produced.append(topic.partition_responses[0].base_offset)
        elif body.__api_key__ == LIST_OFFSETS:
            end_offsets.append(response.topics[0].partitions[0].offset)
    # Each request saw the effect of those before it.
    assert produced == [0, 1, 2, 3]
    assert end_offsets == [1, 2, 3, 4]


def _garbage(wire: Wire) -> None:
    wire.sock.sendall(frame(b"\x00\x03"))  # shorter than a request header


def _random_bytes(wire: Wire) -> None:
    wire.sock.sendall(frame(bytes(range(256)) * 4))


def _unknown_api_key(wire: Wire) -> None:
    wire.sock.sendall(frame(struct.pack(">hhih", 9_999, 0, 5, -1)))


def _unsupported_version(wire: Wire) -> None:
    _, data = wire.encode(metadata(["t"]))
    wire.sock.sendall(data[:6] + struct.pack(">h", 99) + data[8:])


def _truncated_request(wire: Wire) -> None:
    _, data = wire.encode(metadata(["some-topic", "another-topic"]))
    body = data[4:-12]
    wire.sock.sendall(frame(body))


def _frame_cut_short(wire: Wire) -> None:
    _, data = wire.encode(metadata(["some-topic"]))
    wire.sock.sendall(data[:-5])
    wire.sock.shutdown(socket.SHUT_WR)


def _frame_over_the_limit(wire: Wire) -> None:
    wire.sock.sendall(struct.pack(">i", MAX_REQUEST_SIZE + 1))  # and no body: refused unread


def _negative_frame_size(wire: Wire) -> None:
    wire.sock.sendall(struct.pack(">i", -5))


@pytest.mark.parametrize("offend", [
    _garbage, _random_bytes, _unknown_api_key, _unsupported_version, _truncated_request, _frame_cut_short,
    _frame_over_the_limit, _negative_frame_size,
], ids=lambda offend: offend.__name__.strip("_"))
def test_bad_input_closes_only_its_connection(bootstrap: str, offend: Any) -> None:
    bystander, offender = Wire(bootstrap), Wire(bootstrap)
    try:
        assert bystander.call(api_versions(3)).error_code == ErrorCode.none
        offend(offender)
        assert offender.closed_by_server(), "the gateway kept the connection open"
        assert_serves(bootstrap, bystander)
    finally:
        bystander.close()
        offender.close()


def test_a_client_killed_with_requests_in_flight_is_no_error(redis_server: RedisServer,
                                                             tmp_path: Path) -> None:
    """Answers to a client that is gone are dropped quietly: a closed connection is not an error.

    Under uvloop, writing to the transport a reset closed raised RuntimeError,
    logged as an unexpected error with its traceback.
    """
    metrics_port = free_port()
    log = tmp_path / "gateway.log"
    gateway = GatewayProcess(redis_server.url, log_path=log,
                             extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"]).start()
    try:
        setup = Wire(gateway.bootstrap)
        topic = f"t-{uuid.uuid4().hex[:12]}"
        create_topic(setup, topic)
        setup.close()
        for _ in range(3):
            victim = Wire(gateway.bootstrap)
            for _ in range(4):  # long polls on an empty partition, all in flight
                victim.send(fetch(12, 0, topic=topic, max_wait_ms=300))
            # Reset, not a clean close: the gateway's reads and writes then fail.
            victim.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            victim.close()
        deadline = time.monotonic() + 30
        while value(scrape(metrics_port), "krg_open_connections") or value(
                scrape(metrics_port), "krg_in_flight_requests"):
            assert time.monotonic() < deadline, "the killed connections never finished"
            time.sleep(0.1)
        assert_serves(gateway.bootstrap)
    finally:
        gateway.stop()
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text


def test_frames_up_to_the_configured_limit_are_read(redis_server: RedisServer, tmp_path: Path) -> None:
    limit = 2_000
    gateway = GatewayProcess(redis_server.url, extra_args=["--max-request-size", str(limit)],
                             log_path=tmp_path / "gateway.log").start()
    wire = Wire(gateway.bootstrap)
    try:
        def sized(size: int) -> bytes:
            """An ApiVersions request frame of exactly ``size`` bytes after the prefix."""
            # Names of 128 to 16,383 bytes all take a two-byte length.
            base = len(wire.encode(api_versions(3, name="a" * 200))[1]) - 4
            data = wire.encode(api_versions(3, name="a" * (200 + size - base)))[1]
            assert len(data) - 4 == size
            return data

        wire.sock.sendall(sized(limit))
        assert wire.receive(API_VERSIONS, 3)[1].error_code == ErrorCode.none
        wire.sock.sendall(sized(limit + 1))
        assert wire.closed_by_server()
    finally:
        wire.close()
        gateway.stop()


# -- Produce --------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 9, 12])
def test_corrupt_crc_fails_only_its_partition(wire: Wire, topic_name: str, version: int) -> None:
    create_topic(wire, topic_name, partitions=2)
    corrupt = bytearray(batch(b"payload"))
    corrupt[-2] ^= 0xFF  # inside the record, covered by the CRC
    response = wire.call(produce(topic_name, {0: bytes(corrupt), 1: batch(b"fine")}, version=version))
    assert partition_errors(response) == {0: ErrorCode.corrupt_message, 1: ErrorCode.none}
    assert fetched_values(fetched(wire.call(fetch(12, 0, topic=topic_name, partition=1)))) == [b"fine"]
    assert fetched(wire.call(fetch(12, 0, topic=topic_name, partition=0))).high_watermark == 0


@pytest.mark.parametrize("magic", [0, 1])
def test_old_message_formats_are_refused(wire: Wire, topic_name: str, magic: int) -> None:
    create_topic(wire, topic_name)
    response = wire.call(produce(topic_name, {0: legacy_message_set(magic, b"old")}, version=3))
    assert partition_errors(response) == {0: ErrorCode.unsupported_for_message_format}


def test_acks_0_gets_no_response(wire: Wire, topic_name: str) -> None:
    create_topic(wire, topic_name)
    wire.send(produce(topic_name, {0: batch(b"fire", b"forget")}, acks=0), correlation_id=500)
    following = wire.send(api_versions(3), correlation_id=501)
    answered, response = wire.receive(API_VERSIONS, 3)
    assert answered == following
    assert response.error_code == ErrorCode.none
    assert fetched_values(fetched(wire.call(fetch(12, 0, topic=topic_name)))) == [b"fire", b"forget"]


def test_a_failed_acks_0_produce_closes_the_connection(wire: Wire, bootstrap: str, topic_name: str) -> None:
    """acks=0 has no response, so Kafka closes the connection to tell the producer it failed.

    The partition that exists is still appended; only its answer is lost.
    """
    create_topic(wire, topic_name)
    wire.send(produce(topic_name, {0: batch(b"kept"), 3: batch(b"nowhere")}, acks=0))
    assert wire.closed_by_server()
    assert_serves(bootstrap)
    other = Wire(bootstrap)
    try:
        assert fetched_values(fetched(other.call(fetch(12, 0, topic=topic_name)))) == [b"kept"]
        # A corrupt batch is a failure too.
        other.send(produce(topic_name, {0: b"not a record batch"}, acks=0))
        assert other.closed_by_server()
    finally:
        other.close()


@pytest.mark.parametrize("acks", [2, -2, 5])
def test_invalid_acks_are_refused(wire: Wire, topic_name: str, acks: int) -> None:
    create_topic(wire, topic_name, partitions=2)
    response = wire.call(produce(topic_name, {0: batch(b"a"), 1: batch(b"b")}, acks=acks))
    refused = ErrorCode.invalid_required_acks
    assert partition_errors(response) == {0: refused, 1: refused}
    assert fetched(wire.call(fetch(12, 0, topic=topic_name))).high_watermark == 0


def test_produce_to_a_partition_that_does_not_exist(wire: Wire, topic_name: str) -> None:
    create_topic(wire, topic_name)
    response = wire.call(produce(topic_name, {0: batch(b"a"), 3: batch(b"b")}))
    assert partition_errors(response) == {0: ErrorCode.none, 3: ErrorCode.unknown_topic_or_partition}


# -- Fetch ----------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 11, 12])
def test_fetch_by_name(wire: Wire, topic_name: str, version: int) -> None:
    create_topic(wire, topic_name)
    wire.call(produce(topic_name, {0: batch(b"a", b"b", b"c")}))
    partition = fetched(wire.call(fetch(version, 1, topic=topic_name)))
    assert partition.error_code == ErrorCode.none
    assert partition.high_watermark == 3
    if version >= 5:
        assert partition.log_start_offset == 0
    assert fetched_values(partition) == [b"b", b"c"]


@pytest.mark.parametrize("version", [4, 12])
def test_fetch_beyond_the_end_is_out_of_range(wire: Wire, topic_name: str, version: int) -> None:
    create_topic(wire, topic_name)
    wire.call(produce(topic_name, {0: batch(b"a", b"b", b"c")}))
    beyond = fetched(wire.call(fetch(version, 10, topic=topic_name)))
    assert beyond.error_code == ErrorCode.offset_out_of_range
    # Unknown offsets with the error, as Kafka answers (test_differential.py).
    assert (beyond.high_watermark, beyond.last_stable_offset) == (-1, -1)
    if version >= 5:
        assert beyond.log_start_offset == -1
    at_end = fetched(wire.call(fetch(version, 3, topic=topic_name)))
    assert (at_end.error_code, fetched_values(at_end)) == (ErrorCode.none, [])


@pytest.mark.parametrize("version", [4, 12])
def test_fetch_of_an_unknown_topic(wire: Wire, topic_name: str, version: int) -> None:
    partition = fetched(wire.call(fetch(version, 0, topic=topic_name)))
    assert partition.error_code == ErrorCode.unknown_topic_or_partition


def test_fetch_of_an_unknown_partition(wire: Wire, topic_name: str) -> None:
    create_topic(wire, topic_name)
    partition = fetched(wire.call(fetch(12, 0, topic=topic_name, partition=5)))
    assert partition.error_code == ErrorCode.unknown_topic_or_partition


@pytest.mark.parametrize("version", [13, 16])
def test_fetch_by_topic_id(wire: Wire, topic_name: str, version: int) -> None:
    topic_id = create_topic(wire, topic_name)
    (described,) = wire.call(metadata([topic_name])).topics
    assert described.topic_id == topic_id
    wire.call(produce(topic_name, {0: batch(b"x", b"y")}))

    response = wire.call(fetch(version, 0, topic_id=topic_id))
    (topic,) = response.responses
    assert topic.topic_id == topic_id
    assert fetched_values(fetched(response)) == [b"x", b"y"]

    unknown = fetched(wire.call(fetch(version, 0, topic_id=uuid.uuid4())))
    assert unknown.error_code == ErrorCode.unknown_topic_id


def test_fetch_waits_for_records(bootstrap: str, wire: Wire, topic_name: str) -> None:
    create_topic(wire, topic_name)
    correlation_id = wire.send(fetch(12, 0, topic=topic_name, max_wait_ms=20_000))
    producer = Wire(bootstrap)
    try:
        time.sleep(0.3)
        producer.call(produce(topic_name, {0: batch(b"woken")}))
    finally:
        producer.close()
    answered, response = wire.receive(FETCH, 12)
    assert answered == correlation_id
    assert fetched_values(fetched(response)) == [b"woken"]


def test_fetch_with_min_bytes_0_answers_at_once(wire: Wire, topic_name: str) -> None:
    # Kafka answers a min_bytes 0 fetch without waiting. Nothing is ever
    # appended here, so a fetch that waited would answer after ten minutes,
    # long after the 30 s the socket waits for the answer.
    create_topic(wire, topic_name)
    partition = fetched(wire.call(fetch(12, 0, topic=topic_name, max_wait_ms=600_000, min_bytes=0)))
    assert (partition.error_code, partition.high_watermark, fetched_values(partition)) == (
        ErrorCode.none, 0, [])


# -- Metadata -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "has space", "bad/slash", "ünïcode", "x" * 250])
def test_metadata_refuses_invalid_topic_names(wire: Wire, name: str) -> None:
    (topic,) = wire.call(metadata([name])).topics
    assert topic.error_code == ErrorCode.invalid_topic_exception


@pytest.mark.parametrize("version", [0, 4, 9, 12])
def test_metadata_auto_creates_topics(wire: Wire, topic_name: str, version: int) -> None:
    response = wire.call(metadata([topic_name], version=version))
    (topic,) = response.topics
    assert (topic.name, topic.error_code) == (topic_name, ErrorCode.none)
    assert [p.partition_index for p in topic.partitions] == [0]
    # Other tests' gateways on the same Redis may be in the cluster too.
    assert all(p.leader_id in {b.node_id for b in response.brokers} for p in topic.partitions)


# -- Fetch budget ---------------------------------------------------------------


def redis_output_bytes(redis_server: RedisServer) -> int:
    client = redis_server.client()
    try:
        return int(client.info("stats")["total_net_output_bytes"])
    finally:
        client.close()


def fetch_partitions(topic: str, partitions: int, max_bytes: int, partition_max_bytes: int = 1 << 20) -> Any:
    types = request_types(FETCH, 12)
    return build(types.FetchRequest, replica_id=-1, max_wait=datetime.timedelta(0), min_bytes=1,
                 max_bytes=max_bytes, isolation_level=0, session_id=0, session_epoch=-1,
                 topics=(build(types.FetchTopic, topic=topic, partitions=tuple(
                     build(types.FetchPartition, partition=index, fetch_offset=0,
                           partition_max_bytes=partition_max_bytes, current_leader_epoch=-1,
                           last_fetched_epoch=-1, log_start_offset=-1)
                     for index in range(partitions))),),
                 forgotten_topics_data=(), rack_id="")


def test_fetch_reads_no_more_than_its_response_budget(wire: Wire, redis_server: RedisServer,
                                                      topic_name: str) -> None:
    # Four partitions of 200 KiB each; a fetch of them all allows 150 KiB.
    create_topic(wire, topic_name, partitions=4)
    values = [b"%05d" % i + b"x" * 10_235 for i in range(20)]
    for partition in range(4):
        wire.call(produce(topic_name, {partition: batch(*values)}))
    before = redis_output_bytes(redis_server)
    response = wire.call(fetch_partitions(topic_name, 4, max_bytes=150 * 1024))
    read_from_redis = redis_output_bytes(redis_server) - before

    (topic,) = response.responses
    sent = [fetched_values(partition) for partition in topic.partitions]
    assert 10 <= len(sent[0]) <= 15 and sent[0] == values[:len(sent[0])]
    assert sent[1:] == [[], [], []]
    assert [p.high_watermark for p in topic.partitions] == [20] * 4
    # What the response holds plus a little: not every partition up to the budget.
    assert read_from_redis < 200 * 1024, f"{read_from_redis} bytes read from Redis for a 150 KiB fetch"


def test_partitions_after_empty_ones_get_the_budget_left(wire: Wire, topic_name: str) -> None:
    # The budget that empty partitions leave goes to the ones after them
    # (a later read round), as Kafka's partition-by-partition reads give it.
    create_topic(wire, topic_name, partitions=4)
    values = [b"%05d" % i + b"x" * 10_235 for i in range(20)]
    wire.call(produce(topic_name, {3: batch(*values)}))
    response = wire.call(fetch_partitions(topic_name, 4, max_bytes=150 * 1024,
                                          partition_max_bytes=100 * 1024))
    (topic,) = response.responses
    sent = [fetched_values(partition) for partition in topic.partitions]
    assert sent[:3] == [[], [], []]
    assert sent[3] and sent[3] == values[:len(sent[3])]
