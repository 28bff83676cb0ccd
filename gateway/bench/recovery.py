"""The ``recovery`` workload: kill -9 a server ``bench`` started, restart it, time the way back.

Only servers this run started can be killed, so the workload needs
``--start-gateway`` and/or ``--start-kafka``, and runs last (after every
other step, on all the data they wrote). Each row times SIGKILL to the
first acknowledged write from a client that starts retrying right away:
a librdkafka producer (reconnect backoff capped at 100 ms) for the gateway
and Kafka, a redis-py ``XADD`` loop for Redis. ``records_before`` and
``records_after`` count what the produce steps had stored (high watermarks
for Kafka targets, ``XLEN`` for redis-py), so a loss would show;
``all_records_s`` is SIGKILL until they are all back (a restarted Kafka
answers for one partition while it still loads the others).

A process kill is not a machine crash: Kafka's page cache and Redis's
written-but-unsynced AOF survive it, so nothing acknowledged is lost here
whatever the fsync policy; the time is what a restart costs (Kafka's log
recovery of unflushed segments, Redis's AOF load, the gateway's start).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from .servers import KafkaBroker, LocalServers
from .workloads import Result, _in_threads, unique_name

TOPIC_PREFIX = "bench-produce-"


def _create_topic(bootstrap: str) -> str:
    """The probe's topic, made before the kill so that the probe needs no auto-creation."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    topic = unique_name("recovery")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=30)
    return topic


def _acked_produce(bootstrap: str, topic: str, timeout: float) -> bool:
    """One record from a new producer that retries fast, acknowledged within ``timeout``."""
    from confluent_kafka import Producer

    delivered: list[Any] = []
    producer = Producer({
        "bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 0,
        "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 100, "retry.backoff.ms": 20,
        "retry.backoff.max.ms": 100, "message.timeout.ms": max(1000, int(timeout * 1000)),
        "socket.connection.setup.timeout.ms": 1000,
    })
    producer.produce(topic, b"probe", partition=0, on_delivery=lambda err, _msg: delivered.append(err))
    producer.flush(timeout)
    return bool(delivered) and delivered[0] is None


def _kafka_ready(bootstrap: str, topic: str, timeout: float) -> Callable[[], None]:
    def ready() -> None:
        deadline = time.monotonic() + timeout
        while not _acked_produce(bootstrap, topic, max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise TimeoutError("no acknowledged produce after the restart")
    return ready


def _kafka_records(bootstrap: str) -> int:
    """The sum of every produce topic's high watermarks."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_name("watermarks")})
    try:
        metadata = consumer.list_topics(timeout=30)
        total = 0
        for name, topic in metadata.topics.items():
            if name.startswith(TOPIC_PREFIX):
                for partition in topic.partitions:
                    _low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=30)
                    total += high
        return total
    finally:
        consumer.close()


def _redis_records(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(int(client.xlen(key)) for key in client.scan_iter(match=f"bench:{{{TOPIC_PREFIX}*"))
    finally:
        client.close()


def _redis_ready(url: str, timeout: float) -> Callable[[], None]:
    def ready() -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        try:
            while True:
                try:
                    client.xadd(f"bench:{{{unique_name('recovery')}:0}}", {"value": b"probe"})
                    return
                except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        finally:
            client.close()
    return ready


def _timed(kill: Callable[[], None], restart: Callable[[], None],
           ready: dict[str, Callable[[], None]]) -> dict[str, Result]:
    """Kill, restart, then each ``ready`` in a thread of its own: seconds from the kill, per name.

    Each row's ``killed_at`` (perf_counter) lets ``_all_back`` time the
    return of the data from the same instant.
    """
    start = time.perf_counter()
    kill()
    restart()
    restarted = time.perf_counter() - start
    done: dict[str, float] = {}

    def wait(name: str, probe: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            probe()
            done[name] = time.perf_counter() - start
        return run

    _in_threads([wait(name, probe) for name, probe in ready.items()])
    return {name: {"restart_s": restarted, "recovery_s": seconds, "killed_at": start}
            for name, seconds in done.items()}


def _all_back(row: Result, before: int, count: Callable[[], int], timeout: float) -> None:
    """Until ``count()`` is back to ``before`` (or the timeout): ``records_after`` and ``all_records_s``.

    A restarted Kafka acknowledges a write to one partition while it still
    loads others, so the first acknowledged write is not the whole log back.
    """
    killed_at = row.pop("killed_at")
    deadline = time.monotonic() + timeout
    after = -1
    while True:
        try:
            after = count()
        except Exception:  # the server still loading; asked again below
            after = -1
        if after >= before or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    row["records_before"], row["records_after"] = before, after
    if after >= before:
        row["all_records_s"] = time.perf_counter() - killed_at


def kafka_broker(broker: KafkaBroker, timeout: float) -> Result:
    """kill -9 the broker; restart it on its data; the first acknowledged produce."""
    topic = _create_topic(broker.bootstrap)
    before = _kafka_records(broker.bootstrap)
    def restart() -> None:
        broker.start(timeout)

    row = _timed(broker.kill, restart,
                 {"kafka": _kafka_ready(broker.bootstrap, topic, timeout)})["kafka"]
    row["killed"] = "broker"
    _all_back(row, before, lambda: _kafka_records(broker.bootstrap), timeout)
    return row


def gateway_process(servers: LocalServers, timeout: float) -> Result:
    """kill -9 the gateway (Redis keeps running); restart it; the first acknowledged produce."""
    topic = _create_topic(servers.bootstrap)
    before = _kafka_records(servers.bootstrap)
    row = _timed(servers.kill_gateway, servers.start_gateway,
                 {"gateway": _kafka_ready(servers.bootstrap, topic, timeout)})["gateway"]
    row["killed"] = "gateway"
    _all_back(row, before, lambda: _kafka_records(servers.bootstrap), timeout)
    return row


def redis_server(servers: LocalServers, timeout: float) -> dict[str, Result]:
    """kill -9 Redis under a running gateway; restart it on its AOF.

    Two rows from the one kill: redis-py's first acknowledged ``XADD`` and
    the gateway's first acknowledged produce (it reconnects by itself).
    """
    topic = _create_topic(servers.bootstrap)
    before = {"gateway": _kafka_records(servers.bootstrap), "redis-py": _redis_records(servers.redis_url)}
    rows = _timed(servers.kill_redis, servers.start_redis, {
        "gateway": _kafka_ready(servers.bootstrap, topic, timeout),
        "redis-py": _redis_ready(servers.redis_url, timeout),
    })
    count = {"gateway": lambda: _kafka_records(servers.bootstrap),
             "redis-py": lambda: _redis_records(servers.redis_url)}
    for name, row in rows.items():
        row["killed"] = "redis"
        _all_back(row, before[name], count[name], timeout)
    return rows
