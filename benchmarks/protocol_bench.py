"""Microbenchmark of kio against kafka-python 3 on the gateway's protocol hot paths.

    python benchmarks/protocol_bench.py [--seconds S] [--repeat R] [--gc]

Both libraries generate their message classes from Kafka's JSON message
definitions; this compares what the gateway would pay per request with each.
Needs only ``kio`` and ``kafka-python`` (3.x) installed, not this project.

Cases (every body is encoded without request/response header or size prefix):

* decode a Produce v9 request, 1 topic x 4 partitions x 100 KiB records;
* decode a Fetch v12 request, 1 topic x 4 partitions;
* encode a Fetch v12 response, 1 topic x 4 partitions x 256 KiB records;
* encode a Metadata v12 response, 3 brokers, 50 topics x 4 partitions;
* decode a Metadata v12 request naming 10 topics;
* build + encode for the two responses: constructing the message objects is
  part of a server's cost, and the two libraries model messages differently
  (frozen dataclasses of phantom-typed values against slotted containers).

Records are opaque bytes to both libraries at this layer (neither parses the
record batches inside), so the large-records cases mostly measure copying.

Before timing, every case is checked: both libraries build the same message
from one description, their encodings must be byte-identical, and each
library must decode those bytes to the same values (so one library's output
is always checked by the other's reader).

Timing is timeit's: the number of calls per run is calibrated so that R runs
take about S seconds per case and library, and the best run is reported.
Like timeit, the garbage collector is off while timing unless ``--gc``.
"""

from __future__ import annotations

import argparse
import datetime
import io
import platform
import sys
import timeit
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from typing import Any, cast

from kafka.protocol.consumer.fetch import FetchRequest as KpFetchRequest
from kafka.protocol.consumer.fetch import FetchResponse as KpFetchResponse
from kafka.protocol.metadata.metadata import MetadataRequest as KpMetadataRequest
from kafka.protocol.metadata.metadata import MetadataResponse as KpMetadataResponse
from kafka.protocol.producer.produce import ProduceRequest as KpProduceRequest
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12 import request as kio_fetch_req
from kio.schema.fetch.v12 import response as kio_fetch_resp
from kio.schema.metadata.v12 import request as kio_meta_req
from kio.schema.metadata.v12 import response as kio_meta_resp
from kio.schema.produce.v9 import request as kio_produce_req
from kio.schema.types import BrokerId, TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import Records, i8, i16, i32, i32Timedelta, i64

KiB = 1024
PRODUCE_PARTITIONS = 4
PRODUCE_RECORDS_BYTES = 100 * KiB
FETCH_PARTITIONS = 4
FETCH_RECORDS_BYTES = 256 * KiB
METADATA_TOPICS = 50
METADATA_PARTITIONS = 4
METADATA_REQUEST_TOPICS = 10
BROKERS = (
    (1, "broker-1.example.internal", 9092),
    (2, "broker-2.example.internal", 9092),
    (3, "broker-3.example.internal", 9092),
)
CLUSTER_ID = "kafka-redis-gateway-bench"
ZERO_UUID = uuid.UUID(int=0)
# Hoisted like a server would (the gateway keeps the same constant).
NO_THROTTLE = i32Timedelta.parse(datetime.timedelta(0))

# A library-neutral "view" of a message: nested tuples of plain values. Both
# libraries' objects are projected onto it to compare them.
View = tuple[Any, ...]


