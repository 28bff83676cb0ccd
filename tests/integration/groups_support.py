"""Shared pieces of the consumer-group tests: member processes, records, checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ["confluent", "kafka-python", "aiokafka"]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class MemberProcess:
    """A group member running tests/integration/group_member.py in its own process."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str, name: str, *,
                 instance_id: str = "", session_timeout_ms: int = 6000, strategy: str = "range") -> None:
        self.name = name
        self.command = [sys.executable, "-m", "tests.integration.group_member", client, bootstrap, topic,
                        group, "--name", name, "--instance-id", instance_id,
                        "--session-timeout", str(session_timeout_ms), "--strategy", strategy]
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.process: subprocess.Popen[str] | None = None
        self.stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"group-member-{os.getpid()}-{name}.log"

    def start(self) -> MemberProcess:
        stderr = open(self.stderr_path, "w")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr,
                                        stdin=subprocess.DEVNULL, text=True)
        stderr.close()
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def _of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [event for event in self.events if event["event"] == kind]

    def records(self) -> list[tuple[int, int, str]]:
        return [(e["partition"], e["offset"], e["value"]) for e in self._of("record")]

    def assignment(self) -> set[int]:
        assigned = self._of("assigned")
        return set(assigned[-1]["partitions"]) if assigned else set()

    def assignment_changes(self) -> int:
        return len(self._of("assigned"))

    def revocations(self) -> list[set[int]]:
        return [set(e["partitions"]) for e in self._of("revoked")]

    def kill(self) -> None:
        """Crash: no LeaveGroup, no commit, no close."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""


def settled(members: Sequence[MemberProcess], partitions: int) -> bool:
    """Every member has partitions, none twice, all covered: one generation's assignment."""
    assignments = [m.assignment() for m in members]
    union = set().union(*assignments)
    return all(assignments) and sum(map(len, assignments)) == partitions == len(union)


def wait_settled(members: Sequence[MemberProcess], partitions: int, timeout: float = 60) -> None:
    try:
        wait_until(lambda: settled(members, partitions), timeout,
                   f"{len(members)} members to share {partitions} partitions")
    except AssertionError:
        details = {m.name: (sorted(m.assignment()), m.log()[-2000:]) for m in members}
        raise AssertionError(f"group never settled: {details}") from None


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic].result(timeout=30)


def produce_numbered(bootstrap: str, topic: str, start: int, count: int, partitions: int) -> list[str]:
    """Values "r<i>" for i in [start, start+count), round-robin over the partitions."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    values = [f"r{i}" for i in range(start, start + count)]
    for i, value in enumerate(values, start):
        producer.produce(topic, value=value.encode(), partition=i % partitions)
    assert producer.flush(30) == 0
    return values


def consumed(members: Sequence[MemberProcess]) -> Counter[str]:
    return Counter(value for m in members for _, _, value in m.records())


def end_offsets(redis_client: redis.Redis, topic: str, partitions: int) -> dict[int, int]:
    return {p: int(redis_client.xinfo_stream(f"kafka:{{{topic}:{p}}}")["entries-added"])
            for p in range(partitions)}


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets as Kafka's AdminClient reads them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def redis_group_positions(redis_client: redis.Redis, topic: str, partitions: int,
                          group: str) -> dict[int, tuple[int | None, bytes]]:
    """(entries-read, last-delivered-id) of the Redis consumer group on each partition's stream."""
    positions = {}
    for p in range(partitions):
        groups = {g["name"].decode(): g for g in redis_client.xinfo_groups(f"kafka:{{{topic}:{p}}}")}
        assert group in groups, f"no Redis consumer group {group} on partition {p}: {list(groups)}"
        positions[p] = (groups[group]["entries-read"], groups[group]["last-delivered-id"])
    return positions


def last_ids(redis_client: redis.Redis, topic: str, partitions: int) -> dict[int, bytes]:
    return {p: redis_client.xinfo_stream(f"kafka:{{{topic}:{p}}}")["last-generated-id"]
            for p in range(partitions)}


def assert_group_at_log_end(bootstrap: str, redis_client: redis.Redis, topic: str, partitions: int,
                            group: str) -> None:
    """Committed offsets (AdminClient) = log end offsets = the Redis groups' positions."""
    ends = end_offsets(redis_client, topic, partitions)
    wait_until(lambda: committed_offsets(bootstrap, group, topic, partitions) == ends, 30,
               f"committed offsets to reach the log end {ends}")
    ids = last_ids(redis_client, topic, partitions)
    assert redis_group_positions(redis_client, topic, partitions, group) == {
        p: (ends[p], ids[p]) for p in range(partitions)}
