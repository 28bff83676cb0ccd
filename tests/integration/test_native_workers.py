"""A pool of Redis-native workers consumes a topic that Kafka producers write.

The workers share a Redis consumer group (XREADGROUP), acknowledge what they
processed (XACK), and recover what a crashed worker had taken (XPENDING,
XCLAIM, XAUTOCLAIM), moving a record that keeps failing to a dead-letter
stream after three deliveries: the queue semantics Kafka's share groups ask
for, on the entries the gateway wrote. Kafka's view of the same group follows.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import redis
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.test_confluent import Rec, make_producer, produce, wait_all
from tests.servers import RedisServer

PARTITIONS = 2
RECORDS = 600
POISON = b"poison"
CRASHED_BATCH = 20
MAX_DELIVERIES = 3


def stream(topic: str, partition: int) -> str:
    return f"kafka:{{{topic}:{partition}}}"


class Worker(threading.Thread):
    """Reads new entries of every partition, processes and acknowledges them;
    fails (and leaves pending) the poison record. Stops once ``done`` is set
    and nothing new arrives."""

    def __init__(self, server: RedisServer, group: str, name: str, streams: list[str],
                 done: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = server.client()
        self.group, self.name, self.streams, self.done = group, name, streams, done
        self.processed: list[bytes] = []

    def run(self) -> None:
        try:
            while True:
                reply = self.client.xreadgroup(self.group, self.name, {s: ">" for s in self.streams},
                                               count=25, block=100)
                if not reply:
                    if self.done.is_set():
                        return
                    continue
                for key, entries in reply:
                    good = [(entry_id, fields) for entry_id, fields in entries
                            if fields[b"value"] != POISON]
                    self.processed += [fields[b"value"] for _, fields in good]
                    if good:
                        self.client.xack(key, self.group, *[entry_id for entry_id, _ in good])
        finally:
            self.client.close()


def recover(client: redis.Redis, group: str, key: str, dead_letters: str) -> list[bytes]:
    """What a rescuer does: claim everything pending, process it, dead-letter the poison."""
    processed = []
    while client.xpending(key, group)["pending"]:
        _, claimed, _ = client.xautoclaim(key, group, "rescuer", min_idle_time=0, start_id="0-0",
                                          count=100)
        for entry_id, fields in claimed:
            if fields[b"value"] != POISON:
                processed.append(fields[b"value"])
                client.xack(key, group, entry_id)
                continue
            (state,) = client.xpending_range(key, group, min=entry_id, max=entry_id, count=1)
            if state["times_delivered"] >= MAX_DELIVERIES:
                client.xadd(dead_letters, {"stream": key, "id": entry_id, **fields})
                client.xack(key, group, entry_id)
    return processed


def test_worker_pool_consumes_a_kafka_topic(bootstrap: str, redis_server: RedisServer,
                                            redis_client: redis.Redis, topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wait_all(admin.create_topics([NewTopic(topic_name, num_partitions=PARTITIONS)]))
    streams = [stream(topic_name, p) for p in range(PARTITIONS)]
    group = f"workers-{uuid.uuid4().hex[:8]}"
    for key in streams:
        redis_client.xgroup_create(key, group, id="0", mkstream=True)

    values = [b"order-%d" % i for i in range(RECORDS)]
    records = [Rec(i % PARTITIONS, None, value) for i, value in enumerate(values)]
    records.insert(RECORDS // 2, Rec(0, None, POISON))
    done = threading.Event()
    workers = [Worker(redis_server, group, f"worker-{n}", streams, done) for n in range(3)]
    with make_producer(bootstrap, **{"enable.idempotence": True}) as producer:
        for chunk in range(0, len(records), 50):
            reports = produce(producer, topic_name, records[chunk:chunk + 50])
            assert all(report.error() is None for report in reports)
            if chunk == 0:
                # A worker takes a batch and dies before acknowledging it.
                ((_, taken),) = redis_client.xreadgroup(group, "crasher", {streams[0]: ">"},
                                                        count=CRASHED_BATCH)
                assert len(taken) == CRASHED_BATCH
                # The others start while Kafka keeps appending.
                for worker in workers:
                    worker.start()
    done.set()
    for worker in workers:
        worker.join(timeout=60)
        assert not worker.is_alive()

    # The crashed worker's batch and the poison record are pending, nothing else.
    pending = {key: redis_client.xpending(key, group)["pending"] for key in streams}
    assert sum(pending.values()) == CRASHED_BATCH + 1
    held = redis_client.xpending_range(streams[0], group, min="-", max="+", count=100,
                                       consumername="crasher")
    assert [entry["times_delivered"] for entry in held] == [1] * len(held)

    # XCLAIM one entry by hand: its delivery count rises, as Redis documents.
    first = held[0]["message_id"]
    redis_client.xclaim(streams[0], group, "rescuer", min_idle_time=0, message_ids=[first])
    (state,) = redis_client.xpending_range(streams[0], group, min=first, max=first, count=1)
    assert (state["consumer"], state["times_delivered"]) == (b"rescuer", 2)

    dead_letters = f"dead-letters-{group}"
    rescued = [value for key in streams for value in recover(redis_client, group, key, dead_letters)]
    processed = [value for worker in workers for value in worker.processed] + rescued
    counts = Counter(processed)
    assert set(counts) == set(values) and set(counts.values()) == {1}, "each record processed once"
    ((_, dead),) = redis_client.xrange(dead_letters)
    assert dead[b"value"] == POISON and dead[b"stream"] == streams[0].encode()

    for key in streams:
        (info,) = redis_client.xinfo_groups(key)
        assert (info["pending"], info["lag"]) == (0, 0)
    # Kafka sees the workers' group at the end of each partition.
    (future,) = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic_name, p) for p in range(PARTITIONS)])]
    ).values()
    committed = {tp.partition: tp.offset for tp in future.result(timeout=30).topic_partitions}
    ends = {p: redis_client.xlen(streams[p]) for p in range(PARTITIONS)}
    assert committed == ends
