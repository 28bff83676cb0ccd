"""Share groups (KIP-932) through confluent-kafka's ShareConsumer, on Redis consumer groups.

The share group is the Redis consumer group of the same name on the
partition's stream: what the consumers hold is the PEL, ACCEPT is XACK,
RELEASE hands the entry back at once, REJECT and the delivery-count limit
archive it (docs/mapping.md). The module has a Redis of its own: some tests
restart or stop gateways.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import KafkaException, Producer

from tests.servers import GatewayProcess, RedisServer, module_redis

ShareConsumer: Any
AcknowledgeType: Any
try:
    from confluent_kafka import AcknowledgeType, ShareConsumer
except ImportError:  # confluent-kafka before 2.16 has no share consumer
    pytest.skip("confluent-kafka 2.16+ (ShareConsumer) is needed", allow_module_level=True)

from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

redis_server = module_redis()

LOCK_MS = 2000


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    log = Path(tmp_path_factory.mktemp("share-gateway")) / "gateway.log"
    process = GatewayProcess(redis_server.url, log_path=log, extra_args=["--node-id", "0"]).start()
    yield process
    process.stop()


def stream(topic: str, partition: int = 0) -> str:
    return f"kafka:{{{topic}:{partition}}}"


def configure(bootstrap: str, group: str, **configs: str | int) -> None:
    """Set group configs with IncrementalAlterConfigs on the GROUP resource."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry(name.replace("_", "."), str(value), incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def new_group(bootstrap: str, **configs: str | int) -> str:
    group = f"share-{uuid.uuid4().hex[:10]}"
    configure(bootstrap, group, share_auto_offset_reset="earliest", **configs)
    return group


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(timeout=30)


def produce(bootstrap: str, topic: str, count: int, prefix: str = "v") -> list[bytes]:
    producer = Producer({"bootstrap.servers": bootstrap})
    values = [f"{prefix}{i}".encode() for i in range(count)]
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    return values


def consumer(bootstrap: str, group: str, topic: str, **config: Any) -> Any:
    made = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, **config})
    made.subscribe([topic])
    return made


def poll_records(share: Any, want: int, timeout: float = 30) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for message in share.poll(0.5) or []:
            assert message.error() is None, message.error()
            got.append(message)
    return got


def redis_group(client: redis.Redis, topic: str, group: str) -> dict[str, Any]:
    for info in client.xinfo_groups(stream(topic)):
        if info["name"].decode() == group:
            return info  # type: ignore[no-any-return]
    raise AssertionError(f"no Redis group {group}")


def test_implicit_acknowledgement_is_xack(gateway: GatewayProcess, redis_server: RedisServer,
                                          topic_name: str) -> None:
    client = redis_server.client()
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name)
    values = produce(gateway.bootstrap, topic_name, 20)
    share = consumer(gateway.bootstrap, group, topic_name)
    try:
        got = poll_records(share, 20)
        share.commit_sync()  # implicit mode: the last poll's records are accepted here
    finally:
        share.close()
    assert sorted(m.value() for m in got) == sorted(values)
    assert sorted(m.offset() for m in got) == list(range(20))
    assert {m.delivery_count() for m in got} == {1}
    info = redis_group(client, topic_name, group)
    assert info["pending"] == 0 and info["entries-read"] == 20 and info["lag"] == 0


def test_accept_release_reject(gateway: GatewayProcess, redis_server: RedisServer, topic_name: str) -> None:
    client = redis_server.client()
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name)
    produce(gateway.bootstrap, topic_name, 3)
    share = consumer(gateway.bootstrap, group, topic_name, **{"share.acknowledgement.mode": "explicit"})
    try:
        first = {m.offset(): m for m in poll_records(share, 3)}
        assert sorted(first) == [0, 1, 2]
        # XPENDING shows what the Kafka consumer holds.
        assert client.xpending(stream(topic_name), group)["pending"] == 3
        share.acknowledge(first[0], AcknowledgeType.ACCEPT)
        share.acknowledge(first[1], AcknowledgeType.RELEASE)
        share.acknowledge(first[2], AcknowledgeType.REJECT)
        share.commit_sync()
        again = poll_records(share, 1, timeout=10)
        assert [(m.offset(), m.delivery_count()) for m in again] == [(1, 2)]
        share.acknowledge(again[0], AcknowledgeType.ACCEPT)
        share.commit_sync()
        assert poll_records(share, 1, timeout=LOCK_MS / 1000 + 3) == []  # the rejected one never comes back
    finally:
        share.close()
    info = redis_group(client, topic_name, group)
    assert info["pending"] == 0 and info["entries-read"] == 3


