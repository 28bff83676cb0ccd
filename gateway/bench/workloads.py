"""The workloads, each against a Kafka target (confluent-kafka) or a Redis one (redis-py).

Every workload returns a flat dict of numbers (plus a few labels) that the
report turns into rows and plots. Times come from ``time.perf_counter``;
latencies are measured from the moment a record was *scheduled* to be sent
(not the moment the producer got round to it), so a producer that falls
behind its offered rate shows up as latency instead of being hidden.
"""

from __future__ import annotations

import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import redis

Result = dict[str, Any]
STAMP = struct.Struct(">qq")  # scheduled send time (ns, perf_counter), sequence number


class StepTimeout(Exception):
    """A workload step ran past its time limit."""


@dataclass
class Params:
    record_size: int = 100
    count: int = 100_000
    partitions: int = 1
    producers: int = 1
    acks: str = "1"
    compression: str = "none"
    batch_size: int = 1_000_000
    linger_ms: float = 5.0
    redis_pipeline: int = 1000
    latency_linger_ms: float = 1.0
    step_timeout: float = 120.0
    extra: dict[str, str] = field(default_factory=dict)


def payload(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def stamped(size: int, seq: int, scheduled_ns: int) -> bytes:
    head = STAMP.pack(scheduled_ns, seq)
    return head + b"x" * max(0, size - len(head))


def percentiles(latencies_ns: list[int]) -> Result:
    if not latencies_ns:
        return {"received": 0}
    ordered = sorted(latencies_ns)

    def at(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
        return ordered[index] / 1e6

    return {
        "received": len(ordered),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "max_ms": ordered[-1] / 1e6,
    }


def unique_name(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}"


class Target(Protocol):
    name: str
    kind: str

    def produce(self, topic: str, params: Params) -> Result: ...
    def consume(self, topic: str, params: Params, expected: int) -> Result: ...
    def latency(self, rate: int, duration: float, params: Params) -> Result: ...
    def group_consume(self, topic: str, params: Params, expected: int) -> Result: ...
    def rebalance(self, params: Params) -> Result: ...
    def memory(self, topic: str, params: Params, records: int) -> Result: ...


def _memory_of(client: redis.Redis, keys: list[str], records: int) -> Result:
    total = 0
    for key in keys:
        used = client.memory_usage(key, samples=0)
        total += int(used or 0)
    return {"memory_bytes": total, "bytes_per_record": total / records if records else None}


class KafkaTarget:
    """Any Kafka-compatible bootstrap address, driven by confluent-kafka.

    ``redis_url``, when known (the gateway's own Redis), lets the memory
    workload read the streams' size; ``log_bytes``, when known (a broker
    ``bench`` started), gives the bytes of a topic's log segments on disk.
    """

    kind = "kafka"

    def __init__(self, name: str, bootstrap: str, redis_url: str | None = None,
                 log_bytes: Callable[[str, int], int] | None = None) -> None:
        self.name = name
        self.bootstrap = bootstrap
        self.redis_url = redis_url
        self.log_bytes = log_bytes

    def _create_topic(self, topic: str, partitions: int) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        for future in futures.values():
            future.result(timeout=30)
        # Give metadata a moment to settle on a real multi-broker cluster.
        time.sleep(0.2)

    def _producer(self, params: Params, linger_ms: float) -> Any:
        from confluent_kafka import Producer

        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "acks": params.acks,
            "compression.type": params.compression,
            "linger.ms": linger_ms,
            "batch.size": params.batch_size,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "enable.idempotence": False,
        }
        config.update(params.extra)
        return Producer(config)

    def produce(self, topic: str, params: Params) -> Result:
        """``params.producers`` producers (one thread and connection each) share the records."""
        self._create_topic(topic, params.partitions)
        producers = [self._producer(params, params.linger_ms) for _ in range(params.producers)]
        deadline = time.monotonic() + params.step_timeout
        start = time.perf_counter()
        _in_threads([partial(self._produce_share, producer, topic, params, n, deadline)
                     for n, producer in enumerate(producers)])
        return _rate(params.count, params.record_size, time.perf_counter() - start)

    @staticmethod
    def _produce_share(producer: Any, topic: str, params: Params, first: int, deadline: float) -> None:
        """Records first, first + producers, ... (round robin over the partitions), then flush."""
        value = payload(params.record_size)
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        partitions = params.partitions
        for i in range(first, params.count, params.producers):
            while True:
                try:
                    producer.produce(topic, value, partition=i % partitions, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.01)
                    if time.monotonic() > deadline:
                        raise StepTimeout("produce") from None
            if i % 1000 < params.producers:
                producer.poll(0)
        remaining = producer.flush(max(1.0, deadline - time.monotonic()))
        if remaining:
            raise StepTimeout(f"produce: {remaining} records undelivered")
        if errors:
            raise RuntimeError(f"produce: {len(errors)} delivery errors, first: {errors[0]}")

    def consume(self, topic: str, params: Params, expected: int) -> Result:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": unique_name("assign"),
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        })
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(params.partitions)])
        try:
            return _drain(consumer, expected, params)
        finally:
            consumer.close()

    def group_consume(self, topic: str, params: Params, expected: int) -> Result:
        from confluent_kafka import Consumer

        assigned: list[float] = []
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": unique_name("group"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
        })
        start = time.perf_counter()
        consumer.subscribe([topic], on_assign=lambda _c, _p: assigned.append(time.perf_counter()))
        try:
            result = _drain(consumer, expected, params)
        finally:
            consumer.close()
        result["join_s"] = assigned[0] - start if assigned else None
        return result

    def rebalance(self, params: Params) -> Result:
        """A second member joins a group whose first member owns every partition.

        ``join_s``: the first member's subscribe to its assignment.
        ``rebalance_s``: the second member's subscribe until both hold their
        new assignments (the first member learns of the rebalance from its
        next heartbeat, librdkafka's heartbeat.interval.ms, default 3 s).
        """
        from confluent_kafka import Consumer

        partitions = max(2, params.partitions)
        topic = unique_name("rebalance")
        self._create_topic(topic, partitions)
        group = unique_name("rebalance")
        stop = threading.Event()
        events: dict[str, list[tuple[float, int]]] = {"a": [], "b": []}
        errors: list[BaseException] = []

        def member(name: str) -> None:
            try:
                consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                                     "auto.offset.reset": "earliest"})

                def on_assign(_c: Any, assigned: list[Any]) -> None:
                    events[name].append((time.perf_counter(), len(assigned)))

                consumer.subscribe([topic], on_assign=on_assign)
                while not stop.is_set():
                    consumer.poll(0.05)
                consumer.close()
            except BaseException as exc:  # reported below
                errors.append(exc)

        def wait_for(condition: Callable[[], bool]) -> None:
            deadline = time.monotonic() + params.step_timeout
            while not condition():
                if errors:
                    raise errors[0]
                if time.monotonic() > deadline:
                    raise StepTimeout("rebalance")
                time.sleep(0.005)

        first = threading.Thread(target=member, args=("a",), daemon=True)
        second = threading.Thread(target=member, args=("b",), daemon=True)
        start = time.perf_counter()
        first.start()
        try:
            wait_for(lambda: any(n == partitions for _, n in events["a"]))
            joined = events["a"][-1][0] - start
            start = time.perf_counter()
            second.start()
            wait_for(lambda: bool(events["b"]) and any(t > start and n < partitions for t, n in events["a"]))
            done = max(events["b"][-1][0], events["a"][-1][0])
        finally:
            stop.set()
            for thread in (first, second):
                if thread.is_alive():
                    thread.join(timeout=30)
        return {"partitions": partitions, "join_s": joined, "rebalance_s": done - start}

    def latency(self, rate: int, duration: float, params: Params) -> Result:
        from confluent_kafka import Consumer, TopicPartition

        topic = unique_name("latency")
        self._create_topic(topic, 1)
        producer = self._producer(params, params.latency_linger_ms)
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": unique_name("latency"),
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        })
        consumer.assign([TopicPartition(topic, 0, 0)])

        def send(value: bytes) -> None:
            producer.produce(topic, value, partition=0)
            producer.poll(0)

        def receive(limit: float) -> list[bytes]:
            return [message.value() for message in _available(consumer, limit) if message.error() is None]

        try:
            return _paced(send, producer.flush, receive, rate, duration, params)
        finally:
            consumer.close()

    def memory(self, topic: str, params: Params, records: int) -> Result:
        if self.log_bytes is not None:
            size = self.log_bytes(topic, params.partitions)
            return {"disk_bytes": size, "disk_bytes_per_record": size / records if records else None}
        if not self.redis_url:
            return {}
        from ..storage import keys

        client = redis.Redis.from_url(self.redis_url)
        try:
            names = []
            for p in range(params.partitions):
                names += [keys.stream(topic, p), keys.offset_index(topic, p), keys.partition_meta(topic, p)]
            return _memory_of(client, names, records)
        finally:
            client.close()


