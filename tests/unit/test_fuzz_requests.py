"""Fuzzing the request decoder on every advertised API and version.

Inputs (tests/fuzzing.py): random bytes after a valid header prefix, and
valid encodings of random request entities (hypothesis builds them from
kio's types), mutated: truncated, bytes flipped, lengths and array counts set
huge or negative, over-long varints, invalid UTF-8. The oracle:
``decode_request`` returns an entity or raises MalformedRequest, nothing
else (a crash of kio's compiled reader would abort the test process); the
records of a decoded Produce decode or raise RecordError; and decoding never
allocates much more than the frame's own size (a huge array count must fail
when the bytes run out, not build billions of entries first).
"""

from __future__ import annotations

import contextlib
import struct
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_redis_gateway.protocol.messages import MalformedRequest, decode_request
from kafka_redis_gateway.protocol.records import RecordError, decode_batches

from tests.fuzzing import (
    ADVERTISED,
    DECODABLE,
    PRODUCE,
    Mutation,
    apply_edits,
    edits,
    encoded,
    mutations,
    sample_request,
    schema_of,
)

# Decoding turns bytes into Python objects, which are larger than their
# encoding (an int32 in a tuple costs about 36 bytes, a one-byte flexible
# struct a dataclass instance); 300x plus a fixed allowance for kio's cached
# readers is generous for honest input and far below what a billion-entry
# array would take.
MEMORY_FACTOR = 300
MEMORY_ALLOWANCE = 512 * 1024

FUZZ = settings(max_examples=15, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
versions = pytest.mark.parametrize(("api_key", "version"), DECODABLE, ids=lambda value: str(value))


def assert_decodes_or_malformed(frame: bytes, schema: type[Any]) -> None:
    """The oracle: an entity or MalformedRequest, in memory bounded by the frame."""
    tracemalloc.start()
    try:
        try:
            _, body = decode_request(frame, schema)
        except MalformedRequest:
            body = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= MEMORY_ALLOWANCE + MEMORY_FACTOR * len(frame), (
        f"decoding {len(frame)} bytes peaked at {peak} bytes: {frame.hex()}")
    if body is not None and body.__api_key__ == PRODUCE:
        for topic in body.topic_data:
            for partition in topic.partition_data:
                if partition.records:
                    with contextlib.suppress(RecordError):
                        decode_batches(partition.records, max_uncompressed=1 << 20)


@versions
def test_every_single_mutation_of_a_valid_request(api_key: int, version: int) -> None:
    schema = schema_of(api_key, version)
    frame = sample_request(schema)
    assert decode_request(frame, schema)[1] is not None  # the template itself is valid
    for _, mutated in mutations(frame):
        assert_decodes_or_malformed(mutated, schema)


@versions
def test_random_requests_mutated(api_key: int, version: int) -> None:
    schema = schema_of(api_key, version)

    @FUZZ
    @given(entity=st.from_type(schema), changes=edits)
    def check(entity: Any, changes: list[tuple[Mutation, int, bytes]]) -> None:
        frame = encoded(entity)
        assert decode_request(frame, schema)[1] == entity  # valid encodings decode as they were
        assert_decodes_or_malformed(apply_edits(frame, changes), schema)

    check()


@versions
def test_random_bytes_after_a_valid_header_prefix(api_key: int, version: int) -> None:
    schema = schema_of(api_key, version)

    @FUZZ
    @given(st.binary(max_size=200))
    def check(body: bytes) -> None:
        assert_decodes_or_malformed(struct.pack(">hhi", api_key, version, 1) + body, schema)

    check()


def test_huge_compact_array_count_is_refused_not_fatal() -> None:
    # Found by this fuzzer: kio's compiled reader reserved memory for a
    # compact array's count before reading it and aborted the process
    # ("memory allocation of 34359738352 bytes failed") on this 27-byte
    # Produce v9 request; protocol/prescan.py now refuses it first.
    frame = bytes.fromhex("0000000900000007000466757a7a0000000000000000") + b"\xff\xff\xff\xff\x0f"
    with pytest.raises(MalformedRequest, match="elements in"):
        decode_request(frame, schema_of(PRODUCE, 9))


def test_null_array_that_is_not_nullable_is_refused() -> None:
    # kio reads a -1 count as None even where the schema does not allow
    # null; handlers iterate those arrays. CreateTopics v2 with topics = null:
    frame = struct.pack(">hhih", 19, 2, 1, -1) + struct.pack(">iib", -1, 1000, 0)
    with pytest.raises(MalformedRequest, match="not nullable"):
        decode_request(frame, schema_of(19, 2))


def test_every_advertised_version_is_fuzzed() -> None:
    # ADVERTISED is what ApiVersions advertises: if the router grows, the
    # fuzzers grow with it. Only Produce v0-v2 (advertised, refused, no
    # schema) are left to the end-to-end fuzzer, which checks the refusal.
    assert {key for key, _ in ADVERTISED} == {key for key, _ in DECODABLE}
    assert sorted(set(ADVERTISED) - set(DECODABLE)) == [(PRODUCE, 0), (PRODUCE, 1), (PRODUCE, 2)]
