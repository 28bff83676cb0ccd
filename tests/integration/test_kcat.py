"""kcat (librdkafka's command-line client) against the gateway.

kcat prints empty and null keys and values alike, so null/empty distinctions
are left to test_confluent.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not on PATH")

BASE_TS = 1_700_000_000_000
# Offset, key, value, headers, timestamp: one line per record.
FORMAT = "%o|%k|%s|%h|%T\\n"


def kcat(bootstrap: str, *args: str, stdin: str | None = None) -> str:
    assert KCAT is not None
    done = subprocess.run([KCAT, "-b", bootstrap, "-q", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, f"kcat {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def consume(bootstrap: str, topic: str, *args: str) -> list[str]:
    """Records printed as FORMAT, from the beginning unless args say otherwise."""
    return kcat(bootstrap, "-C", "-t", topic, "-e", "-f", FORMAT, *args).splitlines()


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions)]).values():
        future.result(timeout=30)


def produce_timed(bootstrap: str, topic: str, count: int) -> None:
    """Records "v0".."v<count-1>" with key k<i>, two headers and CreateTime BASE_TS + 1000 * i."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i, key=b"k%d" % i, partition=0, timestamp=BASE_TS + 1000 * i,
                         headers=[("n", b"%d" % i), ("n", b"again")])
    assert producer.flush(30) == 0
    producer.close()


def timed_line(i: int) -> str:
    return f"{i}|k{i}|v{i}|n={i},n=again|{BASE_TS + 1000 * i}"


def test_metadata_lists_gateway_and_topics(bootstrap: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 3)
    listing = kcat(bootstrap, "-L")
    assert f"broker 0 at {bootstrap} (controller)" in listing
    assert f'topic "{topic_name}" with 3 partitions:' in listing
    metadata: dict[str, Any] = json.loads(kcat(bootstrap, "-L", "-J", "-t", topic_name))
    # Other tests' gateways on the same Redis may be in the cluster too.
    assert {"id": 0, "name": bootstrap} in metadata["brokers"]
    brokers = {broker["id"] for broker in metadata["brokers"]}
    (topic,) = metadata["topics"]
    assert topic["topic"] == topic_name
    assert [p["partition"] for p in topic["partitions"]] == [0, 1, 2]
    assert all(p["leader"] in brokers and p["replicas"] == [{"id": p["leader"]}]
               for p in topic["partitions"])


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_and_consume(bootstrap: str, topic_name: str, codec: str) -> None:
    lines = [f"key{i}:value {i} " + "x" * i for i in range(50)]
    kcat(bootstrap, "-P", "-t", topic_name, "-z", codec, "-K:", "-H", "h=1", "-H", "h=2", "-H", "other=ü",
         stdin="\n".join(lines) + "\n")
    printed = kcat(bootstrap, "-C", "-t", topic_name, "-e", "-f", "%p|%o|%k|%s|%h\\n").splitlines()
    assert printed == [f"0|{i}|key{i}|value {i} " + "x" * i + "|h=1,h=2,other=ü" for i in range(50)]


def test_consume_records_from_confluent_kafka(bootstrap: str, topic_name: str) -> None:
    produce_timed(bootstrap, topic_name, 5)
    assert consume(bootstrap, topic_name) == [timed_line(i) for i in range(5)]


def test_consume_partitions(bootstrap: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name, 2)
    for partition in (0, 1):
        kcat(bootstrap, "-P", "-t", topic_name, "-p", str(partition), stdin=f"a{partition}\nb{partition}\n")
    assert kcat(bootstrap, "-C", "-t", topic_name, "-p", "1", "-e", "-f", "%p %o %s\\n").splitlines() == [
        "1 0 a1", "1 1 b1"]
    both = kcat(bootstrap, "-C", "-t", topic_name, "-e", "-f", "%p %o %s\\n").splitlines()
    assert sorted(both) == ["0 0 a0", "0 1 b0", "1 0 a1", "1 1 b1"]


@pytest.mark.parametrize(
    ("offset", "first"),
    [("beginning", 0), ("3", 3), ("-2", 8), ("end", 10)],
    ids=["beginning", "absolute", "relative-to-end", "end"],
)
def test_start_offsets(bootstrap: str, topic_name: str, offset: str, first: int) -> None:
    produce_timed(bootstrap, topic_name, 10)
    assert consume(bootstrap, topic_name, "-o", offset) == [timed_line(i) for i in range(first, 10)]


@pytest.mark.parametrize(
    ("timestamp", "first"),
    [(BASE_TS - 5, 0), (BASE_TS + 3000, 3), (BASE_TS + 3001, 4), (BASE_TS + 9000, 9)],
)
def test_start_at_timestamp(bootstrap: str, topic_name: str, timestamp: int, first: int) -> None:
    produce_timed(bootstrap, topic_name, 10)
    assert consume(bootstrap, topic_name, "-o", f"s@{timestamp}") == [timed_line(i) for i in range(first, 10)]


def test_stop_at_timestamp(bootstrap: str, topic_name: str) -> None:
    produce_timed(bootstrap, topic_name, 10)
    lines = consume(bootstrap, topic_name, "-o", f"s@{BASE_TS + 2000}", "-o", f"e@{BASE_TS + 5000}")
    assert lines == [timed_line(i) for i in range(2, 5)]
