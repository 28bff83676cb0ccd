"""Record order when Redis loses the gateway's code or restarts under load.

Producers with retries off (a plain, non-idempotent producer, the case where
the gateway alone keeps order) write sequence-numbered records while Redis
restarts, or while its scripts and functions are flushed. Records may be
missing, since their producers were told, but no record may be stored after
one its producer sent later (#12: NOSCRIPT retries used to overtake).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import confluent_kafka
import pytest

from tests.integration.test_redis_restart import create_topic, read_topic, wait_until
from tests.servers import GatewayProcess, RedisServer

PRODUCERS = 2


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendfsync="always").start()
    yield server
    server.stop()


@pytest.fixture
def gateway(redis_server: RedisServer, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--redis-timeout", "2"]).start()
    yield process
    process.stop()


@dataclass
class Outcomes:
    """What each producer was told: record value -> the error's name (None: delivered)."""

    told: dict[bytes, str | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def count(self, error: str | None = None) -> int:
        with self.lock:
            return sum(1 for told in self.told.values() if told == error)


def produce_in_sequence(bootstrap: str, topic: str, producer_number: int, outcomes: Outcomes) -> None:
    def on_delivery(error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
        with outcomes.lock:
            outcomes.told[message.value()] = None if error is None else error.name()

    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap, "enable.idempotence": False, "retries": 0, "acks": 1,
        "linger.ms": 1, "message.timeout.ms": 60_000,
    })
    sequence = 0
    while not outcomes.stop.is_set():
        for _ in range(20):
            try:
                producer.produce(topic, value=b"%d-%08d" % (producer_number, sequence),
                                 on_delivery=on_delivery)
            except BufferError:
                break
            sequence += 1
        producer.poll(0.002)
    assert producer.flush(90) == 0


def inversions(values: list[bytes]) -> int:
    """Records stored after a record their producer sent later."""
    highest: dict[bytes, int] = {}
    found = 0
    for value in values:
        producer, sequence = value.split(b"-")
        if int(sequence) < highest.get(producer, -1):
            found += 1
        highest[producer] = max(highest.get(producer, -1), int(sequence))
    return found


def run_with_fault(gateway: GatewayProcess, topic: str,
                   fault: Callable[[], None]) -> tuple[Outcomes, list[bytes]]:
    create_topic(gateway.bootstrap, topic, 1)
    outcomes = Outcomes()
    with ThreadPoolExecutor(PRODUCERS) as pool:
        producing = [pool.submit(produce_in_sequence, gateway.bootstrap, topic, n, outcomes)
                     for n in range(PRODUCERS)]
        try:
            wait_until(lambda: outcomes.count() >= 2_000, 60, "records before the fault")
            fault()
            delivered_before = outcomes.count()
            wait_until(lambda: outcomes.count() >= delivered_before + 2_000, 60, "records after the fault")
        finally:
            outcomes.stop.set()
        for future in producing:
            future.result(timeout=120)
    stored = [value for _, _, value in sorted(read_topic(gateway.bootstrap, topic, 1))]
    return outcomes, stored


def test_no_record_overtakes_across_a_redis_restart(redis_server: RedisServer, gateway: GatewayProcess,
                                                    topic_name: str) -> None:
    def restart() -> None:
        redis_server.stop()
        redis_server.start()  # same port and data: the function library comes back with the AOF

    outcomes, stored = run_with_fault(gateway, topic_name, restart)
    assert outcomes.count() > 4_000
    assert inversions(stored) == 0, f"{inversions(stored)} inversions in {len(stored)} records"


def test_no_record_overtakes_when_the_code_is_flushed(redis_server: RedisServer, gateway: GatewayProcess,
                                                      topic_name: str) -> None:
    client = redis_server.client()

    def flush() -> None:
        for _ in range(3):
            client.execute_command("FUNCTION", "FLUSH")
            client.script_flush()
            time.sleep(0.3)

    outcomes, stored = run_with_fault(gateway, topic_name, flush)
    client.close()
    assert inversions(stored) == 0, f"{inversions(stored)} inversions in {len(stored)} records"
    not_stored = outcomes.count("KAFKA_STORAGE_ERROR")
    assert not_stored > 0, "no append met a missing function: did the flush reach the gateway?"
    # Appends that found their function missing ran nothing, and said so.
    told_not_stored = {value for value, told in outcomes.told.items() if told == "KAFKA_STORAGE_ERROR"}
    assert not told_not_stored & set(stored)
    assert len(stored) == outcomes.count()
