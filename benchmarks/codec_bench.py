"""Microbenchmark of the record batch codec (plain script, one core).

    python benchmarks/codec_bench.py [--batches N] [--repeat R] [--codecs]

Workload: 1000 records per batch, 10-byte keys, 100-byte values, one header
each, uncompressed. Prints records/s for encode_batch and decode_batches,
for kio's reader on the same bytes as a reference point, and a "floor": the
cost of only building the decoded objects, to compare machines by. ``--codecs``
adds the compressed variants. Each figure is the best of R timed runs, so a
noisy neighbour only lowers the worst runs."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from kafka_redis_gateway.protocol.records import (
    Compression,
    Record,
    decode_batches,
    encode_batch,
)

RECORDS_PER_BATCH = 1000


def make_records(count: int) -> list[Record]:
    base = 1_700_000_000_000
    # Random values so that compressed variants do not flatter the codec.
    value_pool = os.urandom(100 * 64)
    return [
        Record(
            base + i,
            b"key-%06d" % i,
            value_pool[(i % 64) * 100 : (i % 64) * 100 + 100],
            (("trace-id", b"%016x" % i),),
        )
        for i in range(count)
    ]


def best_rate(run: Callable[[], object], records_per_run: int, repeat: int) -> float:
    """Records per second of the fastest of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return records_per_run / best


def bench_codec(codec: Compression, batches: int, repeat: int) -> None:
    records = make_records(RECORDS_PER_BATCH)
    data = encode_batch(0, records, compression=codec)
    total = batches * RECORDS_PER_BATCH

    def encode() -> None:
        for _ in range(batches):
            encode_batch(0, records, compression=codec)

    def decode() -> None:
        for _ in range(batches):
            decode_batches(data)

    print(f"{codec.name:<6} batch {len(data):>7} bytes")
    print(f"  encode_batch    {best_rate(encode, total, repeat):>12,.0f} records/s")
    print(f"  decode_batches  {best_rate(decode, total, repeat):>12,.0f} records/s")
    if codec == Compression.NONE:
        bench_kio(data, batches, repeat)
        bench_floor(records, batches, repeat)


def bench_kio(data: bytes, batches: int, repeat: int) -> None:
    try:
        from kio.records.readers import read_batch
    except ImportError:
        print("  kio read_batch  (kio not installed)")
        return

    def decode() -> None:
        for _ in range(batches):
            read_batch(data, 0)

    total = batches * RECORDS_PER_BATCH
    print(f"  kio read_batch  {best_rate(decode, total, repeat):>12,.0f} records/s")


def bench_floor(records: list[Record], batches: int, repeat: int) -> None:
    """Only build the decoded objects (slices, header tuple, Record), no parsing.

    The ceiling for any pure-Python decoder producing these tuples on this
    machine: a yardstick for comparing figures taken on different hardware.
    """
    pool = b"".join(
        (r.key or b"") + (r.value or b"") + r.headers[0][0].encode() + (r.headers[0][1] or b"")
        for r in records
    )
    new_record = tuple.__new__

    def build() -> None:
        for _ in range(batches):
            out = []
            pos = 0
            for _ in range(RECORDS_PER_BATCH):
                header = ((pool[pos + 110 : pos + 118].decode(), pool[pos + 118 : pos + 134]),)
                out.append(
                    new_record(Record, (pos, pool[pos : pos + 10], pool[pos + 10 : pos + 110], header))
                )
                pos += 134

    total = batches * RECORDS_PER_BATCH
    print(f"  (floor: objects only) {best_rate(build, total, repeat):>6,.0f} records/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10, help="batches per timed run")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs, best is kept")
    parser.add_argument("--codecs", action="store_true", help="also time compressed batches")
    args = parser.parse_args()
    print(
        f"{RECORDS_PER_BATCH} records/batch, 10-byte keys, 100-byte values, 1 header; "
        f"{args.batches} batches x best of {args.repeat}"
    )
    codecs = list(Compression) if args.codecs else [Compression.NONE]
    for codec in codecs:
        bench_codec(codec, args.batches, args.repeat)


if __name__ == "__main__":
    main()
