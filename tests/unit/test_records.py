"""Record batch codec: round trips, interop with real client codecs, hostile input.

Interop is checked against kafka-python's own v2 batch builder and reader
(``kafka.record.default_records``), whose compressed variants need the
python-snappy, lz4 and zstandard packages; a codec whose library is missing
is skipped with a reason, never silently passed.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import cramjam
import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from kafka_redis_gateway.protocol import compression as compression_module
from kafka_redis_gateway.protocol.compression import CodecError, compress, decompress
from kafka_redis_gateway.protocol.records import (
    CORRUPT_MESSAGE,
    INVALID_RECORD,
    UNSUPPORTED_COMPRESSION_TYPE,
    UNSUPPORTED_FOR_MESSAGE_FORMAT,
    BatchHeader,
    Compression,
    Record,
    RecordError,
    TimestampType,
    _read_varint,
    _varint,
    decode_batches,
    encode_batch,
    records_size_hint,
)

kafka_codec = pytest.importorskip("kafka.codec")
default_records = pytest.importorskip("kafka.record.default_records")

ALL_CODECS = list(Compression)
COMPRESSED = [codec for codec in Compression if codec != Compression.NONE]
_KAFKA_PYTHON_HAS = {
    Compression.NONE: lambda: True,
    Compression.GZIP: kafka_codec.has_gzip,
    Compression.SNAPPY: kafka_codec.has_snappy,
    Compression.LZ4: kafka_codec.has_lz4,
    Compression.ZSTD: kafka_codec.has_zstd,
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def needs_kafka_python_codec(codec: Compression) -> None:
    if not _KAFKA_PYTHON_HAS[codec]():
        pytest.skip(f"kafka-python has no {codec.name} codec here (pip install python-snappy lz4 zstandard)")


def fix_crc(batch: bytearray, start: int = 0) -> bytearray:
    """Recompute the CRC of the batch at ``start`` after a deliberate edit."""
    (length,) = struct.unpack_from(">i", batch, start + 8)
    end = start + 12 + length
    struct.pack_into(">I", batch, start + 17, crc32c(bytes(batch[start + 21 : end])))
    return batch


def set_attributes(batch: bytes, attributes: int) -> bytearray:
    edited = bytearray(batch)
    struct.pack_into(">h", edited, 21, attributes)
    return fix_crc(edited)


def replace_body(batch: bytes, body: bytes, attributes: int | None = None) -> bytearray:
    """The same header over a different records section, length and CRC fixed."""
    edited = bytearray(batch[:61]) + body
    struct.pack_into(">i", edited, 8, len(edited) - 12)
    if attributes is not None:
        struct.pack_into(">h", edited, 21, attributes)
    return fix_crc(edited)


def error_code(data: bytes | bytearray, **kwargs: Any) -> int:
    with pytest.raises(RecordError) as info:
        decode_batches(bytes(data), **kwargs)
    return info.value.error_code


def sample_records() -> list[Record]:
    """Every awkward shape at once: nulls, empties, headers, backwards time."""
    return [
        Record(1_700_000_000_500, b"key-1", b"value-1" * 20, (("trace", b"abc"),)),
        Record(1_700_000_000_000, None, b"null key, earlier timestamp" * 5, ()),
        Record(1_700_000_000_100, b"key-3", None, (("a", None), ("b", b""), ("ünï", b"\x00\xff"))),
        Record(1_699_999_000_000, b"", b"", ()),
        Record(1_700_000_900_000, b"k" * 300, b"v" * 20_000, (("big", b"h" * 9000),)),
    ]


def kafka_python_build(
    records: Sequence[Record],
    codec: Compression,
    *,
    producer: tuple[int, int, int] = (-1, -1, -1),
    transactional: bool = False,
) -> bytes:
    builder = default_records.DefaultRecordBatchBuilder(
        magic=2,
        compression_type=int(codec),
        is_transactional=transactional,
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=producer[2],
        batch_size=1 << 24,
    )
    for offset, (timestamp, key, value, headers) in enumerate(records):
        assert builder.append(offset, timestamp, key, value, list(headers)) is not None
    return bytes(builder.build())


def kafka_python_read(data: bytes) -> tuple[Any, list[tuple[int, int, Record]]]:
    batch = default_records.DefaultRecordBatch(data)
    assert batch.validate_crc()
    rows = [
        (r.offset, r.timestamp_type, Record(r.timestamp, r.key, r.value, tuple(r.headers))) for r in batch
    ]
    return batch, rows


# ---------------------------------------------------------------------------
# Strategies

timestamps = st.integers(min_value=-(2**40), max_value=2**42)
header_values = st.none() | st.binary(max_size=40)
headers = st.lists(st.tuples(st.text(max_size=12), header_values), max_size=3).map(tuple)
records_strategy = st.lists(
    st.builds(
        Record,
        timestamps,
        st.none() | st.binary(max_size=60),
        st.none() | st.binary(max_size=300),
        headers,
    ),
    min_size=1,
    max_size=40,
)


# ---------------------------------------------------------------------------
# Round trips


@FUZZ
@given(
    records=records_strategy,
    codec=st.sampled_from(ALL_CODECS),
    base_offset=st.integers(0, 2**62),
    producer=st.tuples(st.integers(-1, 2**62), st.integers(-1, 2**15 - 1), st.integers(-1, 2**31 - 1)),
    leader_epoch=st.integers(-1, 2**31 - 1),
)
def test_round_trip(
    records: list[Record],
    codec: Compression,
    base_offset: int,
    producer: tuple[int, int, int],
    leader_epoch: int,
) -> None:
    data = encode_batch(
        base_offset,
        records,
        compression=codec,
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=producer[2],
        partition_leader_epoch=leader_epoch,
    )
    [(header, decoded)] = decode_batches(data)
    assert decoded == records
    assert all(type(record) is Record for record in decoded)
    assert header == BatchHeader(
        base_offset=base_offset,
        batch_length=len(data) - 12,
        partition_leader_epoch=leader_epoch,
        magic=2,
        crc=header.crc,
        attributes=int(codec),
        last_offset_delta=len(records) - 1,
        base_timestamp=records[0].timestamp,
        max_timestamp=max(r.timestamp for r in records),
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=producer[2],
        record_count=len(records),
    )
    assert header.compression is codec
    assert header.timestamp_type is TimestampType.CREATE_TIME
    assert not header.is_transactional and not header.is_control
    assert records_size_hint(records) >= len(encode_batch(base_offset, records))


@FUZZ
@given(batches=st.lists(st.tuples(records_strategy, st.sampled_from(ALL_CODECS)), min_size=1, max_size=4))
def test_several_batches_back_to_back(batches: list[tuple[list[Record], Compression]]) -> None:
    data = b""
    offset = 0
    for records, codec in batches:
        data += encode_batch(offset, records, compression=codec)
        offset += len(records)
    decoded = decode_batches(memoryview(data))
    assert [records for _, records in decoded] == [records for records, _ in batches]
    assert [header.compression for header, _ in decoded] == [codec for _, codec in batches]


def test_log_append_time_overrides_every_timestamp() -> None:
    records = sample_records()
    data = encode_batch(
        7, records, timestamp_type=TimestampType.LOG_APPEND_TIME, log_append_time=1_800_000_000_000
    )
    [(header, decoded)] = decode_batches(data)
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert header.max_timestamp == 1_800_000_000_000
    assert header.base_timestamp == records[0].timestamp
    assert [r.timestamp for r in decoded] == [1_800_000_000_000] * len(records)
    assert [r[1:] for r in decoded] == [r[1:] for r in records]


def test_encode_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        encode_batch(0, [])
    with pytest.raises(ValueError):
        encode_batch(0, sample_records(), timestamp_type=TimestampType.LOG_APPEND_TIME)


def test_wide_varints_and_many_records() -> None:
    # Past the 2-byte varint tables on every field: >8191 records (offset
    # deltas), huge timestamp deltas both ways, long keys, values, headers.
    records = [Record(10**12 + (i % 7) * 10**9 - 3 * 10**9, b"k", b"v", ()) for i in range(9000)]
    records[100] = Record(-(2**40), b"k" * 70_000, b"v" * 200_000, (("h" * 9000, b"x" * 70_000),))
    data = encode_batch(0, records)
    [(header, decoded)] = decode_batches(data)
    assert decoded == records
    assert header.last_offset_delta == 8999
    _, rows = kafka_python_read(data)
    assert [offset for offset, _, _ in rows] == list(range(9000))
    assert [record for _, _, record in rows] == records


@given(st.integers(-(2**63), 2**63 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = _varint(value)
    assert len(encoded) <= 10
    assert _read_varint(encoded + b"\x00", 0, 10) == (value, len(encoded))


# ---------------------------------------------------------------------------
# Interop with kafka-python


@pytest.mark.parametrize("codec", ALL_CODECS, ids=lambda c: c.name)
def test_decodes_kafka_python_batches(codec: Compression) -> None:
    needs_kafka_python_codec(codec)
    records = sample_records()
    data = kafka_python_build(records, codec, producer=(4242, 3, 17))
    [(header, decoded)] = decode_batches(data)
    assert header.compression is codec, "kafka-python fell back to no compression"
    assert decoded == records
    assert header.base_timestamp == records[0].timestamp
    assert header.max_timestamp == max(r.timestamp for r in records)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (4242, 3, 17)
    assert header.last_offset_delta == len(records) - 1


def test_decodes_kafka_python_transactional_batch() -> None:
    data = kafka_python_build(sample_records(), Compression.NONE, producer=(9, 1, 0), transactional=True)
    [(header, decoded)] = decode_batches(data)
    assert header.is_transactional and not header.is_control
    assert decoded == sample_records()


@pytest.mark.parametrize("codec", ALL_CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("timestamp_type", list(TimestampType), ids=lambda t: t.name)
def test_kafka_python_reads_our_batches(codec: Compression, timestamp_type: TimestampType) -> None:
    needs_kafka_python_codec(codec)
    records = sample_records()
    data = encode_batch(
        1000,
        records,
        compression=codec,
        timestamp_type=timestamp_type,
        producer_id=77,
        producer_epoch=2,
        base_sequence=5,
        partition_leader_epoch=9,
        log_append_time=1_800_000_000_000,
    )
    batch, rows = kafka_python_read(data)
    assert batch.compression_type == codec
    assert batch.timestamp_type == timestamp_type
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (77, 2, 5)
    assert batch.leader_epoch == 9
    assert batch.next_offset == 1000 + len(records)
    assert [offset for offset, _, _ in rows] == list(range(1000, 1000 + len(records)))
    assert {kind for _, kind, _ in rows} == {timestamp_type}
    if timestamp_type is TimestampType.CREATE_TIME:
        assert [record for _, _, record in rows] == records
    else:
        assert [record.timestamp for _, _, record in rows] == [1_800_000_000_000] * len(records)
        assert [record[1:] for _, _, record in rows] == [record[1:] for record in records]


@settings(max_examples=100, deadline=None)
@given(records=records_strategy, codec=st.sampled_from(ALL_CODECS))
def test_kafka_python_agrees_on_random_batches(records: list[Record], codec: Compression) -> None:
    assume(_KAFKA_PYTHON_HAS[codec]())
    _, rows = kafka_python_read(encode_batch(0, records, compression=codec))
    assert [record for _, _, record in rows] == records
    assert decode_batches(kafka_python_build(records, codec))[0][1] == records


def test_kio_reads_our_batches() -> None:
    readers = pytest.importorskip("kio.records.readers")
    records = [Record(1_700_000_000_000 + i * 1000, b"k%d" % i, b"v" * i, (("h", b"x"),)) for i in range(50)]
    data = encode_batch(5, records, producer_id=1, producer_epoch=0, base_sequence=0)
    batch, size = readers.read_batch(data, 0)
    assert size == len(data)
    assert [r.value for r in batch.records] == [r.value for r in records]
    assert [int(r.offset) for r in batch.records] == list(range(5, 55))


def test_snappy_is_xerial_framed_and_raw_snappy_is_accepted() -> None:
    records = sample_records()
    data = encode_batch(0, records, compression=Compression.SNAPPY)
    body = data[61:]
    assert body.startswith(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")
    plain = encode_batch(0, records)[61:]
    assert decompress(Compression.SNAPPY, body, 1 << 20) == plain
    # librdkafka may send one bare snappy block instead of xerial framing.
    raw = replace_body(data, bytes(cramjam.snappy.compress_raw(plain)))
    assert decode_batches(bytes(raw))[0][1] == records
    # Several xerial blocks, as a Java producer writes for larger batches.
    if kafka_codec.has_snappy():
        assert kafka_codec.snappy_decode(body) == plain
        framed = kafka_codec.snappy_encode(plain, xerial_compatible=True, xerial_blocksize=1024)
        assert decode_batches(bytes(replace_body(data, framed)))[0][1] == records


def test_gzip_with_several_members() -> None:
    # A concatenated gzip stream is valid gzip; Java's GZIPInputStream reads it.
    plain = encode_batch(0, sample_records())
    body = plain[61:]
    half = len(body) // 2
    two_members = gzip.compress(body[:half]) + gzip.compress(body[half:])
    assert decode_batches(bytes(replace_body(plain, two_members, 1)))[0][1] == sample_records()


def test_zstd_frame_without_content_size() -> None:
    # Java's zstd-jni streams, so its frames do not declare their size.
    zstandard = pytest.importorskip("zstandard")
    plain = encode_batch(0, sample_records())
    compressor = zstandard.ZstdCompressor().compressobj()
    streamed = compressor.compress(plain[61:]) + compressor.flush()
    assert decode_batches(bytes(replace_body(plain, streamed, 4)))[0][1] == sample_records()


def test_lz4_frame_with_content_size_and_checksums() -> None:
    # liblz4 (librdkafka) may set every optional frame field.
    lz4_frame = pytest.importorskip("lz4.frame")
    plain = encode_batch(0, sample_records())
    framed = lz4_frame.compress(plain[61:], content_checksum=True, block_checksum=True, store_size=True)
    assert decode_batches(bytes(replace_body(plain, framed, 3)))[0][1] == sample_records()


def test_lz4_frames_have_independent_blocks() -> None:
    frame = compress(Compression.LZ4, b"x" * 300_000)
    assert frame[:4] == b"\x04\x22\x4d\x18"
    assert frame[4] & 0x20, "Kafka's Java reader needs the block-independence flag"


# ---------------------------------------------------------------------------
# Hostile and broken input


def test_empty_input_is_no_batches() -> None:
    assert decode_batches(b"") == []


def test_every_flipped_byte_under_the_crc_is_corrupt() -> None:
    data = encode_batch(0, sample_records()[:3])
    for position in range(17, len(data)):
        flipped = bytearray(data)
        flipped[position] ^= 0x40
        assert error_code(flipped) == CORRUPT_MESSAGE, position


def test_every_truncation_is_corrupt() -> None:
    data = encode_batch(0, sample_records()[:3], compression=Compression.GZIP)
    for size in range(1, len(data)):
        assert error_code(data[:size]) == CORRUPT_MESSAGE, size
    # A complete batch followed by a partial one (allowed in fetch
    # responses, not in produce input).
    assert error_code(data + data[:40]) == CORRUPT_MESSAGE


def test_wrong_batch_length_is_corrupt() -> None:
    data = bytearray(encode_batch(0, sample_records()[:2]))
    for length in (-1, 0, 48, len(data) - 13, len(data)):
        struct.pack_into(">i", data, 8, length)
        assert error_code(data) == CORRUPT_MESSAGE, length


@pytest.mark.parametrize("magic", [0, 1])
def test_old_message_formats_are_unsupported(magic: int) -> None:
    legacy = pytest.importorskip("kafka.record.legacy_records")
    builder = legacy.LegacyRecordBatchBuilder(magic=magic, compression_type=0, batch_size=1 << 20)
    builder.append(0, timestamp=1_700_000_000_000 if magic else None, key=b"k", value=b"v")
    assert error_code(bytes(builder.build())) == UNSUPPORTED_FOR_MESSAGE_FORMAT
    # Also when the old message set follows a valid v2 batch.
    v2 = encode_batch(0, sample_records()[:1])
    assert error_code(v2 + bytes(builder.build())) == UNSUPPORTED_FOR_MESSAGE_FORMAT


@pytest.mark.parametrize("magic", [3, 0x7F, 0xFF])
def test_unknown_magic_is_corrupt(magic: int) -> None:
    data = bytearray(encode_batch(0, sample_records()[:1]))
    data[16] = magic
    assert error_code(data) == CORRUPT_MESSAGE


@pytest.mark.parametrize("codec_id", [5, 6, 7])
def test_unknown_codec_is_unsupported(codec_id: int) -> None:
    data = encode_batch(0, sample_records()[:2])
    assert error_code(set_attributes(data, codec_id)) == UNSUPPORTED_COMPRESSION_TYPE
    assert error_code(set_attributes(data, codec_id | 0x18)) == UNSUPPORTED_COMPRESSION_TYPE


@pytest.mark.parametrize("delta", [-1, +1, +1000, 2**31 - 6])
def test_record_count_mismatch_is_invalid_record(delta: int) -> None:
    records = sample_records()
    data = bytearray(encode_batch(0, records))
    struct.pack_into(">i", data, 57, len(records) + delta)
    assert error_code(fix_crc(data)) == INVALID_RECORD


def test_negative_record_count_is_corrupt() -> None:
    data = bytearray(encode_batch(0, sample_records()))
    struct.pack_into(">i", data, 57, -1)
    assert error_code(fix_crc(data)) == CORRUPT_MESSAGE


def record_batch(*raw_records: bytes, count: int | None = None) -> bytes:
    """A batch around hand-written record bytes (each without its length)."""
    template = encode_batch(0, [Record(0, None, None, ())])
    body = b"".join(_varint(len(raw)) + raw for raw in raw_records)
    edited = replace_body(template, body)
    struct.pack_into(">i", edited, 57, len(raw_records) if count is None else count)
    return bytes(fix_crc(edited))


def test_hand_written_record_is_accepted() -> None:
    # attributes, ts delta -1, offset 0, key "ab", null value, one header
    raw = b"\x00\x01\x00\x04ab\x01\x02\x02h\x00"
    [(_, [record])] = decode_batches(record_batch(raw))
    assert record == Record(-1, b"ab", None, (("h", b""),))


# Records inside a batch with a correct CRC that the record format refuses
# (CORRUPT_MESSAGE): the Python decoder's cases here, and append.lua's, which
# must refuse the same (tests/integration/test_append_records.py).
MALFORMED_RECORDS = [
    pytest.param(b"\x00\x00\x00\x04ab\x01\x00\xff", id="record-longer-than-fields"),
    pytest.param(b"\x00\x00\x00\x04ab\x01", id="record-shorter-than-fields"),
    pytest.param(b"\x00\x00\x00\x03ab\x01\x00", id="negative-key-length-not-minus-one"),
    pytest.param(b"\x00\x00\x00\x00\x05\x00", id="negative-value-length-not-minus-one"),
    pytest.param(b"\x00\x00\x00\x00\x00\x01", id="negative-header-count"),
    pytest.param(b"\x00\x00\x00\x00\x00\x02\x01\x00", id="null-header-key"),
    pytest.param(b"\x00\x00\x00\x00\x00\x04\x03\x00\x00\x00\x00", id="null-key-of-two-headers"),
    pytest.param(b"\x00\x00\x00\x00\x00\x02\x04\xff\xfe\x00", id="header-key-not-utf8"),
    pytest.param(b"\x00\x00\x00\x00\x00\x04\x02h\x00\x04\xc3\x28\x00", id="second-header-key-not-utf8"),
    pytest.param(b"\x00\x00\x00\x00\x00\x7e" + b"\x00" * 10, id="header-count-too-large"),
    pytest.param(b"\x00" + b"\xff" * 10 + b"\x00\x00\x00\x00\x00", id="varlong-too-long"),
    pytest.param(b"\x00\x00" + b"\xff" * 5 + b"\x00\x00\x00\x00", id="varint-too-long"),
    pytest.param(b"\x00\x00\x00\x00\x7f\x00", id="value-length-minus-64"),
    pytest.param(b"\x00\x00\x00\x00\x7e\x00", id="value-longer-than-record"),
    pytest.param(b"\x00\x00\x00\x00\x00\x02\x04\xed\xa0\x00", id="header-key-surrogate"),
    pytest.param(b"\x00\x00\x00\x00\x00\x02\x04\xc0\xaf\x00", id="header-key-overlong"),
    # append.lua's fast path (two-byte lengths, null key): each way out of it.
    pytest.param(b"\x00\x00\x00\x01\xc8\x01" + b"v" * 100 + b"\x02", id="fast-value-then-a-bad-header"),
    pytest.param(b"\x00\x00\x00\x01\xc8\x01" + b"v" * 99 + b"\x00", id="fast-value-short-by-one"),
    pytest.param(b"\x00\x00\x00\x01\xc9\x01" + b"v" * 100 + b"\x00", id="fast-odd-value-length"),
    pytest.param(b"\x00\x00\x00\x01\xc8\x01" + b"v" * 100 + b"\x00\x00", id="fast-trailing-byte"),
    pytest.param(b"\x00\x00\x00\x04ab\x0a" + b"v" * 3 + b"\x00", id="short-key-then-value-cut"),
    pytest.param(b"\x00\x00\x00\x04ab\x01\x02", id="short-null-value-then-a-missing-header"),
    pytest.param(b"\x00\x00\x00\x04ab\x03\x00", id="short-key-then-value-length-minus-two"),
]


@pytest.mark.parametrize("raw", MALFORMED_RECORDS)
def test_malformed_records_are_corrupt(raw: bytes) -> None:
    assert error_code(record_batch(raw)) == CORRUPT_MESSAGE


def test_record_length_past_the_end_is_corrupt() -> None:
    template = encode_batch(0, [Record(0, None, None, ())])
    body = b"\x7e\x00\x00\x00\x00\x00\x00"  # claims 63 bytes, has 6
    assert error_code(replace_body(template, body)) == CORRUPT_MESSAGE


def test_last_field_past_the_end_is_corrupt() -> None:
    # The record length agrees with its fields, but the header value it
    # declares (10 bytes) is cut short at the end of the records section.
    template = encode_batch(0, [Record(0, None, None, ())])
    raw = b"\x00\x00\x00\x01\x01\x02\x02h\x14ab"
    body = _varint(len(raw) + 8) + raw
    assert error_code(replace_body(template, body)) == CORRUPT_MESSAGE


def test_bytes_after_the_declared_records_are_invalid() -> None:
    good = b"\x00\x00\x00\x01\x01\x00"
    assert error_code(record_batch(good, good, count=1)) == INVALID_RECORD
    assert decode_batches(record_batch(good, good))[0][1] == [Record(0, None, None, ())] * 2


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name)
def test_decompression_bomb_is_refused(codec: Compression) -> None:
    # 8 MiB of one repeated record compresses to a few KiB.
    records = [Record(0, None, b"\x00" * 8000, ())] * 1000
    data = encode_batch(0, records, compression=codec)
    assert len(data) < 600_000
    assert error_code(data, max_uncompressed=1 << 20) == CORRUPT_MESSAGE
    # The default limit lets it through: output buffers grow past guesses.
    assert decode_batches(data)[0][1] == records
    # The limit covers the whole call, not each batch.
    assert len(decode_batches(data, max_uncompressed=9 << 20)) == 1
    assert error_code(data + data, max_uncompressed=9 << 20) == CORRUPT_MESSAGE


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name)
def test_corrupt_compressed_body_is_corrupt(codec: Compression) -> None:
    data = encode_batch(0, sample_records(), compression=codec)
    for body in (b"", b"\x00", b"not compressed at all", data[61:-5], data[61:] + b"\x00" * 3):
        code = None
        try:
            decode_batches(bytes(replace_body(data, body)))
        except RecordError as exc:
            code = exc.error_code
        assert code in (CORRUPT_MESSAGE, INVALID_RECORD), body[:20]


def test_codec_errors_are_codec_errors() -> None:
    assert compress(Compression.NONE, b"abc") == decompress(Compression.NONE, b"abc", 0) == b"abc"
    with pytest.raises(CodecError):
        decompress(Compression.SNAPPY, b"\x82SNAPPY\x00\x00\x00", 100)
    with pytest.raises(CodecError):
        decompress(Compression.GZIP, zlib.compress(b"zlib, not gzip"), 1 << 20)
    with pytest.raises(CodecError):
        decompress(Compression.SNAPPY, b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x7f\xff\xff\xff", 100)
    with pytest.raises(CodecError):
        decompress(Compression.ZSTD, compress(Compression.ZSTD, b"a" * 1000), 999)
    assert decompress(Compression.ZSTD, compress(Compression.ZSTD, b"a" * 1000), 1000) == b"a" * 1000


def test_cramjam_still_reports_full_buffers_the_way_we_detect() -> None:
    # compression._bounded_into relies on this message to tell "grow the
    # buffer" from "corrupt"; if cramjam changes it, fail here, loudly.
    out = bytearray(10)
    with pytest.raises(cramjam.DecompressionError, match=compression_module._OUTPUT_FULL):
        cramjam.zstd.decompress_into(bytes(cramjam.zstd.compress(b"a" * 1000)), out)
    with pytest.raises(cramjam.DecompressionError, match=compression_module._OUTPUT_FULL):
        cramjam.lz4.decompress_into(compress(Compression.LZ4, b"a" * 1000), out)


# ---------------------------------------------------------------------------
# Fuzzing: nothing but RecordError may escape decode_batches


def decode_or_record_error(data: bytes) -> None:
    try:
        decode_batches(data, max_uncompressed=1 << 20)
    except RecordError as exc:
        assert exc.error_code in (
            CORRUPT_MESSAGE,
            UNSUPPORTED_FOR_MESSAGE_FORMAT,
            UNSUPPORTED_COMPRESSION_TYPE,
            INVALID_RECORD,
        )


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    decode_or_record_error(data)


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 2**31 - 1), st.integers(-(2**15), 2**15 - 1))
def test_fuzz_random_records_section_with_valid_crc(body: bytes, count: int, attributes: int) -> None:
    # A valid header and CRC around random bytes reaches the record parser
    # and the decompressors, which a random CRC almost never would.
    template = encode_batch(0, [Record(0, None, None, ())])
    edited = replace_body(template, body, attributes)
    struct.pack_into(">i", edited, 57, count % 64 if count % 2 else count)
    decode_or_record_error(bytes(fix_crc(edited)))


mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
    st.integers(0),
    st.binary(min_size=1, max_size=8),
)


@FUZZ
@given(
    records=st.lists(
        st.builds(
            Record,
            timestamps,
            st.none() | st.binary(max_size=20),
            st.none() | st.binary(max_size=40),
            headers,
        ),
        min_size=1,
        max_size=5,
    ),
    codec=st.sampled_from(ALL_CODECS),
    mutations=st.lists(mutation, min_size=1, max_size=4),
    recompute_crc=st.booleans(),
)
def test_fuzz_mutated_valid_batches(
    records: list[Record], codec: Compression, mutations: list[tuple[str, int, bytes]], recompute_crc: bool
) -> None:
    data = bytearray(encode_batch(0, records, compression=codec))
    for kind, where, payload in mutations:
        position = where % len(data)
        if kind == "flip":
            data[position] ^= payload[0] or 1
        elif kind == "set":
            data[position : position + len(payload)] = payload
        elif kind == "insert":
            data[position:position] = payload
        elif kind == "delete":
            del data[position : position + len(payload)]
        else:
            del data[position:]
        if not data:
            return
    if recompute_crc and len(data) >= 61:
        struct.pack_into(">i", data, 8, len(data) - 12)
        fix_crc(data)
    decode_or_record_error(bytes(data))