def test_three_consumers_share_one_partition(gateway: GatewayProcess, topic_name: str) -> None:
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name)
    values = produce(gateway.bootstrap, topic_name, 300)
    received: dict[int, list[bytes]] = {}
    done = threading.Event()
    total = Counter[bytes]()
    lock = threading.Lock()

    def run(index: int) -> None:
        share = consumer(gateway.bootstrap, group, topic_name, **{"max.poll.records": 10})
        received[index] = []
        try:
            while not done.is_set():
                for message in share.poll(0.5) or []:
                    received[index].append(message.value())
                    with lock:
                        total[message.value()] += 1
                        if len(total) == len(values):
                            done.set()
                time.sleep(0.05)  # work on the records, so the others get some
            share.commit_sync()
        finally:
            share.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    done.wait(60)
    for thread in threads:
        thread.join(30)
    assert sorted(total) == sorted(values)
    assert max(total.values()) == 1  # never the same record to two consumers
    assert all(received[i] for i in range(3)), {i: len(v) for i, v in received.items()}


KILLED_MEMBER = """
import sys, time
from confluent_kafka import ShareConsumer
share = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                       "share.acknowledgement.mode": "explicit"})
share.subscribe([sys.argv[3]])
while True:
    messages = [m for m in share.poll(0.5) or [] if m.error() is None]
    if messages:
        print(" ".join(str(m.offset()) for m in messages), flush=True)
        time.sleep(3600)
"""


def test_killed_consumer_records_go_to_others_after_the_lock(
        gateway: GatewayProcess, redis_server: RedisServer, topic_name: str) -> None:
    client = redis_server.client()
    group = new_group(gateway.bootstrap, group_share_record_lock_duration_ms=LOCK_MS)
    create_topic(gateway.bootstrap, topic_name)
    values = produce(gateway.bootstrap, topic_name, 10)
    member = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, gateway.bootstrap, group, topic_name],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert member.stdout is not None
        held = [int(offset) for offset in member.stdout.readline().split()]
        assert held
    finally:
        member.kill()
        member.wait()
    share = consumer(gateway.bootstrap, group, topic_name)
    try:
        got = poll_records(share, 10, timeout=LOCK_MS / 1000 + 20)
        share.commit_sync()
    finally:
        share.close()
    assert sorted(m.value() for m in got) == sorted(values)
    counts = {m.offset(): m.delivery_count() for m in got}
    assert all(counts[offset] == 2 for offset in held)
    assert redis_group(client, topic_name, group)["pending"] == 0


def test_delivery_count_limit_archives_to_dead_letter_topic(
        gateway: GatewayProcess, redis_server: RedisServer, topic_name: str) -> None:
    client = redis_server.client()
    dead_letters = f"{topic_name}-dlq"
    group = new_group(gateway.bootstrap, group_share_delivery_count_limit=3,
                      errors_deadletterqueue_topic_name=dead_letters)
    create_topic(gateway.bootstrap, topic_name)
    create_topic(gateway.bootstrap, dead_letters)
    produce(gateway.bootstrap, topic_name, 1, prefix="poison")
    share = consumer(gateway.bootstrap, group, topic_name, **{"share.acknowledgement.mode": "explicit"})
    deliveries = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(deliveries) < 4:
            for message in share.poll(0.5) or []:
                deliveries.append(message.delivery_count())
                share.acknowledge(message, AcknowledgeType.RELEASE)
            share.commit_sync()
            if len(deliveries) == 3 and client.xlen(stream(dead_letters)) == 1:
                break
    finally:
        share.close()
    assert deliveries == [1, 2, 3]
    assert redis_group(client, topic_name, group)["pending"] == 0
    copies = client.xrange(stream(dead_letters))
    assert [fields[b"value"] for _, fields in copies] == [b"poison0"]


def test_native_worker_in_the_same_group(gateway: GatewayProcess, redis_server: RedisServer,
                                         topic_name: str) -> None:
    client = redis_server.client()
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name)
    values = produce(gateway.bootstrap, topic_name, 40)
    share = consumer(gateway.bootstrap, group, topic_name, **{"max.poll.records": 10})
    try:
        kafka_got = poll_records(share, 10)
        share.commit_sync()
        # The group exists now: a native worker takes the next ten.
        native = client.xreadgroup(group, "native-worker", {stream(topic_name): ">"}, count=10)
        native_values = [fields[b"value"] for _, fields in native[0][1]]
        client.xack(stream(topic_name), group, *[entry_id for entry_id, _ in native[0][1]])
        kafka_got += poll_records(share, 40 - 10 - len(native_values))
        share.commit_sync()
    finally:
        share.close()
    kafka_values = [m.value() for m in kafka_got]
    assert not set(kafka_values) & set(native_values)
    assert sorted(kafka_values + native_values) == sorted(values)
    assert redis_group(client, topic_name, group)["pending"] == 0


