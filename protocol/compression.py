"""Compression codecs of Kafka record batches (magic v2).

The records section of a batch (everything after the 61-byte header) is
compressed as a whole with the codec named by the low three bits of the batch
attributes. Wire formats, as Kafka's Java client writes and reads them:

* GZIP: a gzip stream (RFC 1952), possibly several members back to back.
* SNAPPY: the Java client writes xerial-framed snappy (a 16-byte header and
  then blocks of ``[int32 length][raw snappy]``); librdkafka may send a bare
  raw snappy block. Decoding accepts both, encoding writes xerial framing
  because the Java consumer cannot read anything else.
* LZ4: the standard LZ4 frame format with independent blocks.
* ZSTD: a standard zstd frame (or several).

Every decompressor is bounded: a few hundred bytes of zstd or gzip can expand
to gigabytes, so output is never allowed to grow past the caller's limit.
Nothing here knows about record batches beyond the codec ids.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Callable

import cramjam

__all__ = [
    "CodecError",
    "Compression",
    "compress",
    "decompress",
]


class Compression(enum.IntEnum):
    """Codec ids as stored in bits 0-2 of the batch attributes."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class CodecError(Exception):
    """Compressed data is corrupt, or it expands beyond the allowed size.

    The record layer maps this to Kafka's CORRUPT_MESSAGE; it is a separate
    class so that this module stays independent of the record codec.
    """


# Xerial framing: magic, then big-endian int32 version and compatible-version.
# Readers (Kafka's Java client, kafka-python, librdkafka) only check the magic,
# because some producers are known to write the two ints little-endian.
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_HEADER_SIZE = len(_XERIAL_HEADER)
# The xerial library's default block size; each block is compressed alone.
_XERIAL_BLOCK = 32 * 1024
_BLOCK_LENGTH = struct.Struct(">i")

# Kafka's own defaults: gzip level 6 (java.util.zip default), zstd level 3.
_GZIP_LEVEL = 6
_ZSTD_LEVEL = 3

# First guess for the output buffer of the LZ4 and zstd decoders, which must
# be handed a buffer up front. Grown geometrically up to the limit.
_MIN_GUESS = 64 * 1024
_GUESS_RATIO = 16
_GROWTH = 4

# cramjam reports "the output buffer is full" with the message of Rust's
# io::ErrorKind::WriteZero. Anything else is corrupt input. A test pins this.
_OUTPUT_FULL = "failed to write whole buffer"


def compress(codec: Compression, data: bytes | bytearray | memoryview) -> bytes:
    """Compress a records section with ``codec``."""
    if codec == Compression.NONE:
        return bytes(data)
    if codec == Compression.GZIP:
        return bytes(cramjam.gzip.compress(data, level=_GZIP_LEVEL))
    if codec == Compression.SNAPPY:
        return _xerial_encode(memoryview(data))
    if codec == Compression.LZ4:
        return _lz4_encode(data)
    if codec == Compression.ZSTD:
        return bytes(cramjam.zstd.compress(data, level=_ZSTD_LEVEL))
    raise ValueError(f"unknown compression codec {codec!r}")


def decompress(codec: Compression, data: bytes | memoryview, limit: int) -> bytes:
    """Decompress ``data``; CodecError if corrupt or longer than ``limit`` bytes."""
    if codec == Compression.NONE:
        return bytes(data)
    try:
        if codec == Compression.GZIP:
            return _gzip_decode(data, limit)
        if codec == Compression.SNAPPY:
            return _snappy_decode(memoryview(data), limit)
        if codec == Compression.LZ4:
            return _bounded_into(cramjam.lz4.decompress_into, data, limit)
        if codec == Compression.ZSTD:
            return _bounded_into(cramjam.zstd.decompress_into, data, limit)
    except (cramjam.DecompressionError, zlib.error, ValueError, OverflowError) as exc:
        # ValueError/OverflowError: cramjam rejects some malformed headers
        # (absurd declared sizes) before it starts decoding.
        raise CodecError(f"corrupt {codec.name} data: {exc}") from exc
    raise ValueError(f"unknown compression codec {codec!r}")


