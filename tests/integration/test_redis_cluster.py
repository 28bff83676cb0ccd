"""The gateway on a real three-primary Redis Cluster, found from one node's URL.

Partitions of one topic land on different nodes (each partition's keys
share a hash tag, so a slot); produce, fetch, the long-poll, consumer
groups, ListOffsets and DeleteRecords go to each partition's node.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    OffsetSpec,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka_redis_gateway.gateway.security.acls import (
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from kafka_redis_gateway.gateway.storage import StorageUnavailable, keys
from kafka_redis_gateway.gateway.storage.acls import RedisAclStore
from kafka_redis_gateway.gateway.storage.brokers import BrokerRegistration, Endpoint, RedisBrokerRegistry
from kafka_redis_gateway.gateway.storage.credentials import RedisCredentialStore
from kafka_redis_gateway.gateway.storage.group_base import Fenced, OffsetCommit
from kafka_redis_gateway.gateway.storage.groups import RedisGroupStorage
from kafka_redis_gateway.gateway.storage.leases import Acquired, Holder, RedisLeaseStore

from tests.integration.test_confluent import (
    Rec,
    as_rec,
    by_partition,
    consumed_records,
    create_topic,
    make_producer,
    produce,
    produce_ok,
    read_to_end,
    sample_records,
    wait_all,
)
from tests.redis_cluster import RedisClusterServers, migrate_slot, module_redis_cluster
from tests.servers import GatewayProcess

PARTITIONS = 6


redis_cluster = module_redis_cluster("redis_cluster")


@pytest.fixture(scope="module")
def cluster_gateway(redis_cluster: RedisClusterServers,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    log = Path(tmp_path_factory.mktemp("gateway")) / "gateway.log"
    process = GatewayProcess(redis_cluster.url, log_path=log, extra_args=[
        "--node-id", "0", "--adopt-streams", "native-*", "--retention-check-interval-ms", "200"]).start()
    yield process
    process.stop()


@pytest.fixture
def bootstrap(cluster_gateway: GatewayProcess) -> str:
    return cluster_gateway.bootstrap


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def stream_lengths(cluster: RedisClusterServers, topic: str) -> dict[int, tuple[int, int]]:
    """Each partition's (node port, XLEN) as its own node answers."""
    found = {}
    for partition in range(PARTITIONS):
        node = cluster.node_of(keys.stream(topic, partition))
        client = node.client()
        try:
            found[partition] = (node.port, int(client.xlen(keys.stream(topic, partition))))
        finally:
            client.close()
    return found


def test_produce_and_consume_over_partitions_on_every_node(
        redis_cluster: RedisClusterServers, admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, PARTITIONS)
    records = sample_records(PARTITIONS)
    produce_ok(bootstrap, topic_name, records, **{"enable.idempotence": True})
    assert consumed_records(bootstrap, topic_name, PARTITIONS) == by_partition(records, PARTITIONS)
    lengths = stream_lengths(redis_cluster, topic_name)
    # The partitions are spread over all three primaries, each stream on its own node.
    assert len({port for port, _ in lengths.values()}) == 3
    assert [length for _, length in lengths.values()] == [
        len(by_partition(records, PARTITIONS)[p]) for p in range(PARTITIONS)]


def test_long_poll_wakes_for_a_partition_on_another_node(
        redis_cluster: RedisClusterServers, admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, PARTITIONS)
    first = redis_cluster.nodes[0].port
    partition = next(p for p in range(PARTITIONS)
                     if redis_cluster.node_of(keys.stream(topic_name, p)).port != first)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 30_000})
    try:
        consumer.assign([TopicPartition(topic_name, p, 0) for p in range(PARTITIONS)])
        assert consumer.poll(1.0) is None  # the fetch is parked in its long-poll now
        produce_ok(bootstrap, topic_name, [Rec(partition, b"k", b"woken")])
        # Without a wake-up the record would come only after fetch.wait.max.ms (30 s).
        message = None
        deadline = time.monotonic() + 15
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.2)
        assert message is not None and message.error() is None
        assert (message.partition(), message.value()) == (partition, b"woken")
    finally:
        consumer.close()