def test_state_survives_a_gateway_restart(redis_server: RedisServer, topic_name: str,
                                          tmp_path: Path) -> None:
    client = redis_server.client()
    first = GatewayProcess(redis_server.url, extra_args=["--node-id", "7"]).start()
    port = first.port
    try:
        group = new_group(first.bootstrap, group_share_record_lock_duration_ms=LOCK_MS)
        create_topic(first.bootstrap, topic_name)
        values = produce(first.bootstrap, topic_name, 20)
        share = consumer(first.bootstrap, group, topic_name, **{"share.acknowledgement.mode": "explicit"})
        got = poll_records(share, 20)
        accepted = [m for m in got if m.offset() < 10]
        for message in accepted:
            share.acknowledge(message, AcknowledgeType.ACCEPT)
        share.commit_sync()
        # The other ten stay acquired while the gateway goes away.
        first.stop(sig=9)
        share.close()
    finally:
        first.stop()
    second = GatewayProcess(redis_server.url, port=port, extra_args=["--node-id", "7"]).start()
    try:
        share = consumer(second.bootstrap, group, topic_name)
        rest = poll_records(share, 10, timeout=LOCK_MS / 1000 + 30)
        share.commit_sync()
        share.close()
    finally:
        second.stop()
    assert sorted(m.offset() for m in rest) == list(range(10, 20))
    assert sorted([m.value() for m in accepted] + [m.value() for m in rest]) == sorted(values)
    assert redis_group(client, topic_name, group)["pending"] == 0


def test_group_configs_are_described_with_their_defaults(gateway: GatewayProcess) -> None:
    group = f"share-{uuid.uuid4().hex[:10]}"
    configure(gateway.bootstrap, group, group_share_delivery_count_limit=4)
    admin = AdminClient({"bootstrap.servers": gateway.bootstrap})
    resource = ConfigResource(ResourceType.GROUP, group)
    described = admin.describe_configs([resource])[resource].result(timeout=30)
    limit = described["group.share.delivery.count.limit"]
    assert (limit.value, limit.source) == ("4", ConfigSource.GROUP_CONFIG.value)
    reset = described["share.auto.offset.reset"]
    assert (reset.value, reset.is_default) == ("latest", True)
    assert described["group.share.record.lock.duration.ms"].value == "30000"


def test_group_configs_are_checked_as_kafka_does(gateway: GatewayProcess) -> None:
    with pytest.raises(KafkaException, match="INVALID_CONFIG"):
        configure(gateway.bootstrap, "share-bad", group_share_delivery_count_limit=1)
    with pytest.raises(KafkaException, match="INVALID_CONFIG"):
        configure(gateway.bootstrap, "share-bad", share_auto_offset_reset="by_duration:PT1H")
    with pytest.raises(KafkaException, match="INVALID_CONFIG"):
        configure(gateway.bootstrap, "share-bad", no_such_config=1)


def test_state_survives_the_loss_of_the_coordinator_gateway(topic_name: str, tmp_path: Path) -> None:
    """Two gateways on a Redis of their own; the group's coordinator is killed mid-consumption."""
    server = RedisServer(tmp_path / "redis").start()
    gateways = {node: GatewayProcess(server.url, extra_args=["--node-id", str(node)]).start()
                for node in (1, 2)}
    bootstrap = ",".join(process.bootstrap for process in gateways.values())
    try:
        group = new_group(bootstrap, group_share_record_lock_duration_ms=LOCK_MS)
        create_topic(bootstrap, topic_name)
        values = produce(bootstrap, topic_name, 40)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        coordinator = admin.describe_consumer_groups([group])[group].result(timeout=30).coordinator.id
        share = consumer(bootstrap, group, topic_name, **{"share.acknowledgement.mode": "explicit",
                                                          "max.poll.records": 10})
        try:
            held = poll_records(share, 10)
            accepted = held[:5]
            for message in accepted:
                share.acknowledge(message, AcknowledgeType.ACCEPT)
            share.commit_sync()
            gateways.pop(coordinator).stop(sig=9)
            # The other five are released: at once if their partition's gateway is the one left,
            # else when their locks end (the release went to the dead one).
            for message in held[5:]:
                share.acknowledge(message, AcknowledgeType.RELEASE)
            rest: list[Any] = []
            deadline = time.monotonic() + 60
            while len(rest) < 35 and time.monotonic() < deadline:
                for message in share.poll(0.5) or []:
                    if message.error() is None:
                        rest.append(message)
                        share.acknowledge(message, AcknowledgeType.ACCEPT)
                with contextlib.suppress(KafkaException):
                    share.commit_sync(5)
        finally:
            share.close()
    finally:
        for process in gateways.values():
            process.stop()
        server.stop()
    got = Counter(m.value() for m in accepted + rest)
    assert set(got) == set(values), sorted(set(values) - set(got))
    assert all(got[m.value()] == 1 for m in accepted)  # accepted before the loss: never again


