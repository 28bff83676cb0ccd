"""Apache Kafka's own command-line tools (Java client) against the gateway.

- The Java producer enables idempotence by default (InitProducerId, then
  sequence numbers). test_default_idempotent_producer runs it that way; the
  other producing tests turn idempotence off so that they exercise the
  tools and codecs whatever the state of the idempotent producer.
- The console consumer is pointed at a partition with --partition, which
  needs no group, so these tests are about the tools and codecs; group use
  of the Java tools is in test_groups_java.py.

The console tools exit 0 even when they fail, so their output is checked.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BIN = Path("/opt/kafka-java/bin")
pytestmark = pytest.mark.skipif(not (BIN / "kafka-topics.sh").exists(), reason=f"no Kafka tools in {BIN}")

NO_IDEMPOTENCE = "enable.idempotence=false"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def tool(name: str, *args: str, stdin: str | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KAFKA_LOG_LEVEL="warn")
    return subprocess.run([str(BIN / name), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def topics(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return tool("kafka-topics.sh", "--bootstrap-server", bootstrap, *args)


def describe(bootstrap: str, topic: str) -> list[list[str]]:
    """kafka-topics --describe output, one list of tab-separated fields per line."""
    out = ok(topics(bootstrap, "--describe", "--topic", topic))
    return [line.strip().split("\t") for line in out.splitlines() if line.strip()]


def console_produce(bootstrap: str, topic: str, lines: list[str], *args: str,
                    idempotent: bool = False) -> None:
    if not idempotent:
        args = ("--producer-property", NO_IDEMPOTENCE, *args)
    done = tool("kafka-console-producer.sh", "--bootstrap-server", bootstrap, "--topic", topic, *args,
                stdin="".join(f"{line}\n" for line in lines))
    ok(done)
    assert "ERROR" not in done.stderr, done.stderr


def console_consume(bootstrap: str, topic: str, count: int, *args: str) -> list[str]:
    """Up to count records of partition 0 as the console consumer prints them."""
    done = tool("kafka-console-consumer.sh", "--bootstrap-server", bootstrap, "--topic", topic,
                "--partition", "0", "--max-messages", str(count), "--timeout-ms", "20000", *args)
    ok(done)
    assert f"Processed a total of {count} messages" in done.stderr, done.stderr
    return done.stdout.splitlines()


def create_topic(bootstrap: str, topic: str, partitions: int = 1,
                 config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, config=config or {})])
    for future in futures.values():
        future.result(timeout=30)


def end_offset(bootstrap: str, topic: str, partition: int = 0) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()
    return int(high)


KEYED = [f"key{i}:value {i}" for i in range(5)]
PARSE_KEY = ("--property", "parse.key=true", "--property", "key.separator=:")
PRINTED = [f"key{i}\tvalue {i}" for i in range(5)]
PRINT_KEY = ("--property", "print.key=true")


# -- kafka-topics ------------------------------------------------------------------


def test_topics_create_list_describe_delete(bootstrap: str, topic_name: str) -> None:
    ok(topics(bootstrap, "--create", "--topic", topic_name, "--partitions", "2",
              "--config", "retention.ms=3600000", "--config", "compression.type=lz4"))
    assert topic_name in ok(topics(bootstrap, "--list")).split()
    header, *partitions = describe(bootstrap, topic_name)
    assert header[0] == f"Topic: {topic_name}"
    assert "PartitionCount: 2" in header and "ReplicationFactor: 1" in header
    assert "Configs: compression.type=lz4,retention.ms=3600000" in header
    assert [line[1:5] for line in partitions] == [
        [f"Partition: {p}", "Leader: 0", "Replicas: 0", "Isr: 0"] for p in (0, 1)]

    ok(topics(bootstrap, "--delete", "--topic", topic_name))
    assert topic_name not in ok(topics(bootstrap, "--list")).split()
    gone = topics(bootstrap, "--describe", "--topic", topic_name)
    assert gone.returncode != 0 and "does not exist" in gone.stdout + gone.stderr


def test_topics_alter_partitions(bootstrap: str, topic_name: str) -> None:
    ok(topics(bootstrap, "--create", "--topic", topic_name, "--partitions", "1"))
    ok(topics(bootstrap, "--alter", "--topic", topic_name, "--partitions", "3"))
    header, *partitions = describe(bootstrap, topic_name)
    assert "PartitionCount: 3" in header and len(partitions) == 3
    shrink = topics(bootstrap, "--alter", "--topic", topic_name, "--partitions", "2")
    assert shrink.returncode != 0
    assert "Topic currently has 3 partitions" in shrink.stdout + shrink.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replication-factor", "3"], "The target replication factor of 3 cannot be reached"),
        (["--config", "no.such.config=1"], "Unknown topic config name: no.such.config"),
    ],
    ids=["replication-factor-3", "unknown-config"],
)
def test_topics_create_refused(bootstrap: str, topic_name: str, args: list[str], message: str) -> None:
    refused = topics(bootstrap, "--create", "--topic", topic_name, *args)
    assert refused.returncode != 0 and message in refused.stdout + refused.stderr
    assert topic_name not in ok(topics(bootstrap, "--list")).split()


def test_topics_create_existing(bootstrap: str, topic_name: str) -> None:
    ok(topics(bootstrap, "--create", "--topic", topic_name))
    again = topics(bootstrap, "--create", "--topic", topic_name)
    assert again.returncode != 0 and f"Topic '{topic_name}' already exists" in again.stdout + again.stderr


# -- console producer and consumer ------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_console_producer_and_consumer(bootstrap: str, topic_name: str, codec: str) -> None:
    create_topic(bootstrap, topic_name)
    console_produce(bootstrap, topic_name, KEYED, "--compression-codec", codec, *PARSE_KEY)
    printed = console_consume(bootstrap, topic_name, 5, "--from-beginning", *PRINT_KEY)
    assert printed == PRINTED


@pytest.mark.parametrize(
    ("start", "expected"),
    [(["--offset", "earliest"], PRINTED), (["--offset", "3"], PRINTED[3:])],
    ids=["earliest", "offset-3"],
)
def test_console_consumer_offsets(bootstrap: str, topic_name: str, start: list[str],
                                  expected: list[str]) -> None:
    create_topic(bootstrap, topic_name)
    console_produce(bootstrap, topic_name, KEYED, *PARSE_KEY)
    assert console_consume(bootstrap, topic_name, len(expected), *start, *PRINT_KEY) == expected


def test_console_headers_offsets_timestamps(bootstrap: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name)
    console_produce(bootstrap, topic_name, ["h:1,h:2,x:y\tk1|v1", "h:3\tk2|v2 with spaces"],
                    "--property", "parse.key=true", "--property", "key.separator=|",
                    "--property", "parse.headers=true")
    printing = [f"--property=print.{what}=true" for what in ("key", "headers", "offset", "timestamp")]
    printed = console_consume(bootstrap, topic_name, 2, "--offset", "earliest", *printing)
    fields = [line.split("\t") for line in printed]
    assert [line[1:] for line in fields] == [
        ["Offset:0", "h:1,h:2,x:y", "k1", "v1"],
        ["Offset:1", "h:3", "k2", "v2 with spaces"],
    ]
    assert all(line[0].startswith("CreateTime:") for line in fields)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_console_consumer_reads_gateway_compression(bootstrap: str, topic_name: str, codec: str) -> None:
    """The gateway compresses fetches as compression.type says; Java must read its framing."""
    create_topic(bootstrap, topic_name, config={"compression.type": codec})
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "none"})
    for i in range(200):
        producer.produce(topic_name, key=f"key{i}", value=f"value {i} " + "z" * (i % 50), partition=0)
    assert producer.flush(30) == 0
    producer.close()
    printed = console_consume(bootstrap, topic_name, 200, "--offset", "earliest", *PRINT_KEY)
    assert printed == [f"key{i}\tvalue {i} " + "z" * (i % 50) for i in range(200)]


def test_default_idempotent_producer(bootstrap: str, topic_name: str) -> None:
    """The Java producer as users run it: idempotent, so it starts with InitProducerId."""
    create_topic(bootstrap, topic_name)
    console_produce(bootstrap, topic_name, KEYED, *PARSE_KEY, idempotent=True)
    assert console_consume(bootstrap, topic_name, 5, "--from-beginning", *PRINT_KEY) == PRINTED
    assert end_offset(bootstrap, topic_name) == 5


# -- perf tests ------------------------------------------------------------------------


def test_producer_perf_test(bootstrap: str, topic_name: str) -> None:
    done = tool("kafka-producer-perf-test.sh", "--topic", topic_name, "--num-records", "2000",
                "--record-size", "100", "--throughput", "-1",
                "--producer-props", f"bootstrap.servers={bootstrap}", NO_IDEMPOTENCE, "compression.type=lz4")
    assert "2000 records sent" in ok(done), done.stdout + done.stderr
    assert end_offset(bootstrap, topic_name) == 2000