class RedisTarget:
    """Redis Streams through redis-py: what a team would write by hand."""

    kind = "redis"

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    @staticmethod
    def _key(topic: str, partition: int) -> str:
        return f"bench:{{{topic}:{partition}}}"

    def produce(self, topic: str, params: Params) -> Result:
        """``params.producers`` threads, one connection each, share the records."""
        deadline = time.monotonic() + params.step_timeout
        start = time.perf_counter()
        _in_threads([partial(self._produce_share, topic, params, n, deadline)
                     for n in range(params.producers)])
        return _rate(params.count, params.record_size, time.perf_counter() - start)

    def _produce_share(self, topic: str, params: Params, first: int, deadline: float) -> None:
        client = self._client()
        value = payload(params.record_size)
        keys = [self._key(topic, p) for p in range(params.partitions)]
        mine = range(first, params.count, params.producers)
        try:
            for chunk in range(0, len(mine), params.redis_pipeline):
                pipe = client.pipeline(transaction=False)
                for i in mine[chunk:chunk + params.redis_pipeline]:
                    pipe.xadd(keys[i % len(keys)], {"value": value})
                pipe.execute()
                if time.monotonic() > deadline:
                    raise StepTimeout("produce")
        finally:
            client.close()

    def consume(self, topic: str, params: Params, expected: int) -> Result:
        client = self._client()
        deadline = time.monotonic() + params.step_timeout
        start = time.perf_counter()
        got = size = 0
        try:
            for p in range(params.partitions):
                key = self._key(topic, p)
                last = "-"
                while True:
                    entries: Any = client.xrange(key, min=last, max="+", count=1000)
                    if not entries:
                        break
                    got += len(entries)
                    size += sum(len(fields[b"value"]) for _, fields in entries)
                    last = "(" + entries[-1][0].decode()
                    if time.monotonic() > deadline:
                        raise StepTimeout("consume")
            elapsed = time.perf_counter() - start
        finally:
            client.close()
        if got < expected:
            raise RuntimeError(f"consume: read {got} of {expected}")
        return _rate(got, size / max(got, 1), elapsed)

    def group_consume(self, topic: str, params: Params, expected: int) -> Result:
        client = self._client()
        group = unique_name("group")
        deadline = time.monotonic() + params.step_timeout
        start = time.perf_counter()
        got = size = 0
        try:
            keys = [self._key(topic, p) for p in range(params.partitions)]
            for key in keys:
                client.xgroup_create(key, group, id="0")
            join = time.perf_counter() - start
            streams = dict.fromkeys(keys, ">")
            while got < expected:
                replies: Any = client.xreadgroup(group, "c1", streams, count=1000, block=1000)  # type: ignore[arg-type]
                if not replies:
                    break
                pipe = client.pipeline(transaction=False)
                for key, entries in replies:
                    got += len(entries)
                    size += sum(len(fields[b"value"]) for _, fields in entries)
                    pipe.xack(key, group, *[entry_id for entry_id, _ in entries])
                pipe.execute()
                if time.monotonic() > deadline:
                    raise StepTimeout("group consume")
            elapsed = time.perf_counter() - start
        finally:
            client.close()
        result = _rate(got, size / max(got, 1), elapsed)
        result["join_s"] = join
        return result

    def rebalance(self, params: Params) -> Result:
        return {"note": "not applicable: a Redis consumer group has no partition assignment"}

    def latency(self, rate: int, duration: float, params: Params) -> Result:
        key = self._key(unique_name("latency"), 0)
        producer = self._client()
        consumer = self._client()
        pending: list[bytes] = []
        last = ["0-0"]

        def send(value: bytes) -> None:
            pending.append(value)

        def flush(_timeout: float = 0) -> int:
            if pending:
                pipe = producer.pipeline(transaction=False)
                for value in pending:
                    pipe.xadd(key, {"value": value})
                pipe.execute()
                pending.clear()
            return 0

        def receive(limit: float) -> list[bytes]:
            replies: Any = consumer.xread({key: last[0]}, count=10_000, block=max(1, int(limit * 1000)))
            out = []
            for _key, entries in replies or []:
                for _entry_id, fields in entries:
                    out.append(fields[b"value"])
                last[0] = entries[-1][0].decode()
            return out

        try:
            return _paced(send, flush, receive, rate, duration, params, flush_each_tick=True)
        finally:
            producer.close()
            consumer.close()

    def memory(self, topic: str, params: Params, records: int) -> Result:
        client = self._client()
        try:
            return _memory_of(client, [self._key(topic, p) for p in range(params.partitions)], records)
        finally:
            client.close()


