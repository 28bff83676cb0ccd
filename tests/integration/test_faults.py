"""Redis failing under a gateway while an idempotent producer and a consumer group run.

Three faults, each with a Redis and gateway of the test's own
(``--redis-timeout 2``, ``appendfsync always``):

- stall: ``DEBUG SLEEP 6`` freezes Redis for three times the gateway's
  timeout (the commands sent meanwhile run when it wakes up);
- refused: Redis killed with SIGKILL and kept down for 5 s, so connections
  are refused, then started again on the same port and data directory;
- restart: Redis stopped with SIGTERM and started again at once.

What must hold, and is asserted:

- the gateway keeps running and reconnects by itself, and logs no error
  and no traceback; the producer sees only retriable errors (no
  record fails, nothing fatal) and did have to retry;
- every acknowledged record is in the topic exactly once, at the offset it
  was acknowledged with, in the order sent per partition (read back from
  each partition's start to its end);
- the consumer (manual synchronous commits after each batch) never skips a
  record: on each partition every delivered offset is at most one past the
  previous one; and when it goes back (a rejoin after the coordinator
  failed), it goes back no further than its last successful commit, which
  is the at-least-once duplication Kafka allows and no more;
- it ends with every acknowledged record consumed; and a new consumer of the
  same group starts exactly at the committed offsets (it receives only the
  records produced after the first consumer left).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import confluent_kafka
import pytest
import redis
from kafka_redis_gateway.gateway.embedded import free_port

from tests.integration import operations_support
from tests.integration.test_redis_restart import (
    ProducerRun,
    create_topic,
    produce_until_stopped,
    read_topic,
    wait_until,
)
from tests.servers import GatewayProcess, RedisServer

PARTITIONS = 2
REDIS_TIMEOUT = 2
STALL_SECONDS = 6
DOWN_SECONDS = 5


@dataclass
class ConsumerRun:
    """What a group member consumed and committed, and any rule it saw broken."""

    delivered: list[tuple[int, int, bytes]] = field(default_factory=list)
    committed: dict[int, int] = field(default_factory=dict)  # last successful commit per partition
    commit_failures: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    rewinds: int = 0
    last: dict[int, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def values(self) -> set[bytes]:
        with self.lock:
            return {value for _, _, value in self.delivered}

    def take(self, partition: int, offset: int, value: bytes) -> None:
        previous = self.last.get(partition, -1)
        if offset > previous + 1:
            self.violations.append(f"partition {partition}: skipped from {previous} to {offset}")
        elif offset <= previous:
            self.rewinds += 1
            if offset < self.committed.get(partition, 0):
                self.violations.append(f"partition {partition}: went back to {offset}, before the "
                                       f"committed {self.committed[partition]}")
        self.last[partition] = offset
        with self.lock:
            self.delivered.append((partition, offset, value))


def consume_until_stopped(bootstrap: str, topic: str, group: str, run: ConsumerRun) -> None:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": 30_000,
    })
    consumer.subscribe([topic])
    try:
        while not run.stop.is_set():
            messages = [m for m in consumer.consume(500, timeout=0.2) if m.error() is None]
            for message in messages:
                run.take(message.partition(), message.offset(), message.value())
            if messages:
                commit(consumer, run)
    finally:
        consumer.close()


def commit(consumer: confluent_kafka.Consumer, run: ConsumerRun) -> None:
    try:
        results = consumer.commit(asynchronous=False) or []
    except confluent_kafka.KafkaException as exc:
        run.commit_failures.append(str(exc))
        return
    for result in results:
        if result.error is None and result.offset >= 0:
            run.committed[result.partition] = result.offset


def stall(redis_server: RedisServer) -> None:
    # redis-py's default socket timeout (5 s) is shorter than the sleep.
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=STALL_SECONDS + 30)
    try:
        client.execute_command("DEBUG", "SLEEP", STALL_SECONDS)
    finally:
        client.close()


def refuse(redis_server: RedisServer) -> None:
    redis_server.stop(signal.SIGKILL)
    time.sleep(DOWN_SECONDS)
    redis_server.start()


def restart(redis_server: RedisServer) -> None:
    redis_server.stop()
    redis_server.start()


FAULTS: dict[str, Callable[[RedisServer], None]] = {"stall": stall, "refused": refuse, "restart": restart}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_clients_ride_through_a_redis_fault(fault: str, tmp_path: Path, topic_name: str) -> None:
    redis_server = RedisServer(tmp_path / "redis", appendfsync="always",
                               extra_args=["--enable-debug-command", "local"]).start()
    metrics_port = free_port()
    gateway = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--redis-timeout", str(REDIS_TIMEOUT),
                                         "--metrics-listen", f"127.0.0.1:{metrics_port}"]).start()
    group = f"g-{topic_name}"
    producer, consumer = ProducerRun(), ConsumerRun()
    try:
        create_topic(gateway.bootstrap, topic_name, PARTITIONS)
        with ThreadPoolExecutor(2) as pool:
            producing = pool.submit(produce_until_stopped, gateway.bootstrap, topic_name, producer, True)
            consuming = pool.submit(consume_until_stopped, gateway.bootstrap, topic_name, group, consumer)
            try:
                wait_until(lambda: producer.delivered_count() >= 2_000 and len(consumer.values()) >= 1_000,
                           90, "records produced and consumed before the fault")
                before_fault = producer.sent
                FAULTS[fault](redis_server)
                wait_until(lambda: producer.delivered_beyond(before_fault), 90,
                           "a record sent after the fault to be acknowledged")
                producer.stop.set()
                producing.result(timeout=180)
                acknowledged = set(producer.delivered)
                wait_until(lambda: acknowledged <= consumer.values(), 120,
                           "the consumer to catch up with every acknowledged record")
                time.sleep(1)  # one more round, so that the last batch's commit is in
            finally:
                producer.stop.set()
                consumer.stop.set()
            consuming.result(timeout=60)

        print(f"{fault}: {producer.sent} records sent, {producer.transmitted} transmitted; consumed "
              f"{len(consumer.delivered)}, {consumer.rewinds} rewinds, {len(consumer.commit_failures)} "
              f"failed commits")  # shown with pytest -s
        assert gateway.process is not None and gateway.process.poll() is None, "the gateway exited"
        # Redis errors become retriable Kafka errors, never an internal error or a traceback.
        errors = [line for line in (tmp_path / "gateway.log").read_text().splitlines()
                  if " ERROR " in line or "Traceback" in line]
        assert not errors, errors[:5]
        assert_producer_rode_through(producer)
        # The gateway settles appends whose reply the fault cut off once Redis
        # answers again, so a quick restart may spare the producer any retry:
        # the gateway's count of Redis failures shows the fault reached it.
        samples = operations_support.scrape(metrics_port)
        assert operations_support.value(samples, "krg_redis_reconnects_total") > 0, "did the fault reach it?"
        assert_stored_once_in_order(gateway.bootstrap, topic_name, producer)
        assert not consumer.violations, consumer.violations[:5]
        assert acknowledged <= consumer.values()
        assert_group_continues_from_commits(gateway.bootstrap, topic_name, group, consumer)
    finally:
        gateway.stop()
        redis_server.stop()


def assert_producer_rode_through(run: ProducerRun) -> None:
    assert not run.failed, f"{len(run.failed)} records failed, e.g. {run.failed[:3]}"
    assert not [e for e in run.client_errors if e.fatal()], run.client_errors
    assert len(run.delivered) == run.sent


def assert_stored_once_in_order(bootstrap: str, topic: str, run: ProducerRun) -> None:
    records = read_topic(bootstrap, topic, PARTITIONS)
    assert len(records) == len(run.delivered), "records stored more (or fewer) times than acknowledged"
    assert {value: (partition, offset) for partition, offset, value in records} == run.delivered
    for partition in range(PARTITIONS):
        sequence = [int(value.removeprefix(b"record-")) for p, _, value in records if p == partition]
        assert sequence == sorted(sequence), f"partition {partition} out of the order sent"


def assert_group_continues_from_commits(bootstrap: str, topic: str, group: str, run: ConsumerRun) -> None:
    """A new member of the group gets exactly what was produced after the commits."""
    ends = {partition: 1 + max(o for p, o, _ in run.delivered if p == partition)
            for partition in range(PARTITIONS)}
    assert run.committed == ends, f"committed {run.committed}, consumed up to {ends}"
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for partition in range(PARTITIONS):
        producer.produce(topic, value=b"after-%d" % partition, partition=partition)
    assert producer.flush(30) == 0
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                        "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    try:
        got: list[tuple[int, int, bytes]] = []
        deadline = time.monotonic() + 60
        while len(got) < PARTITIONS and time.monotonic() < deadline:
            got += [(m.partition(), m.offset(), m.value())
                    for m in consumer.consume(10, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    assert sorted(got) == [(p, ends[p], b"after-%d" % p) for p in range(PARTITIONS)]
