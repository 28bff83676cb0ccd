"""What the request fuzzers share: the advertised versions and the mutations.

The (API key, version) pairs come from the Router the gateway builds, which
is also what ApiVersions advertises, so a new API is fuzzed as soon as it is
routed. Valid requests are built by hypothesis from kio's entity types and
then mutated.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_redis_gateway.gateway.dispatch import Router
from kafka_redis_gateway.gateway.handlers import ROUTES
from kafka_redis_gateway.protocol.messages import RequestHeader, encode_request, request_schema
from kafka_redis_gateway.protocol.records import Record, encode_batch
from kio.static.primitive import Records, i64Timedelta

PRODUCE = 0


def advertised_versions() -> list[tuple[int, int]]:
    """Every (API key, version) ApiVersions advertises, from the real Router."""
    return [(route.api_key, version) for route in Router(ROUTES)
            for version in range(route.advertised_min, route.max_version + 1)]


ADVERTISED = advertised_versions()
# Advertised versions that have a request schema (Produce v0-v2 have none:
# they are advertised for old librdkafka's feature detection and refused).
DECODABLE = [(key, version) for key, version in ADVERTISED if request_schema(key, version) is not None]

# Produce's records field as what producers really send, or arbitrary bytes.
VALID_BATCH = encode_batch(0, [Record(1_700_000_000_000, b"k", b"v" * 40, (("h", b"x"),))])
st.register_type_strategy(Records, st.sampled_from([VALID_BATCH, b""]) | st.binary(max_size=80))

# kio's compiled reader turns int64 milliseconds into a timedelta through
# microseconds, so it refuses |ms| >= 2^63 // 1000 (about 292,000 years:
# OffsetCommit v2-v4's retention_time) although its writer encodes them; a
# request carrying one is malformed to the gateway (docs/compatibility.md).
# kio's writer, which encodes the tests' requests, goes through float seconds
# (round(total_seconds() * 1000)): exact only up to 2^53 // 1000 ms (about
# 285 years); beyond, a drawn value came back 1 ms off and failed the
# round-trip check now and then. Valid requests are drawn within both; the
# mutations still reach the rest.
ENCODABLE_MILLIS = 2**53 // 1000
st.register_type_strategy(i64Timedelta, st.integers(-ENCODABLE_MILLIS, ENCODABLE_MILLIS).map(
    lambda millis: i64Timedelta.parse(datetime.timedelta(microseconds=millis * 1000))))

# Values that make a length, count or size field absurd.
HUGE_INT32 = [0x7FFFFFFF, -(2**31), -2, 0x10000000]
HUGE_INT16 = [0x7FFF, -(2**15), -2]
LONG_VARINT = b"\xff" * 11  # continuation bit on far past 5 (or 10) bytes
HUGE_VARINT = b"\xff\xff\xff\xff\x0f"  # 2^32 - 1: a count or length near 4 G
INVALID_UTF8 = b"\xc3\x28\xff\xfe"


def schema_of(api_key: int, version: int) -> type[Any]:
    schema = request_schema(api_key, version)
    assert schema is not None, f"no request schema for API {api_key} v{version}"
    return schema


def encoded(entity: Any, correlation_id: int = 7) -> bytes:
    """A request (without the size prefix) with this body."""
    header = RequestHeader(entity.__api_key__, entity.__version__, correlation_id, "fuzz")
    return encode_request(header, entity)


def sample_request(schema: type[Any], max_size: int = 80) -> bytes:
    """A deterministic valid request of this schema with as much nesting as
    fits in ``max_size`` bytes (every byte of it gets mutated a dozen ways)."""
    chosen = [b""]

    @settings(max_examples=30, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.from_type(schema))
    def pick(entity: Any) -> None:
        candidate = encoded(entity)
        if len(chosen[0]) < len(candidate) <= max_size:
            chosen[0] = candidate

    pick()
    assert chosen[0], f"no example of {schema.__name__} fits in {max_size} bytes"
    return chosen[0]


def mutations(frame: bytes) -> Iterator[tuple[str, bytes]]:
    """Each single edit at each position after the fixed header prefix (API
    key, version and correlation ID, which chose the schema)."""
    for at in range(8, len(frame)):
        yield f"truncated at {at}", frame[:at]
        yield f"byte {at} flipped", frame[:at] + bytes([frame[at] ^ 0xFF]) + frame[at + 1:]
        for value in HUGE_INT32:
            yield f"int32 {value} at {at}", frame[:at] + struct.pack(">i", value) + frame[at + 4:]
        for value in HUGE_INT16:
            yield f"int16 {value} at {at}", frame[:at] + struct.pack(">h", value) + frame[at + 2:]
        for name, raw in (("long varint", LONG_VARINT), ("huge varint", HUGE_VARINT),
                          ("invalid UTF-8", INVALID_UTF8)):
            yield f"{name} at {at}", frame[:at] + raw + frame[at + len(raw):]
            yield f"{name} inserted at {at}", frame[:at] + raw + frame[at:]


# Random edits for hypothesis: (edit, position, payload).
Mutation = Callable[[bytearray, int, bytes], None]


def _truncate(data: bytearray, at: int, _: bytes) -> None:
    del data[at:]


def _flip(data: bytearray, at: int, payload: bytes) -> None:
    data[at] ^= payload[0] or 1


def _overwrite(data: bytearray, at: int, payload: bytes) -> None:
    data[at:at + len(payload)] = payload


def _insert(data: bytearray, at: int, payload: bytes) -> None:
    data[at:at] = payload


def _delete(data: bytearray, at: int, payload: bytes) -> None:
    del data[at:at + len(payload)]


EDITS: list[Mutation] = [_truncate, _flip, _overwrite, _insert, _delete]
payloads = st.one_of(
    st.binary(min_size=1, max_size=8),
    st.sampled_from(HUGE_INT32).map(lambda value: struct.pack(">i", value)),
    st.sampled_from(HUGE_INT16).map(lambda value: struct.pack(">h", value)),
    st.sampled_from([LONG_VARINT, HUGE_VARINT, INVALID_UTF8]),
)
edits = st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0), payloads), min_size=1, max_size=4)


def apply_edits(frame: bytes, changes: list[tuple[Mutation, int, bytes]]) -> bytes:
    data = bytearray(frame)
    for mutate, where, payload in changes:
        if len(data) > 8:  # keep the header prefix that chose the schema
            mutate(data, 8 + where % (len(data) - 8), payload)
    return bytes(data)
