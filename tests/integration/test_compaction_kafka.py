"""The compaction scenario against a real Apache Kafka broker and the gateway: the same visible result.

Needs the broker at /opt/kafka-broker (../shared/kafka-broker/build.sh):
skipped where it is absent. The broker's cleaner checks every 200 ms
(log.cleaner.backoff.ms, 15 s by default) and the gateway compacts every
200 ms (--retention-check-interval-ms), so both clean within seconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_redis_gateway.gateway.bench.servers import KafkaBroker, kafka_available

from tests.integration.test_compaction import read_all, watermarks
from tests.servers import GatewayProcess, RedisServer

pytestmark = pytest.mark.skipif(not kafka_available(), reason="no Apache Kafka broker at /opt/kafka-broker")

# A segment rolls (Kafka) / the active part ends (gateway) 100 ms after its first record.
CONFIGS = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own, so that its gateway is the controller that compacts."""
    server = RedisServer(tmp_path_factory.mktemp("compaction-kafka-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    log = tmp_path_factory.mktemp("compaction-kafka-gateway") / "gateway.log"
    process = GatewayProcess(redis_server.url, log_path=log,
                             extra_args=["--retention-check-interval-ms", "200"]).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(Path(tmp_path_factory.mktemp("kafka")) / "broker",
                         configs=["log.cleaner.backoff.ms=200"]).start(timeout=120)
    yield broker
    broker.stop()


def compacted(bootstrap: str) -> tuple[object, ...]:
    """Overwrite five keys, delete one, roll; what a reader from the start sees once compaction ran."""
    topic = f"compacted-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=CONFIGS)])[topic].result(30)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(50):
        producer.produce(topic, b"v%d" % i, b"k%d" % (i % 5))
    producer.produce(topic, None, b"k0")  # a tombstone
    assert producer.flush(30) == 0
    time.sleep(0.5)  # past segment.ms: the next record rolls the segment
    producer.produce(topic, b"newest", b"last")
    assert producer.flush(30) == 0
    deadline = time.monotonic() + 60
    records = read_all(bootstrap, topic)
    while len(records) > 6 and time.monotonic() < deadline:
        time.sleep(0.5)
        records = read_all(bootstrap, topic)
    return tuple(records), watermarks(bootstrap, topic)


def test_compaction_looks_the_same_as_on_kafka(kafka: KafkaBroker, gateway: GatewayProcess) -> None:
    on_kafka = compacted(kafka.bootstrap)
    on_gateway = compacted(gateway.bootstrap)
    expected = ((46, b"k1", b"v46"), (47, b"k2", b"v47"), (48, b"k3", b"v48"), (49, b"k4", b"v49"),
                (50, b"k0", None), (51, b"last", b"newest"))
    assert on_kafka == (expected, (0, 52))
    assert on_gateway == on_kafka