def blob(size: int, seed: int) -> bytes:
    """Deterministic, non-repeating-looking filler standing in for record batches."""
    pattern = bytes((seed * 131 + i * 7) & 0xFF for i in range(251))
    return (pattern * (size // len(pattern) + 1))[:size]


def topic_uuid(index: int) -> uuid.UUID:
    return uuid.UUID(int=(0x5EED << 64) | (index + 1))


def kio_encode(entity: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def kio_decoder(entity_type: type[Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        value, _size = entity_reader(entity_type)(data, 0)
        return value

    return decode


def ms(delta: datetime.timedelta) -> int:
    return round(delta.total_seconds() * 1000)


# --- Produce v9 request ------------------------------------------------------

PRODUCE_BLOBS = [blob(PRODUCE_RECORDS_BYTES, p) for p in range(PRODUCE_PARTITIONS)]


def produce_kio() -> kio_produce_req.ProduceRequest:
    return kio_produce_req.ProduceRequest(
        transactional_id=None,
        acks=i16(-1),
        timeout=i32Timedelta.parse(datetime.timedelta(milliseconds=30_000)),
        topic_data=(
            kio_produce_req.TopicProduceData(
                name=TopicName("bench-produce"),
                partition_data=tuple(
                    kio_produce_req.PartitionProduceData(index=i32(p), records=Records(PRODUCE_BLOBS[p]))
                    for p in range(PRODUCE_PARTITIONS)
                ),
            ),
        ),
    )


def produce_kp() -> Any:
    topic = KpProduceRequest.TopicProduceData
    return KpProduceRequest(
        version=9,
        transactional_id=None,
        acks=-1,
        timeout_ms=30_000,
        topic_data=[
            topic(
                name="bench-produce",
                partition_data=[
                    topic.PartitionProduceData(index=p, records=PRODUCE_BLOBS[p])
                    for p in range(PRODUCE_PARTITIONS)
                ],
            )
        ],
    )


def produce_view_kio(r: kio_produce_req.ProduceRequest) -> View:
    return (
        r.transactional_id,
        r.acks,
        ms(r.timeout),
        tuple((t.name, tuple((p.index, p.records) for p in t.partition_data)) for t in r.topic_data),
    )


def produce_view_kp(r: Any) -> View:
    return (
        r.transactional_id,
        r.acks,
        r.timeout_ms,
        tuple((t.name, tuple((p.index, bytes(p.records)) for p in t.partition_data)) for t in r.topic_data),
    )


# --- Fetch v12 request -------------------------------------------------------


def fetch_request_kio() -> kio_fetch_req.FetchRequest:
    return kio_fetch_req.FetchRequest(
        cluster_id=None,
        replica_id=BrokerId(-1),
        max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=500)),
        min_bytes=i32(1),
        max_bytes=i32(52_428_800),
        isolation_level=i8(1),
        session_id=i32(0),
        session_epoch=i32(-1),
        topics=(
            kio_fetch_req.FetchTopic(
                topic=TopicName("bench-fetch"),
                partitions=tuple(
                    kio_fetch_req.FetchPartition(
                        partition=i32(p),
                        current_leader_epoch=i32(7),
                        fetch_offset=i64(1_000_000 + p * 1000),
                        last_fetched_epoch=i32(6),
                        log_start_offset=i64(-1),
                        partition_max_bytes=i32(1_048_576),
                    )
                    for p in range(FETCH_PARTITIONS)
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="rack-a",
    )


def fetch_request_kp() -> Any:
    topic = KpFetchRequest.FetchTopic
    return KpFetchRequest(
        version=12,
        cluster_id=None,
        replica_id=-1,
        max_wait_ms=500,
        min_bytes=1,
        max_bytes=52_428_800,
        isolation_level=1,
        session_id=0,
        session_epoch=-1,
        topics=[
            topic(
                topic="bench-fetch",
                partitions=[
                    topic.FetchPartition(
                        partition=p,
                        current_leader_epoch=7,
                        fetch_offset=1_000_000 + p * 1000,
                        last_fetched_epoch=6,
                        log_start_offset=-1,
                        partition_max_bytes=1_048_576,
                    )
                    for p in range(FETCH_PARTITIONS)
                ],
            )
        ],
        forgotten_topics_data=[],
        rack_id="rack-a",
    )


def fetch_request_view_kio(r: kio_fetch_req.FetchRequest) -> View:
    return (
        r.cluster_id,
        r.replica_id,
        ms(r.max_wait),
        r.min_bytes,
        r.max_bytes,
        r.isolation_level,
        r.session_id,
        r.session_epoch,
        tuple(
            (
                t.topic,
                tuple(
                    (
                        p.partition,
                        p.current_leader_epoch,
                        p.fetch_offset,
                        p.last_fetched_epoch,
                        p.log_start_offset,
                        p.partition_max_bytes,
                    )
                    for p in t.partitions
                ),
            )
            for t in r.topics
        ),
        tuple((f.topic, tuple(f.partitions)) for f in r.forgotten_topics_data),
        r.rack_id,
    )


def fetch_request_view_kp(r: Any) -> View:
    return (
        r.cluster_id,
        r.replica_id,
        r.max_wait_ms,
        r.min_bytes,
        r.max_bytes,
        r.isolation_level,
        r.session_id,
        r.session_epoch,
        tuple(
            (
                t.topic,
                tuple(
                    (
                        p.partition,
                        p.current_leader_epoch,
                        p.fetch_offset,
                        p.last_fetched_epoch,
                        p.log_start_offset,
                        p.partition_max_bytes,
                    )
                    for p in t.partitions
                ),
            )
            for t in r.topics
        ),
        tuple((f.topic, tuple(f.partitions)) for f in r.forgotten_topics_data),
        r.rack_id,
    )


# --- Fetch v12 response ------------------------------------------------------

FETCH_BLOBS = [blob(FETCH_RECORDS_BYTES, 100 + p) for p in range(FETCH_PARTITIONS)]


# The two response builders are timed ("build + encode"). They pass plain values
# with typing.cast, as the gateway's handlers do, rather than calling kio's
# phantom types (i32(x), BrokerId(x), ...): those validate at run time and cost
# about 3 µs each on the machine this was written on, which would dominate the
# build of a 200-partition response.


def fetch_response_kio() -> kio_fetch_resp.FetchResponse:
    return kio_fetch_resp.FetchResponse(
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        session_id=cast(i32, 0),
        responses=(
            kio_fetch_resp.FetchableTopicResponse(
                topic=cast(TopicName, "bench-fetch"),
                partitions=tuple(
                    kio_fetch_resp.PartitionData(
                        partition_index=cast(i32, p),
                        error_code=ErrorCode.none,
                        high_watermark=cast(i64, 2_000_000 + p),
                        last_stable_offset=cast(i64, 2_000_000 + p),
                        log_start_offset=cast(i64, 0),
                        aborted_transactions=(),
                        preferred_read_replica=cast(BrokerId, -1),
                        records=cast(Records, FETCH_BLOBS[p]),
                    )
                    for p in range(FETCH_PARTITIONS)
                ),
            ),
        ),
    )


def fetch_response_kp() -> Any:
    topic = KpFetchResponse.FetchableTopicResponse
    return KpFetchResponse(
        version=12,
        throttle_time_ms=0,
        error_code=0,
        session_id=0,
        responses=[
            topic(
                topic="bench-fetch",
                partitions=[
                    topic.PartitionData(
                        partition_index=p,
                        error_code=0,
                        high_watermark=2_000_000 + p,
                        last_stable_offset=2_000_000 + p,
                        log_start_offset=0,
                        aborted_transactions=[],
                        preferred_read_replica=-1,
                        records=FETCH_BLOBS[p],
                    )
                    for p in range(FETCH_PARTITIONS)
                ],
            )
        ],
    )


def fetch_response_view_kio(r: kio_fetch_resp.FetchResponse) -> View:
    return (
        ms(r.throttle_time),
        int(r.error_code),
        r.session_id,
        tuple(
            (
                t.topic,
                tuple(
                    (
                        p.partition_index,
                        int(p.error_code),
                        p.high_watermark,
                        p.last_stable_offset,
                        p.log_start_offset,
                        None
                        if p.aborted_transactions is None
                        else tuple((a.producer_id, a.first_offset) for a in p.aborted_transactions),
                        p.preferred_read_replica,
                        p.records,
                    )
                    for p in t.partitions
                ),
            )
            for t in r.responses
        ),
    )


def fetch_response_view_kp(r: Any) -> View:
    return (
        r.throttle_time_ms,
        r.error_code,
        r.session_id,
        tuple(
            (
                t.topic,
                tuple(
                    (
                        p.partition_index,
                        p.error_code,
                        p.high_watermark,
                        p.last_stable_offset,
                        p.log_start_offset,
                        None
                        if p.aborted_transactions is None
                        else tuple((a.producer_id, a.first_offset) for a in p.aborted_transactions),
                        p.preferred_read_replica,
                        None if p.records is None else bytes(p.records),
                    )
                    for p in t.partitions
                ),
            )
            for t in r.responses
        ),
    )


# --- Metadata v12 response ---------------------------------------------------


def replica_assignment(topic: int, partition: int) -> list[int]:
    """Three replicas, rotated over the brokers so the arrays are not all equal."""
    start = (topic + partition) % len(BROKERS)
    return [BROKERS[(start + k) % len(BROKERS)][0] for k in range(len(BROKERS))]


# Precomputed so that building a response costs only what the library adds.
REPLICAS = [[replica_assignment(t, p) for p in range(METADATA_PARTITIONS)] for t in range(METADATA_TOPICS)]
TOPIC_NAMES = [f"bench-topic-{t:03d}" for t in range(METADATA_TOPICS)]
TOPIC_IDS = [topic_uuid(t) for t in range(METADATA_TOPICS)]
BrokerIds = tuple[BrokerId, ...]  # bound once: cast() evaluates its type argument


def metadata_response_kio() -> kio_meta_resp.MetadataResponse:
    return kio_meta_resp.MetadataResponse(
        throttle_time=NO_THROTTLE,
        brokers=tuple(
            kio_meta_resp.MetadataResponseBroker(
                node_id=cast(BrokerId, node), host=host, port=cast(i32, port), rack=None
            )
            for node, host, port in BROKERS
        ),
        cluster_id=CLUSTER_ID,
        controller_id=cast(BrokerId, 1),
        topics=tuple(
            kio_meta_resp.MetadataResponseTopic(
                error_code=ErrorCode.none,
                name=cast(TopicName, TOPIC_NAMES[t]),
                topic_id=TOPIC_IDS[t],
                is_internal=False,
                partitions=tuple(
                    kio_meta_resp.MetadataResponsePartition(
                        error_code=ErrorCode.none,
                        partition_index=cast(i32, p),
                        leader_id=cast(BrokerId, REPLICAS[t][p][0]),
                        leader_epoch=cast(i32, 3),
                        replica_nodes=cast(BrokerIds, tuple(REPLICAS[t][p])),
                        isr_nodes=cast(BrokerIds, tuple(REPLICAS[t][p])),
                        offline_replicas=(),
                    )
                    for p in range(METADATA_PARTITIONS)
                ),
            )
            for t in range(METADATA_TOPICS)
        ),
    )


def metadata_response_kp() -> Any:
    topic = KpMetadataResponse.MetadataResponseTopic
    return KpMetadataResponse(
        version=12,
        throttle_time_ms=0,
        brokers=[
            KpMetadataResponse.MetadataResponseBroker(node_id=node, host=host, port=port, rack=None)
            for node, host, port in BROKERS
        ],
        cluster_id=CLUSTER_ID,
        controller_id=1,
        topics=[
            topic(
                error_code=0,
                name=TOPIC_NAMES[t],
                topic_id=TOPIC_IDS[t],
                is_internal=False,
                partitions=[
                    topic.MetadataResponsePartition(
                        error_code=0,
                        partition_index=p,
                        leader_id=REPLICAS[t][p][0],
                        leader_epoch=3,
                        replica_nodes=REPLICAS[t][p],
                        isr_nodes=REPLICAS[t][p],
                        offline_replicas=[],
                    )
                    for p in range(METADATA_PARTITIONS)
                ],
                # kafka-python models the bitfield as a set; None stands for
                # "not requested" (INT32_MIN on the wire), kio's default.
                authorized_operations=None,
            )
            for t in range(METADATA_TOPICS)
        ],
    )


def metadata_response_view_kio(r: kio_meta_resp.MetadataResponse) -> View:
    return (
        ms(r.throttle_time),
        tuple((b.node_id, b.host, b.port, b.rack) for b in r.brokers),
        r.cluster_id,
        r.controller_id,
        tuple(
            (
                int(t.error_code),
                t.name,
                t.topic_id or ZERO_UUID,
                t.is_internal,
                tuple(
                    (
                        int(p.error_code),
                        p.partition_index,
                        p.leader_id,
                        p.leader_epoch,
                        tuple(p.replica_nodes),
                        tuple(p.isr_nodes),
                        tuple(p.offline_replicas),
                    )
                    for p in t.partitions
                ),
                None if t.topic_authorized_operations == -(2**31) else t.topic_authorized_operations,
            )
            for t in r.topics
        ),
    )


def metadata_response_view_kp(r: Any) -> View:
    return (
        r.throttle_time_ms,
        tuple((b.node_id, b.host, b.port, b.rack) for b in r.brokers),
        r.cluster_id,
        r.controller_id,
        tuple(
            (
                t.error_code,
                t.name,
                t.topic_id or ZERO_UUID,
                t.is_internal,
                tuple(
                    (
                        p.error_code,
                        p.partition_index,
                        p.leader_id,
                        p.leader_epoch,
                        tuple(p.replica_nodes),
                        tuple(p.isr_nodes),
                        tuple(p.offline_replicas),
                    )
                    for p in t.partitions
                ),
                t.authorized_operations,
            )
            for t in r.topics
        ),
    )


# --- Metadata v12 request ----------------------------------------------------


def metadata_request_kio() -> kio_meta_req.MetadataRequest:
    return kio_meta_req.MetadataRequest(
        topics=tuple(
            kio_meta_req.MetadataRequestTopic(topic_id=None, name=TopicName(f"bench-topic-{t:03d}"))
            for t in range(METADATA_REQUEST_TOPICS)
        ),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )


def metadata_request_kp() -> Any:
    return KpMetadataRequest(
        version=12,
        topics=[
            KpMetadataRequest.MetadataRequestTopic(topic_id=None, name=f"bench-topic-{t:03d}")
            for t in range(METADATA_REQUEST_TOPICS)
        ],
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )


def metadata_request_view_kio(r: kio_meta_req.MetadataRequest) -> View:
    topics = None if r.topics is None else tuple((t.topic_id or ZERO_UUID, t.name) for t in r.topics)
    return (topics, r.allow_auto_topic_creation, r.include_topic_authorized_operations)


def metadata_request_view_kp(r: Any) -> View:
    topics = None if r.topics is None else tuple((t.topic_id or ZERO_UUID, t.name) for t in r.topics)
    return (topics, r.allow_auto_topic_creation, r.include_topic_authorized_operations)


# --- Cases -------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One message described twice, once per library, plus how to read it back."""

    name: str
    kio_type: type[Any]
    kp_type: Any
    version: int
    build_kio: Callable[[], Any]
    build_kp: Callable[[], Any]
    view_kio: Callable[[Any], View]
    view_kp: Callable[[Any], View]

    def kp_decode(self, data: bytes) -> Any:
        return self.kp_type.decode(data, version=self.version)


@dataclass(frozen=True)
class Case:
    label: str
    kio: Callable[[], object]
    kafka_python: Callable[[], object]


MESSAGES = {
    "produce_req": Message(
        "Produce v9 request",
        kio_produce_req.ProduceRequest,
        KpProduceRequest,
        9,
        produce_kio,
        produce_kp,
        produce_view_kio,
        produce_view_kp,
    ),
    "fetch_req": Message(
        "Fetch v12 request",
        kio_fetch_req.FetchRequest,
        KpFetchRequest,
        12,
        fetch_request_kio,
        fetch_request_kp,
        fetch_request_view_kio,
        fetch_request_view_kp,
    ),
    "fetch_resp": Message(
        "Fetch v12 response",
        kio_fetch_resp.FetchResponse,
        KpFetchResponse,
        12,
        fetch_response_kio,
        fetch_response_kp,
        fetch_response_view_kio,
        fetch_response_view_kp,
    ),
    "metadata_resp": Message(
        "Metadata v12 response",
        kio_meta_resp.MetadataResponse,
        KpMetadataResponse,
        12,
        metadata_response_kio,
        metadata_response_kp,
        metadata_response_view_kio,
        metadata_response_view_kp,
    ),
    "metadata_req": Message(
        "Metadata v12 request",
        kio_meta_req.MetadataRequest,
        KpMetadataRequest,
        12,
        metadata_request_kio,
        metadata_request_kp,
        metadata_request_view_kio,
        metadata_request_view_kp,
    ),
}


class CheckFailed(AssertionError):
    pass


def first_difference(a: bytes, b: bytes) -> str:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"first difference at byte {index}: kio {x:#04x}, kafka-python {y:#04x}"
    return f"lengths differ: kio {len(a)}, kafka-python {len(b)}"


def check(message: Message) -> bytes:
    """Cross-check the two libraries on one message; return its encoding."""
    kio_entity = message.build_kio()
    kp_object = message.build_kp()
    expected = message.view_kio(kio_entity)
    if message.view_kp(kp_object) != expected:
        raise CheckFailed(f"{message.name}: the two descriptions of the message disagree")
    kio_bytes = kio_encode(kio_entity)
    kp_bytes = bytes(kp_object.encode())
    if kio_bytes != kp_bytes:
        raise CheckFailed(f"{message.name}: encodings differ, {first_difference(kio_bytes, kp_bytes)}")
    if message.view_kp(message.kp_decode(kio_bytes)) != expected:
        raise CheckFailed(f"{message.name}: kafka-python decodes kio's bytes to other values")
    if message.view_kio(kio_decoder(message.kio_type)(kp_bytes)) != expected:
        raise CheckFailed(f"{message.name}: kio decodes kafka-python's bytes to other values")
    return kio_bytes


def decode_case(label: str, message: Message, data: bytes) -> Case:
    kio_type = message.kio_type
    kp_type = message.kp_type
    version = message.version

    def run_kio() -> object:
        return entity_reader(kio_type)(data, 0)

    def run_kp() -> object:
        return kp_type.decode(data, version=version)

    return Case(label, run_kio, run_kp)


def encode_case(label: str, message: Message, build: bool) -> Case:
    kio_entity = message.build_kio()
    kp_object = message.build_kp()
    build_kio = message.build_kio
    build_kp = message.build_kp

    def run_kio() -> object:
        return kio_encode(build_kio() if build else kio_entity)

    def run_kp() -> object:
        return (build_kp() if build else kp_object).encode()

    return Case(label, run_kio, run_kp)


def build_cases() -> tuple[list[Case], list[str]]:
    encoded = {key: check(message) for key, message in MESSAGES.items()}
    sizes = [f"  {MESSAGES[key].name:<22} {len(data):>9,} bytes" for key, data in encoded.items()]
    m = MESSAGES
    cases = [
        decode_case(
            f"decode Produce v9 req ({PRODUCE_PARTITIONS}p x {PRODUCE_RECORDS_BYTES // KiB} KiB)",
            m["produce_req"],
            encoded["produce_req"],
        ),
        decode_case(f"decode Fetch v12 req (1t x {FETCH_PARTITIONS}p)", m["fetch_req"], encoded["fetch_req"]),
        encode_case(
            f"encode Fetch v12 resp ({FETCH_PARTITIONS}p x {FETCH_RECORDS_BYTES // KiB} KiB)",
            m["fetch_resp"],
            build=False,
        ),
        encode_case(
            f"encode Metadata v12 resp ({METADATA_TOPICS}t x {METADATA_PARTITIONS}p)",
            m["metadata_resp"],
            build=False,
        ),
        decode_case(
            f"decode Metadata v12 req ({METADATA_REQUEST_TOPICS}t)",
            m["metadata_req"],
            encoded["metadata_req"],
        ),
        encode_case("  build + encode Fetch v12 resp", m["fetch_resp"], build=True),
        encode_case("  build + encode Metadata v12 resp", m["metadata_resp"], build=True),
    ]
    return cases, sizes


def microseconds_per_call(run: Callable[[], object], seconds: float, repeat: int, gc: bool) -> float:
    """Best of ``repeat`` runs, each sized to take about ``seconds / repeat``."""
    timer = timeit.Timer(run, setup="gc.enable()" if gc else "pass")
    number, elapsed = timer.autorange()
    number = max(1, round(number * (seconds / repeat) / elapsed))
    best = min(timer.repeat(repeat=repeat, number=number))
    return best / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="timed seconds per case and library (default 1.0)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case and library (default 5)")
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on while timing")
    args = parser.parse_args(argv)

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"kio {dist_version('kio')}, kafka-python {dist_version('kafka-python')}"
    )
    try:
        cases, sizes = build_cases()
    except CheckFailed as exc:
        print(f"correctness check FAILED: {exc}", file=sys.stderr)
        return 1
    print("correctness check passed: identical encodings, each library decodes the other's bytes")
    print("message sizes (body only):")
    print("\n".join(sizes))
    print(
        f"timing: best of {args.repeat} runs, ~{args.seconds:g} s per case and library, "
        f"gc {'on' if args.gc else 'off'}"
    )
    reference = min(timeit.repeat("sum(range(1000))", repeat=args.repeat, number=2000)) / 2000 * 1e6
    print(f"machine reference: sum(range(1000)) takes {reference:.1f} µs (scale the table by it)\n")

    width = max(len(case.label) for case in cases)
    header = f"{'case':<{width}}  {'kio µs/op':>10}  {'kafka-python µs/op':>18}  {'ratio kp/kio':>12}"
    print(header)
    print("-" * len(header))
    for case in cases:
        kio_us = microseconds_per_call(case.kio, args.seconds, args.repeat, args.gc)
        kp_us = microseconds_per_call(case.kafka_python, args.seconds, args.repeat, args.gc)
        print(f"{case.label:<{width}}  {kio_us:>10.1f}  {kp_us:>18.1f}  {kp_us / kio_us:>11.2f}x", flush=True)
    print("\nratio > 1: kio is faster; < 1: kafka-python is faster.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
