"""One consumer-group member in a process of its own, for the group tests.

    python -m tests.integration.group_member CLIENT BOOTSTRAP TOPIC GROUP [options]

CLIENT is confluent, kafka-python or aiokafka. The member subscribes to the
topic, commits each record's offset synchronously after reading it, and
prints one JSON object per line on stdout:

    {"event": "assigned", "partitions": [...]}   its whole assignment, after every change
    {"event": "revoked", "partitions": [...]}    partitions taken away in a rebalance
    {"event": "record", "partition": p, "offset": o, "value": "..."}

SIGTERM closes the consumer cleanly; the tests SIGKILL it to play a crash.
A process per member makes a crash real: no LeaveGroup, no goodbye.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any


class Reporter:
    def __init__(self) -> None:
        self.owned: set[int] = set()
        self.lock = threading.Lock()

    def emit(self, **event: Any) -> None:
        with self.lock:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    def assigned(self, partitions: Iterable[int]) -> None:
        self.owned |= set(partitions)
        self.emit(event="assigned", partitions=sorted(self.owned))

    def revoked(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.owned -= gone
        self.emit(event="revoked", partitions=sorted(gone))
        self.emit(event="assigned", partitions=sorted(self.owned))

    def record(self, partition: int, offset: int, value: bytes) -> None:
        self.emit(event="record", partition=partition, offset=offset, value=value.decode())


def stop_on_sigterm() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def run_confluent(args: argparse.Namespace, out: Reporter) -> None:
    from confluent_kafka import Consumer, KafkaException

    conf: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap, "group.id": args.group, "client.id": args.name,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "session.timeout.ms": args.session_timeout, "heartbeat.interval.ms": 1000,
        "partition.assignment.strategy": args.strategy,
        # What librdkafka reports to the application besides records (connection failures).
        "error_cb": lambda error: out.emit(event="client-error", error=str(error)),
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    consumer = Consumer(conf)
    stop = stop_on_sigterm()
    consumer.subscribe(
        [args.topic],
        on_assign=lambda _, parts: out.assigned(p.partition for p in parts),
        on_revoke=lambda _, parts: out.revoked(p.partition for p in parts),
        on_lost=lambda _, parts: out.revoked(p.partition for p in parts),
    )
    while not stop.is_set():
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        out.record(message.partition(), message.offset(), message.value())
        try:
            consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:  # a rebalance took the partition away meanwhile
            out.emit(event="commit-failed", error=str(exc))
    consumer.close()


def run_kafka_python(args: argparse.Namespace, out: Reporter) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata
    from kafka.errors import KafkaError

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            out.revoked(tp.partition for tp in revoked)

        def on_partitions_assigned(self, assigned: Any) -> None:
            out.assigned(tp.partition for tp in assigned)

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=args.group, client_id=args.name,
        group_instance_id=args.instance_id or None, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=args.session_timeout,
        heartbeat_interval_ms=1000,
    )
    stop = stop_on_sigterm()
    consumer.subscribe([args.topic], listener=Listener())
    while not stop.is_set():
        for tp, messages in consumer.poll(timeout_ms=200).items():
            for message in messages:
                out.record(tp.partition, message.offset, message.value)
                try:
                    consumer.commit({tp: OffsetAndMetadata(message.offset + 1, "", -1)})
                except KafkaError as exc:
                    out.emit(event="commit-failed", error=repr(exc))
    consumer.close()


async def run_aiokafka(args: argparse.Namespace, out: Reporter) -> None:
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
    from aiokafka.errors import KafkaError

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            out.revoked(tp.partition for tp in revoked)

        def on_partitions_assigned(self, assigned: Any) -> None:
            out.assigned(tp.partition for tp in assigned)

    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=args.group, client_id=args.name,
        group_instance_id=args.instance_id or None, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=args.session_timeout,
        heartbeat_interval_ms=1000,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumer.subscribe([args.topic], listener=Listener())
    await consumer.start()
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=200)
        for tp, messages in batches.items():
            for message in messages:
                out.record(tp.partition, message.offset, message.value)
                try:
                    await consumer.commit({tp: message.offset + 1})
                except KafkaError as exc:
                    out.emit(event="commit-failed", error=repr(exc))
    await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=["confluent", "kafka-python", "aiokafka"])
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("--name", default="member")
    parser.add_argument("--instance-id", default="")
    parser.add_argument("--session-timeout", type=int, default=6000)
    parser.add_argument("--strategy", default="range", help="confluent only")
    args = parser.parse_args()
    out = Reporter()
    runners: dict[str, Callable[[argparse.Namespace, Reporter], None]] = {
        "confluent": run_confluent,
        "kafka-python": run_kafka_python,
        "aiokafka": lambda a, o: asyncio.run(run_aiokafka(a, o)),
    }
    runners[args.client](args, out)


if __name__ == "__main__":
    main()