def test_share_group_describe(gateway: GatewayProcess, topic_name: str) -> None:
    """ShareGroupDescribe v1 on the wire (the Java tools at hand speak only v0)."""
    from tests.integration.test_protocol import Wire, build, request_types

    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name, partitions=2)
    share = consumer(gateway.bootstrap, group, topic_name, **{"client.id": "describer"})
    wire = Wire(gateway.bootstrap)
    try:
        def describe() -> Any:
            request = build(request_types(77, 1).ShareGroupDescribeRequest,
                            group_ids=(group, "no-such-share-group"), include_authorized_operations=False)
            return wire.call(request).groups

        deadline = time.monotonic() + 20
        while not describe()[0].members and time.monotonic() < deadline:
            share.poll(0.5)
        described, missing = describe()
        assert described.error_code == 0 and described.group_state == "Stable"
        (member,) = described.members
        assert member.client_id == "describer" and member.subscribed_topic_names == (topic_name,)
        assert member.member_epoch == described.group_epoch > 0
        (assigned,) = member.assignment.topic_partitions
        assert assigned.topic_name == topic_name and assigned.partitions == (0, 1)
        assert missing.error_code == 69 and missing.group_state == "Dead"  # GROUP_ID_NOT_FOUND
        share.close()
        assert describe()[0].group_state == "Empty"  # the member left (epoch -1)
    finally:
        wire.close()


def test_implicit_acknowledgement_rides_on_the_next_fetch(gateway: GatewayProcess, redis_server: RedisServer,
                                                          topic_name: str) -> None:
    """The next poll's ShareFetch carries the accepts, also when it finds nothing new."""
    client = redis_server.client()
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name, partitions=2)
    produce(gateway.bootstrap, topic_name, 6)
    share = consumer(gateway.bootstrap, group, topic_name)
    try:
        assert len(poll_records(share, 6)) == 6
        deadline = time.monotonic() + 10
        pending = None
        while pending != 0 and time.monotonic() < deadline:
            assert not list(share.poll(0.5) or [])
            pending = sum(client.xpending(stream(topic_name, p), group)["pending"] for p in range(2))
        assert pending == 0
    finally:
        share.close()


def test_share_groups_in_list_groups_and_delete_groups(gateway: GatewayProcess, redis_server: RedisServer,
                                                       topic_name: str) -> None:
    from tests.integration.test_protocol import Wire, build, request_types

    client = redis_server.client()
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name)
    produce(gateway.bootstrap, topic_name, 3)
    share = consumer(gateway.bootstrap, group, topic_name)
    admin = AdminClient({"bootstrap.servers": gateway.bootstrap})
    wire = Wire(gateway.bootstrap)

    def listed(*group_types: str) -> dict[str, tuple[str, str]]:
        request = build(request_types(16, 5).ListGroupsRequest, states_filter=(), types_filter=group_types)
        return {g.group_id: (g.group_type, g.group_state) for g in wire.call(request).groups}

    try:
        assert len(poll_records(share, 3)) == 3
        share.commit_sync()
        assert listed("share")[group] == ("share", "Stable")
        assert group not in listed("classic")
        assert group in listed()
        (refused,) = admin.delete_consumer_groups([group]).values()
        with pytest.raises(KafkaException, match="NON_EMPTY_GROUP"):
            refused.result(timeout=30)
        share.close()
        assert listed("share")[group] == ("share", "Empty")
        (deleted,) = admin.delete_consumer_groups([group]).values()
        deleted.result(timeout=30)
        assert group not in listed()
        assert client.xinfo_groups(stream(topic_name)) == []
        assert not client.exists(f"kafka:{{{topic_name}:0}}:share:{group}", f"kafka:share-group:{{{group}}}")
    finally:
        wire.close()