def _lz4_encode(data: bytes | bytearray | memoryview) -> bytes:
    # Independent blocks: Kafka's Java LZ4 stream refuses linked blocks.
    # No content checksum: older Java readers skip it without checking.
    compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
    compressor.compress(data)
    return bytes(compressor.finish())


def _xerial_encode(data: memoryview) -> bytes:
    parts = [_XERIAL_HEADER]
    for start in range(0, len(data), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK]))
        parts.append(_BLOCK_LENGTH.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _gzip_decode(data: bytes | memoryview, limit: int) -> bytes:
    # zlib's max_length caps the output of each call, so a bomb costs at most
    # `limit` bytes of work and memory. Concatenated members are legal gzip
    # and Java's GZIPInputStream reads them, so loop over members.
    out: list[bytes] = []
    budget = limit
    rest = bytes(data)
    while True:
        inflater = zlib.decompressobj(wbits=31)
        chunk = inflater.decompress(rest, budget + 1)
        budget -= len(chunk)
        if budget < 0 or inflater.unconsumed_tail:
            raise CodecError(f"gzip data expands beyond {limit} bytes")
        if not inflater.eof:
            raise CodecError("truncated gzip data")
        out.append(chunk)
        rest = inflater.unused_data
        if not rest:
            return b"".join(out)


def _snappy_decode(data: memoryview, limit: int) -> bytes:
    if data[:8] == _XERIAL_MAGIC:
        return _xerial_decode(data, limit)
    return _raw_snappy(data, limit)


def _raw_snappy(block: memoryview, limit: int) -> bytes:
    # A raw snappy block starts with its uncompressed length, so the size
    # check costs nothing and happens before any output is allocated.
    size = cramjam.snappy.decompress_raw_len(block)
    if size > limit:
        raise CodecError(f"snappy data expands beyond {limit} bytes")
    return bytes(cramjam.snappy.decompress_raw(block))


def _xerial_decode(data: memoryview, limit: int) -> bytes:
    if len(data) < _XERIAL_HEADER_SIZE:
        raise CodecError("truncated xerial snappy header")
    out: list[bytes] = []
    budget = limit
    pos = _XERIAL_HEADER_SIZE
    end = len(data)
    while pos < end:
        if end - pos < 4:
            raise CodecError("truncated xerial snappy block length")
        (size,) = _BLOCK_LENGTH.unpack_from(data, pos)
        pos += 4
        if size < 0 or size > end - pos:
            raise CodecError("xerial snappy block overruns the data")
        chunk = _raw_snappy(data[pos : pos + size], budget)
        budget -= len(chunk)
        out.append(chunk)
        pos += size
    return b"".join(out)


def _bounded_into(
    decode_into: Callable[[bytes | memoryview, bytearray], int],
    data: bytes | memoryview,
    limit: int,
) -> bytes:
    """Decode into a buffer that grows geometrically but never past ``limit``.

    Neither the LZ4 frame nor a streamed zstd frame has to declare its
    uncompressed size, and cramjam's one-shot decoders grow without bound.
    Its ``decompress_into`` stops when the given buffer is full, so retrying
    with a larger buffer bounds both memory and work by the limit (at most
    a constant factor more work than one exact-size decode).
    """
    size = min(limit, max(_MIN_GUESS, len(data) * _GUESS_RATIO))
    while True:
        out = bytearray(size)
        try:
            written = decode_into(data, out)
        except cramjam.DecompressionError as exc:
            if _OUTPUT_FULL not in str(exc):
                raise
            if size >= limit:
                raise CodecError(f"data expands beyond {limit} bytes") from exc
            size = min(limit, size * _GROWTH)
            continue
        return bytes(memoryview(out)[:written])