def _rate(records: int, record_size: float, seconds: float) -> Result:
    return {
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds if seconds else None,
        "mb_per_s": records * record_size / seconds / 1e6 if seconds else None,
    }


def _in_threads(tasks: list[Callable[[], None]]) -> None:
    """Run each task in a thread of its own; raise the first error once all have ended."""
    if len(tasks) == 1:
        tasks[0]()
        return
    errors: list[BaseException] = []

    def run(task: Callable[[], None]) -> None:
        try:
            task()
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(task,), daemon=True) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _available(consumer: Any, timeout: float) -> list[Any]:
    """Wait up to timeout for one message, then take whatever else is already there.

    (``Consumer.consume(n, timeout)`` alone waits for all n messages or the
    whole timeout, which would add its timeout to the last batch's time.)
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=10_000, timeout=0)]


def _drain(consumer: Any, expected: int, params: Params) -> Result:
    deadline = time.monotonic() + params.step_timeout
    start = time.perf_counter()
    got = size = 0
    while got < expected:
        for message in _available(consumer, 0.5):
            if message.error() is None:
                got += 1
                size += len(message.value() or b"")
        if time.monotonic() > deadline:
            raise StepTimeout(f"consume: read {got} of {expected}")
    elapsed = time.perf_counter() - start
    return _rate(got, size / max(got, 1), elapsed)


WARMUP = 50


def _paced(send: Callable[[bytes], None], flush: Callable[..., int], receive: Callable[[float], list[bytes]],
           rate: int, duration: float, params: Params, *, flush_each_tick: bool = False) -> Result:
    """Offer ``rate`` records/s for ``duration`` s from this thread, receive in another.

    Every record carries its scheduled send time; the receiving thread
    records now - scheduled. The first WARMUP records (sent before timing
    starts, until one arrives) are not counted.
    """
    total = int(rate * duration)
    latencies: list[int] = []
    worst = [0, -1]  # latency (ns) and sequence number of the slowest record
    seen = threading.Event()
    stop = threading.Event()
    error: list[BaseException] = []

    def receiver() -> None:
        try:
            while not stop.is_set():
                values = receive(0.1)
                now = time.perf_counter_ns()
                for value in values:
                    scheduled, seq = STAMP.unpack_from(value)
                    if seq < 0:
                        seen.set()
                    else:
                        latencies.append(now - scheduled)
                        if now - scheduled > worst[0]:
                            worst[:] = [now - scheduled, seq]
                if len(latencies) >= total:
                    return
        except BaseException as exc:  # reported by the sending thread
            error.append(exc)

    thread = threading.Thread(target=receiver, daemon=True)
    thread.start()
    # Warm up: connections, metadata, the consumer's first fetch.
    warm_deadline = time.monotonic() + min(30.0, params.step_timeout)
    while not seen.is_set():
        for _ in range(WARMUP):
            send(stamped(params.record_size, -1, time.perf_counter_ns()))
        flush(1.0)
        seen.wait(0.5)
        if time.monotonic() > warm_deadline or error:
            stop.set()
            raise StepTimeout("latency warm-up: nothing came back") if not error else error[0]
    interval_ns = int(1e9 / rate)
    start = time.perf_counter_ns()
    sent = 0
    while sent < total:
        now = time.perf_counter_ns()
        due = min(total, (now - start) // interval_ns + 1)
        while sent < due:
            send(stamped(params.record_size, sent, start + sent * interval_ns))
            sent += 1
        if flush_each_tick:
            flush()
        next_at = start + sent * interval_ns
        pause = (next_at - time.perf_counter_ns()) / 1e9
        if pause > 0:
            time.sleep(min(pause, 0.001))
    flush(10.0)
    achieved = total / ((time.perf_counter_ns() - start) / 1e9)
    thread.join(timeout=min(30.0, params.step_timeout))
    stop.set()
    thread.join(timeout=5)
    if error:
        raise error[0]
    result = percentiles(latencies)
    # When in the step the slowest record was due: a stall right after the
    # warm-up and one in the middle of the step have different causes.
    result["max_at_s"] = worst[1] / rate if worst[1] >= 0 else None
    result.update({"offered_per_s": rate, "sent": total, "achieved_send_per_s": achieved})
    return result