def test_describe_share_group_offsets(gateway: GatewayProcess, topic_name: str) -> None:
    """The start offset is the oldest record held, else the next to deliver; lag counts both."""
    from tests.integration.test_protocol import Wire, build, request_types

    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name)
    produce(gateway.bootstrap, topic_name, 10)
    share = consumer(gateway.bootstrap, group, topic_name,
                     **{"share.acknowledgement.mode": "explicit", "max.poll.records": 4})
    wire = Wire(gateway.bootstrap)

    def described(version: int = 1) -> Any:
        types = request_types(90, version)
        request = build(types.DescribeShareGroupOffsetsRequest, groups=(
            build(types.DescribeShareGroupOffsetsRequestGroup, group_id=group, topics=None),
            build(types.DescribeShareGroupOffsetsRequestGroup, group_id="no-such-share-group", topics=None)))
        return wire.call(request).groups

    try:
        got = poll_records(share, 4)
        assert sorted(m.offset() for m in got) == [0, 1, 2, 3]
        for message in got:
            share.acknowledge(message, AcknowledgeType.ACCEPT)
        share.commit_sync()
        ours, missing = described()
        (topic,) = ours.topics
        (partition,) = topic.partitions
        assert (topic.topic_name, partition.start_offset, partition.lag) == (topic_name, 4, 6)
        assert missing.error_code == 69  # GROUP_ID_NOT_FOUND
        held = poll_records(share, 4)  # offsets 4-7 held, not acknowledged
        assert sorted(m.offset() for m in held) == [4, 5, 6, 7]
        (partition,) = described()[0].topics[0].partitions
        assert (partition.start_offset, partition.lag) == (4, 6)
        (partition,) = described(0)[0].topics[0].partitions
        assert partition.start_offset == 4
        for message in held:
            share.acknowledge(message, AcknowledgeType.ACCEPT)
        share.commit_sync()
        (partition,) = described()[0].topics[0].partitions
        assert (partition.start_offset, partition.lag) == (8, 2)
    finally:
        share.close()
        wire.close()

def test_alter_and_delete_share_group_offsets(gateway: GatewayProcess, redis_server: RedisServer,
                                              topic_name: str) -> None:
    from tests.integration.test_protocol import Wire, build, request_types

    client = redis_server.client()
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name)
    produce(gateway.bootstrap, topic_name, 10)
    wire = Wire(gateway.bootstrap)

    def alter(offset: int) -> Any:
        types = request_types(91, 0)
        partition = build(types.AlterShareGroupOffsetsRequestPartition, partition_index=0,
                          start_offset=offset)
        topic = build(types.AlterShareGroupOffsetsRequestTopic, topic_name=topic_name,
                      partitions=(partition,))
        return wire.call(build(types.AlterShareGroupOffsetsRequest, group_id=group, topics=(topic,)))

    def delete() -> Any:
        types = request_types(92, 0)
        return wire.call(build(types.DeleteShareGroupOffsetsRequest, group_id=group, topics=(
            build(types.DeleteShareGroupOffsetsRequestTopic, topic_name=topic_name),)))

    try:
        answer = alter(7)
        assert answer.error_code == 0 and answer.responses[0].partitions[0].error_code == 0
        share = consumer(gateway.bootstrap, group, topic_name)
        try:
            got = poll_records(share, 3)
            assert sorted(m.offset() for m in got) == [7, 8, 9]
            assert alter(0).error_code == 68  # NON_EMPTY_GROUP while the consumer is a member
            share.commit_sync()
        finally:
            share.close()
        assert alter(2).error_code == 0
        assert redis_group(client, topic_name, group)["entries-read"] == 2
        answer = delete()
        assert answer.error_code == 0 and answer.responses[0].error_code == 0
        assert client.xinfo_groups(stream(topic_name)) == []
    finally:
        wire.close()


def test_no_request_failed_inside_the_gateway(gateway: GatewayProcess) -> None:
    """Run last: every share request of the module's tests was answered, none closed on an error.

    librdkafka retries on a new connection, so a response the gateway
    failed to encode would otherwise go unnoticed by the tests above.
    """
    assert gateway.log_path is not None
    log = gateway.log_path.read_text()
    assert "unexpected error" not in log and " failed\n" not in log, log[-3000:]