def test_group_commits_live_on_each_partitions_node(
        redis_cluster: RedisClusterServers, admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, PARTITIONS)
    records = sample_records(PARTITIONS)
    produce_ok(bootstrap, topic_name, records)
    group = f"g-{topic_name}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic_name])
        seen = []
        while len(seen) < len(records):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                seen.append(as_rec(message))
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic_name, p) for p in range(PARTITIONS)], 10)
    finally:
        consumer.close()
    expected = by_partition(records, PARTITIONS)
    assert {tp.partition: tp.offset for tp in committed} == {p: len(expected[p]) for p in range(PARTITIONS)}
    for partition in range(PARTITIONS):
        stream = keys.stream(topic_name, partition)
        client = redis_cluster.node_of(stream).client()
        try:
            (info,) = client.xinfo_groups(stream)
        finally:
            client.close()
        assert info["name"].decode() == group
        assert info["entries-read"] == len(expected[partition])


def test_list_offsets_and_delete_records(
        admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, PARTITIONS)
    records = [Rec(p, None, b"%d" % i) for i in range(5) for p in range(PARTITIONS)]
    produce_ok(bootstrap, topic_name, records)
    partitions = [TopicPartition(topic_name, p, 2 + p % 3) for p in range(PARTITIONS)]
    deleted = wait_all(admin.delete_records(partitions))
    assert {tp.partition: result.low_watermark for tp, result in deleted.items()} == {
        p: 2 + p % 3 for p in range(PARTITIONS)}
    earliest = wait_all(admin.list_offsets(
        {TopicPartition(topic_name, p): OffsetSpec.earliest() for p in range(PARTITIONS)}))
    latest = wait_all(admin.list_offsets(
        {TopicPartition(topic_name, p): OffsetSpec.latest() for p in range(PARTITIONS)}))
    assert {tp.partition: r.offset for tp, r in earliest.items()} == {p: 2 + p % 3 for p in range(PARTITIONS)}
    assert {tp.partition: r.offset for tp, r in latest.items()} == dict.fromkeys(range(PARTITIONS), 5)


def test_retention_trims_every_partition_on_its_node(
        admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, PARTITIONS, {"retention.ms": "1"})
    produce_ok(bootstrap, topic_name, [Rec(p, None, b"%d" % i) for i in range(3) for p in range(PARTITIONS)])
    specs = {TopicPartition(topic_name, p): OffsetSpec.earliest() for p in range(PARTITIONS)}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        earliest = {tp.partition: r.offset for tp, r in wait_all(admin.list_offsets(specs)).items()}
        if earliest == dict.fromkeys(range(PARTITIONS), 3):
            break
        time.sleep(0.2)
    assert earliest == dict.fromkeys(range(PARTITIONS), 3)


def test_adopted_streams_on_different_nodes(
        redis_cluster: RedisClusterServers, admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    streams = [f"native-{topic_name}-{i}" for i in range(PARTITIONS)]
    assert len({redis_cluster.node_of(key).port for key in streams}) > 1
    for index, key in enumerate(streams):
        client = redis_cluster.node_of(key).client()
        try:
            client.xadd(key, {"n": str(index)})
        finally:
            client.close()
    create_topic(admin, topic_name, PARTITIONS, {"redis.stream.keys": ",".join(streams)})
    produce_ok(bootstrap, topic_name, [Rec(p, None, b"kafka") for p in range(PARTITIONS)])
    found = read_to_end(bootstrap, topic_name, PARTITIONS)
    assert {p: [m.offset() for m in found[p]] for p in found} == {p: [0, 1] for p in range(PARTITIONS)}
    assert all(found[p][1].value() == b"kafka" for p in found)
    for key in streams:
        client = redis_cluster.node_of(key).client()
        try:
            assert client.xlen(key) == 2  # the Kafka record went into the native stream, on its node
        finally:
            client.close()


def test_functions_loaded_again_on_a_node_that_lost_them(
        redis_cluster: RedisClusterServers, admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, PARTITIONS)
    produce_ok(bootstrap, topic_name, [Rec(p, None, b"before") for p in range(PARTITIONS)])
    flushed = redis_cluster.nodes[2]
    client = flushed.client()
    try:
        client.execute_command("FUNCTION", "FLUSH")
        assert client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "krg_*") == []
        # The clients retry the appends that met the library missing (nothing ran).
        produce_ok(bootstrap, topic_name, [Rec(p, None, b"after") for p in range(PARTITIONS)])
        assert len(client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "krg_*")) == 1
    finally:
        client.close()
    found = read_to_end(bootstrap, topic_name, PARTITIONS)
    assert {p: [m.value() for m in found[p]] for p in found} == {
        p: [b"before", b"after"] for p in range(PARTITIONS)}


