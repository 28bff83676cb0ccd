"""KafkaJS (Node.js) against the gateway.

tests/js/kafkajs_roundtrip.js creates a topic, produces keyed gzip records
with headers from an idempotent producer (acks=-1), consumes them in a group
and commits; this test checks every record, offset, header and timestamp,
the committed offsets, and that KafkaJS's partitioner (Java's murmur2) put
each key where kafka-python's murmur2 says. It runs where ``node`` is on PATH
and ``npm install --prefix tests/js`` has installed KafkaJS (.ci/run does).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not (JS_DIR / "node_modules" / "kafkajs").is_dir(),
    reason="node or KafkaJS missing (npm install --prefix tests/js)")

COUNT = 500
BASE_TS = 1_700_000_000_000


def test_kafkajs_produce_group_consume_commit(bootstrap: str, topic_name: str) -> None:
    assert NODE is not None
    done = subprocess.run([NODE, str(JS_DIR / "kafkajs_roundtrip.js"), bootstrap, topic_name,
                           f"{topic_name}-group", str(COUNT)],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert all(batch["error"] == 0 for batch in result["sent"])

    received = result["received"]
    assert sorted(int(r["value"].removeprefix("value-")) for r in received) == list(range(COUNT))
    by_partition: dict[int, list[dict[str, object]]] = defaultdict(list)
    for record in received:
        i = int(record["value"].removeprefix("value-"))
        assert record["key"] == f"key-{i % 7}"
        assert record["headers"] == {"n": str(i), "kind": "kafkajs"}
        assert record["timestamp"] == BASE_TS + i
        assert record["partition"] == (murmur2(record["key"].encode()) & 0x7FFFFFFF) % 3
        by_partition[record["partition"]].append(record)
    for records in by_partition.values():
        # Dense offsets from 0, in the order produced.
        assert [r["offset"] for r in records] == list(range(len(records)))
        values = [int(str(r["value"]).removeprefix("value-")) for r in records]
        assert values == sorted(values)

    ends = {int(p["partition"]): int(p["high"]) for p in result["ends"]}
    assert ends == {p: len(by_partition[p]) for p in range(3)}  # the 7 keys cover all 3
    committed = {int(p["partition"]): int(p["offset"]) for p in result["committed"]}
    assert committed == ends