def described_assignment(bootstrap: str, group: str) -> dict[str, tuple[int, ...]]:
    """Each member's partitions of the group's one topic, from ShareGroupDescribe v1."""
    from tests.integration.test_protocol import Wire, build, request_types

    wire = Wire(bootstrap)
    try:
        request = build(request_types(77, 1).ShareGroupDescribeRequest, group_ids=(group,),
                        include_authorized_operations=False)
        (described,) = wire.call(request).groups
    finally:
        wire.close()
    return {member.member_id: tuple(partition for topic in member.assignment.topic_partitions
                                    for partition in topic.partitions)
            for member in described.members}


def settle(bootstrap: str, group: str, shares: list[Any], members: int,
           done: Any = lambda assigned: True) -> dict[str, tuple[int, ...]]:
    """Poll the consumers until the group has this many members and done(assignment) holds,
    then one heartbeat interval more, so every consumer has heard its assignment."""
    deadline = time.monotonic() + 30
    assigned = described_assignment(bootstrap, group)
    while (len(assigned) != members or not done(assigned)) and time.monotonic() < deadline:
        for share in shares:
            assert not share.poll(0.2)  # nothing produced yet
        assigned = described_assignment(bootstrap, group)
    until = time.monotonic() + 6  # the gateway's heartbeat interval is 5 s
    while time.monotonic() < until:
        for share in shares:
            assert not share.poll(0.2)
    return assigned


def test_partitions_spread_over_members(gateway: GatewayProcess, topic_name: str) -> None:
    """SimpleAssignor: 4 partitions, 2 members: 2 each, disjoint; each record consumed once."""
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name, partitions=4)
    shares = [consumer(gateway.bootstrap, group, topic_name, **{"max.poll.records": 50}) for _ in range(2)]
    try:
        assigned = settle(gateway.bootstrap, group, shares, 2)
        assert sorted(len(partitions) for partitions in assigned.values()) == [2, 2], assigned
        assert sorted(p for partitions in assigned.values() for p in partitions) == [0, 1, 2, 3]
        producer = Producer({"bootstrap.servers": gateway.bootstrap})
        values = [f"s{i}".encode() for i in range(400)]
        for i, value in enumerate(values):
            producer.produce(topic_name, value=value, partition=i % 4)
        assert producer.flush(30) == 0
        total = Counter[bytes]()
        partitions_of: list[set[int]] = [set(), set()]
        deadline = time.monotonic() + 60
        while len(total) < len(values) and time.monotonic() < deadline:
            for index, share in enumerate(shares):
                for message in share.poll(0.3) or []:
                    assert message.error() is None, message.error()
                    total[message.value()] += 1
                    partitions_of[index].add(message.partition())
        assert sorted(total) == sorted(values) and max(total.values()) == 1
        assert [len(seen) for seen in partitions_of] == [2, 2], partitions_of
        assert not partitions_of[0] & partitions_of[1]
        assert sorted(map(tuple, map(sorted, partitions_of))) == sorted(assigned.values())
    finally:
        for share in shares:
            share.close()


def test_more_members_than_partitions_share_them(gateway: GatewayProcess, topic_name: str) -> None:
    """SimpleAssignor: 1 partition, 3 members: all three are assigned it."""
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name)
    shares = [consumer(gateway.bootstrap, group, topic_name) for _ in range(3)]
    try:
        assigned = settle(gateway.bootstrap, group, shares, 3)
        assert sorted(assigned.values()) == [(0,), (0,), (0,)], assigned
    finally:
        for share in shares:
            share.close()


def test_assignment_is_stable_when_a_member_joins(gateway: GatewayProcess, topic_name: str) -> None:
    """SimpleAssignor: a member joining takes partitions from others, no partition moves between
    the members who stay."""
    group = new_group(gateway.bootstrap)
    create_topic(gateway.bootstrap, topic_name, partitions=6)
    shares = [consumer(gateway.bootstrap, group, topic_name) for _ in range(2)]
    try:
        before = settle(gateway.bootstrap, group, shares, 2)
        assert sorted(len(partitions) for partitions in before.values()) == [3, 3], before
        shares.append(consumer(gateway.bootstrap, group, topic_name))
        after = settle(gateway.bootstrap, group, shares, 3)
        assert sorted(len(partitions) for partitions in after.values()) == [2, 2, 2], after
        for member, partitions in before.items():
            assert set(after[member]) <= set(partitions), (before, after)
    finally:
        for share in shares:
            share.close()