def test_adopt_and_inspect_tools_on_a_cluster(
        redis_cluster: RedisClusterServers, bootstrap: str, topic_name: str) -> None:
    streams = [f"native-{topic_name}-{i}" for i in range(3)]
    for key in streams:
        client = redis_cluster.node_of(key).client()
        try:
            client.xadd(key, {"n": "1"})
        finally:
            client.close()
    tool = [sys.executable, "-m", "kafka_redis_gateway.gateway"]
    done = subprocess.run([*tool, "adopt", topic_name, *streams, "--redis-url", redis_cluster.url],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    shown = subprocess.run([*tool, "inspect", topic_name, "--json", "--redis-url", redis_cluster.url],
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    (topic,) = json.loads(shown.stdout)
    assert [(p["stream"], p["length"]) for p in topic["partitions"]] == [(key, 1) for key in streams]
    found = read_to_end(bootstrap, topic_name, 3)
    assert [len(found[p]) for p in range(3)] == [1, 1, 1]


def test_a_slot_migrated_while_an_idempotent_producer_writes(
        redis_cluster: RedisClusterServers, admin: AdminClient, bootstrap: str, topic_name: str) -> None:
    create_topic(admin, topic_name, 1)
    stream = keys.stream(topic_name, 0)
    source = redis_cluster.node_of(stream)
    target = next(node for node in redis_cluster.nodes if node is not source)
    produce_ok(bootstrap, topic_name, [Rec(0, None, b"first")])  # the partition's keys exist
    client = source.client()
    slot = int(client.execute_command("CLUSTER", "KEYSLOT", stream))
    count = 5000
    errors: list[Exception] = []

    def write() -> None:
        try:
            with make_producer(bootstrap, **{"enable.idempotence": True, "linger.ms": 1,
                                             "batch.num.messages": 50}) as producer:
                reports = produce(producer, topic_name, [Rec(0, None, b"%d" % i) for i in range(count)])
            failed = [report.error() for report in reports if report.error() is not None]
            if failed:
                errors.append(AssertionError(f"{len(failed)} deliveries failed: {failed[:3]}"))
        except Exception as exc:  # reported below, on the test's thread
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    while int(client.xlen(stream)) < 100:  # the producer is writing
        time.sleep(0.01)
    moved = migrate_slot(redis_cluster, slot, source, target, between_keys=0.05)
    # The slot moved while records were still coming: the writes met it moving and moved.
    moved_to = target.client()
    written_before = int(moved_to.xlen(stream))
    moved_to.close()
    writer.join(120)
    client.close()
    assert not writer.is_alive() and not errors, errors
    assert written_before < count + 1
    assert moved >= 3  # stream, offset index, metadata (and producer state) moved one by one
    assert redis_cluster.node_of(stream) is target
    messages = read_to_end(bootstrap, topic_name)[0]
    assert [m.value() for m in messages] == [b"first", *(b"%d" % i for i in range(count))]
    assert [m.offset() for m in messages] == list(range(count + 1))


def test_scram_users_on_a_redis_cluster(admin: AdminClient) -> None:
    # Both mechanisms' hashes share the {scram} tag: one MULTI on one node.
    upserts = [UserScramCredentialUpsertion("cluster-user", ScramCredentialInfo(mechanism, 4096), b"pw")
               for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
    admin.alter_user_scram_credentials(upserts)["cluster-user"].result(timeout=30)
    described = admin.describe_user_scram_credentials(["cluster-user"])["cluster-user"].result(timeout=30)
    assert sorted(info.mechanism for info in described.scram_credential_infos) == [
        ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512]
    assert "cluster-user" in admin.describe_user_scram_credentials().result(timeout=30)


async def test_acls_on_a_redis_cluster(redis_cluster: RedisClusterServers) -> None:
    # The set and its version share the {acls} tag: each change is one MULTI on one node,
    # and a snapshot (GET and HGETALL in one MULTI) always matches its version.
    store = RedisAclStore(redis_cluster.url, cluster=True)
    binding = AclBinding(ResourceType.TOPIC, "orders", PatternType.PREFIXED, "User:alice", "*",
                         Operation.READ, Permission.ALLOW)
    try:
        before = await store.version()
        await store.create([binding])
        loaded = await store.load()
        assert loaded.version == before + 1 and binding in loaded.bindings
        assert await store.delete([binding]) == [True]
        loaded = await store.load()
        assert loaded.version == before + 2 and binding not in loaded.bindings
    finally:
        await store.close()


async def test_a_cluster_that_serves_no_slot_is_unavailable_to_every_store(tmp_path: Path) -> None:
    """CLUSTERDOWN (and redis-py's "slots not covered") from the group, broker and credential
    stores is StorageUnavailable, which handlers answer with a retriable Kafka error."""
    cluster = RedisClusterServers(tmp_path, primaries=1).start()
    groups = RedisGroupStorage(cluster.url, cluster=True)
    brokers = RedisBrokerRegistry(cluster.url, cluster=True)
    credentials = RedisCredentialStore(cluster.url, cluster=True)
    leases = RedisLeaseStore(cluster.url, cluster=True)
    holder = Holder(7, "instance")
    registration = BrokerRegistration(7, (Endpoint("PLAINTEXT", "127.0.0.1", 9092),))
    node = cluster.nodes[0].client()
    try:
        # Every store has its slot map before the slots go.
        assert await groups.save_membership("g", 1, b"state")
        assert (await brokers.renew(registration, "instance", 1000)).held
        assert await credentials.credential("alice", "SCRAM-SHA-256") is None
        assert await leases.acquire(keys.group_membership("g"), holder, 1000) == Acquired(1)
        node.execute_command("CLUSTER", "DELSLOTSRANGE", 0, 16383)
        with pytest.raises(StorageUnavailable):
            await groups.save_membership("g", 2, b"state")
        with pytest.raises(StorageUnavailable):
            await groups.commit_offsets("g", [OffsetCommit("t", 0, 1, -1, "")], "consumer")
        with pytest.raises(StorageUnavailable):
            await brokers.renew(registration, "instance", 1000)
        with pytest.raises(StorageUnavailable):
            await credentials.credential("alice", "SCRAM-SHA-256")
        with pytest.raises(StorageUnavailable):
            await leases.acquire(keys.group_membership("g"), holder, 1000)
        with pytest.raises(StorageUnavailable):
            await leases.holders([keys.group_membership("g")])
    finally:
        node.close()
        await groups.close()
        await brokers.close()
        await credentials.close()
        await leases.close()
        cluster.stop()


async def test_coordinator_fencing_on_a_cluster(redis_cluster: RedisClusterServers) -> None:
    """The lease, the membership and the fence stamps each live in their own slot
    (the group's key, each partition's tag), on different nodes, and fencing holds."""
    leases = RedisLeaseStore(redis_cluster.url, cluster=True)
    groups = RedisGroupStorage(redis_cluster.url, cluster=True)
    # Braces in the group ID: its key hashes by that tag, and the lease goes with it.
    group = "fenced-{on-a-cluster}"
    key = keys.group_membership(group)
    topic = "fenced-topic"
    try:
        assert len({redis_cluster.node_of(keys.stream(topic, p)).port for p in range(PARTITIONS)}) > 1
        assert await leases.acquire(key, Holder(1, "one"), 60_000) == Acquired(1)
        assert await groups.save_membership(group, 1, b"first", 1)
        first = [OffsetCommit(topic, p, 5) for p in range(PARTITIONS)]
        assert await groups.commit_offsets(group, first, "consumer", 1) == [None] * PARTITIONS
        await leases.release([key], Holder(1, "one"))
        assert await leases.acquire(key, Holder(2, "two"), 60_000) == Acquired(2)
        assert await groups.commit_offsets(group, first, "consumer", 2) == [None] * PARTITIONS
        with pytest.raises(Fenced):
            await groups.save_membership(group, 2, b"stale", 1)
        stale = await groups.commit_offsets(group, [OffsetCommit(topic, p, 9) for p in range(PARTITIONS)],
                                            "consumer", 1)
        assert all(isinstance(result, Fenced) for result in stale), stale
        fetched = await groups.fetch_offsets(group, [(topic, p) for p in range(PARTITIONS)])
        assert [offset.offset for offset in fetched] == [5] * PARTITIONS
        assert await groups.load_membership(group) == b"first"
    finally:
        await leases.close()
        await groups.close()


def test_share_group_on_a_redis_cluster(bootstrap: str, topic_name: str) -> None:
    """Share groups (KIP-932): configs, acquisition, acknowledgement, describe and delete across nodes."""
    from tests.integration.test_share_groups import (
        consumer,
        new_group,
        poll_records,
    )
    from tests.integration.test_share_groups import (
        create_topic as create_share_topic,
    )
    from tests.integration.test_share_groups import (
        produce as produce_values,
    )

    group = new_group(bootstrap)
    create_share_topic(bootstrap, topic_name, PARTITIONS)
    values = produce_values(bootstrap, topic_name, 30)
    share = consumer(bootstrap, group, topic_name)
    try:
        got = poll_records(share, 30)
        share.commit_sync()
    finally:
        share.close()
    assert sorted(m.value() for m in got) == sorted(values)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (deleted,) = admin.delete_consumer_groups([group]).values()
    deleted.result(timeout=30)
