"""Kafka ACLs: created, described and deleted with real clients, and enforced on every API.

The gateways here run --authorizer true on a Redis of this module's own,
with a PLAINTEXT listener whose principal (User:ANONYMOUS) is a super user
(the operator's) and a SASL_PLAINTEXT listener where alice (no grant) and
bob (granted what each test grants) log in with PLAIN.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.admin import (
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePatternFilter,
)
from kafka.admin import ResourceType as PyResourceType
from kafka.errors import ClusterAuthorizationFailedError, SecurityDisabledError
from kafka_redis_gateway.gateway.embedded import free_port
from kafka_redis_gateway.gateway.storage import RedisStorage
from kafka_redis_gateway.gateway.storage.transactions import Producer as TxnProducer
from kafka_redis_gateway.gateway.storage.transactions import partition_member

from tests.integration.test_protocol import Wire, build, request_types
from tests.servers import GatewayProcess, RedisServer

# dave is granted nothing in any test.
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "dave": "dave-secret"}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own: its ACLs and gateways are no other module's."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class AclGateway:
    """A gateway with the authorizer on: PLAINTEXT for the operator, SASL_PLAINTEXT for users."""

    def __init__(self, redis_url: str, log: Path, *extra: str) -> None:
        self.plain, self.sasl = free_port(), free_port()
        self.process = GatewayProcess(
            redis_url, port=self.plain, log_path=log,
            listeners=f"PLAINTEXT://127.0.0.1:{self.plain},SASL_PLAINTEXT://127.0.0.1:{self.sasl}",
            extra_args=["--sasl-enabled-mechanisms", "PLAIN", "--authorizer", "true",
                        "--super-users", "User:ANONYMOUS", *extra]).start()

    def operator(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": f"127.0.0.1:{self.plain}"})

    def settings(self, user: str) -> dict[str, Any]:
        return {"bootstrap.servers": f"127.0.0.1:{self.sasl}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": PASSWORDS[user]}

    def admin(self, user: str) -> AdminClient:
        return AdminClient(self.settings(user))


def create_users(admin: AdminClient) -> None:
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                            password.encode())
               for user, password in PASSWORDS.items()]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclGateway]:
    started = AclGateway(redis_server.url, tmp_path_factory.mktemp("acls") / "gateway.log")
    try:
        create_users(started.operator())
        yield started
    finally:
        started.process.stop()


def allow(user: str, resource: ResourceType, name: str, operation: AclOperation,
          pattern: ResourcePatternType = ResourcePatternType.LITERAL,
          permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(resource, name, pattern, f"User:{user}", "*", operation, permission)


def create_acls(admin: AdminClient, *bindings: AclBinding) -> None:
    for future in admin.create_acls(list(bindings)).values():
        future.result(timeout=30)


def create_topic(admin: AdminClient, topic: str) -> None:
    for future in admin.create_topics([NewTopic(topic, 1)]).values():
        future.result(timeout=30)


def every_acl_filter(user: str | None = None) -> AclBindingFilter:
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,
                            None if user is None else f"User:{user}", None,
                            AclOperation.ANY, AclPermissionType.ANY)


def produce_error(settings: dict[str, Any], topic: str) -> KafkaError | None:
    """What producing one record says: None when written."""
    results: list[KafkaError | None] = []
    producer = Producer({**settings, "message.timeout.ms": 10000})
    producer.produce(topic, b"v", on_delivery=lambda error, _message: results.append(error))
    producer.flush(20)
    assert results, "no delivery report"
    return results[0]


def consume_error(settings: dict[str, Any], topic: str, group: str) -> KafkaError | None:
    """The first error consuming the topic in the group reports; None once a record arrives."""
    consumer = Consumer({**settings, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            return message.error()
        raise AssertionError("neither a record nor an error within 30 s")
    finally:
        consumer.close()


def kafka_code(call: Callable[[], Any]) -> int:
    """The Kafka error code the admin call fails with."""
    with pytest.raises(KafkaException) as failure:
        call()
    code: int = failure.value.args[0].code()
    return code


# -- the ACL APIs -----------------------------------------------------------------


def test_acls_are_created_described_and_deleted_through_the_admin_client(gateway: AclGateway) -> None:
    admin = gateway.operator()
    prefix = f"p-{uuid.uuid4().hex[:8]}"
    bindings = [allow("carol", ResourceType.TOPIC, prefix, AclOperation.READ, ResourcePatternType.PREFIXED),
                allow("carol", ResourceType.GROUP, f"{prefix}-g", AclOperation.READ),
                allow("carol", ResourceType.TOPIC, f"{prefix}-x", AclOperation.WRITE,
                      permission=AclPermissionType.DENY)]
    create_acls(admin, *bindings)
    create_acls(admin, bindings[0])  # again: Kafka accepts an ACL that exists
    described = admin.describe_acls(every_acl_filter("carol")).result(timeout=30)
    assert sorted(map(str, described)) == sorted(map(str, bindings))
    # MATCH: the ACLs that apply to one topic name (the prefixed one), not the others.
    applying = admin.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, f"{prefix}-y", ResourcePatternType.MATCH, None, None,
        AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    assert list(map(str, applying)) == [str(bindings[0])]
    deleted = admin.delete_acls([AclBindingFilter(
        ResourceType.TOPIC, None, ResourcePatternType.ANY, "User:carol", None,
        AclOperation.ANY, AclPermissionType.ANY)])
    assert sorted(map(str, next(iter(deleted.values())).result(timeout=30))) == \
        sorted(map(str, (bindings[0], bindings[2])))
    remaining = admin.describe_acls(every_acl_filter("carol")).result(timeout=30)
    assert list(map(str, remaining)) == [str(bindings[1])]


def test_an_invalid_acl_is_invalid_request(gateway: AclGateway) -> None:
    # The CLUSTER resource has one name (Kafka refuses the others).
    binding = AclBinding(ResourceType.BROKER, "not-kafka-cluster", ResourcePatternType.LITERAL,
                         "User:carol", "*", AclOperation.ALTER, AclPermissionType.ALLOW)
    admin = gateway.operator()
    future = next(iter(admin.create_acls([binding]).values()))
    assert kafka_code(lambda: future.result(timeout=30)) == KafkaError.INVALID_REQUEST


def python_describe_acls(bootstrap: str, **security: Any) -> Any:
    """DescribeAcls of everything with kafka-python, which raises the response's error code
    (librdkafka drops it and returns an empty list)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **security)
    try:
        return admin.describe_acls(ACLFilter(
            principal=None, host=None, operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(PyResourceType.ANY, None, ACLResourcePatternType.ANY)))
    finally:
        admin.close()


def test_acl_apis_need_cluster_describe_and_alter(gateway: AclGateway) -> None:
    with pytest.raises(ClusterAuthorizationFailedError):
        python_describe_acls(f"127.0.0.1:{gateway.sasl}", security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_plain_username="alice",
                             sasl_plain_password=PASSWORDS["alice"])
    admin = gateway.admin("alice")
    future = next(iter(admin.create_acls(
        [allow("alice", ResourceType.TOPIC, "*", AclOperation.ALL)]).values()))
    assert kafka_code(lambda: future.result(timeout=30)) == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_without_the_authorizer_the_acl_apis_say_security_disabled(tmp_path: Path) -> None:
    # A Redis of its own: on the module's, the admin would ask the cluster's
    # controller, which may be the gateway with the authorizer.
    redis_alone = RedisServer(tmp_path / "redis").start()
    plain = GatewayProcess(redis_alone.url, log_path=tmp_path / "gateway.log").start()
    try:
        with pytest.raises(SecurityDisabledError):
            python_describe_acls(plain.bootstrap)
    finally:
        plain.stop()
        redis_alone.stop()


# -- enforcement ------------------------------------------------------------------


def grant(gateway: AclGateway, *bindings: AclBinding) -> None:
    create_acls(gateway.operator(), *bindings)


def test_produce_needs_write_on_the_topic(gateway: AclGateway, topic_name: str) -> None:
    create_topic(gateway.operator(), topic_name)
    grant(gateway, allow("bob", ResourceType.TOPIC, topic_name, AclOperation.WRITE))
    refused = produce_error(gateway.settings("alice"), topic_name)
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(gateway.settings("bob"), topic_name) is None


def test_fetch_needs_read_on_the_topic(gateway: AclGateway, topic_name: str) -> None:
    operator = gateway.operator()
    create_topic(operator, topic_name)
    assert produce_error({"bootstrap.servers": f"127.0.0.1:{gateway.plain}"}, topic_name) is None
    # alice may see the topic and use the group, not read the topic.
    grant(gateway, allow("alice", ResourceType.TOPIC, topic_name, AclOperation.DESCRIBE),
          allow("alice", ResourceType.GROUP, topic_name, AclOperation.READ),
          allow("bob", ResourceType.TOPIC, topic_name, AclOperation.READ),
          allow("bob", ResourceType.GROUP, topic_name, AclOperation.READ))
    refused = consume_error(gateway.settings("alice"), topic_name, topic_name)
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert consume_error(gateway.settings("bob"), topic_name, topic_name) is None


def test_joining_a_group_needs_read_on_the_group(gateway: AclGateway, topic_name: str) -> None:
    create_topic(gateway.operator(), topic_name)
    group = f"g-{topic_name}"
    grant(gateway, allow("alice", ResourceType.TOPIC, topic_name, AclOperation.READ),
          allow("alice", ResourceType.GROUP, group, AclOperation.DESCRIBE))
    refused = consume_error(gateway.settings("alice"), topic_name, group)
    assert refused is not None and refused.code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_deleting_a_topic_needs_delete(gateway: AclGateway, topic_name: str) -> None:
    create_topic(gateway.operator(), topic_name)
    grant(gateway, allow("bob", ResourceType.TOPIC, topic_name, AclOperation.DELETE))
    for user, expected in (("alice", KafkaError.TOPIC_AUTHORIZATION_FAILED), ("bob", None)):
        admin = gateway.admin(user)
        future = admin.delete_topics([topic_name])[topic_name]
        if expected is None:
            future.result(timeout=30)
        else:
            assert kafka_code(lambda: future.result(timeout=30)) == expected  # noqa: B023
    assert topic_name not in gateway.operator().list_topics(timeout=30).topics


def test_changing_configs_needs_alter_configs(gateway: AclGateway, topic_name: str) -> None:
    create_topic(gateway.operator(), topic_name)
    grant(gateway, allow("bob", ResourceType.TOPIC, topic_name, AclOperation.ALTER_CONFIGS))

    def alter(user: str) -> Any:
        admin = gateway.admin(user)
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name, {"retention.ms": "3600000"})
        return admin.alter_configs([resource])[resource].result(timeout=30)

    assert kafka_code(lambda: alter("alice")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    alter("bob")
    # ALTER_CONFIGS implies DESCRIBE_CONFIGS; alice may not describe them.
    for user, expected in (("bob", None), ("alice", KafkaError.TOPIC_AUTHORIZATION_FAILED)):
        admin = gateway.admin(user)
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
        future = admin.describe_configs([resource])[resource]
        if expected is None:
            assert future.result(timeout=30)["retention.ms"].value == "3600000"
        else:
            assert kafka_code(lambda: future.result(timeout=30)) == expected  # noqa: B023


def test_prefixed_acls_and_deny_beating_allow(gateway: AclGateway) -> None:
    prefix = f"pre-{uuid.uuid4().hex[:8]}-"
    operator = gateway.operator()
    for suffix in ("open", "closed"):
        create_topic(operator, prefix + suffix)
    grant(gateway, allow("bob", ResourceType.TOPIC, prefix, AclOperation.WRITE, ResourcePatternType.PREFIXED),
          allow("bob", ResourceType.TOPIC, prefix + "closed", AclOperation.WRITE,
                permission=AclPermissionType.DENY))
    assert produce_error(gateway.settings("bob"), prefix + "open") is None
    refused = produce_error(gateway.settings("bob"), prefix + "closed")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_metadata_lists_only_topics_the_principal_may_describe(gateway: AclGateway, topic_name: str) -> None:
    create_topic(gateway.operator(), topic_name)
    grant(gateway, allow("bob", ResourceType.TOPIC, topic_name, AclOperation.READ))  # implies DESCRIBE
    assert topic_name in gateway.admin("bob").list_topics(timeout=30).topics
    assert topic_name not in gateway.admin("alice").list_topics(timeout=30).topics
    # Named, it is refused (not unknown): whether it exists is not told.
    named = gateway.admin("alice").list_topics(topic_name, timeout=30).topics[topic_name]
    assert named.error is not None and named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_auto_creation_needs_create(gateway: AclGateway, topic_name: str) -> None:
    grant(gateway, allow("alice", ResourceType.TOPIC, topic_name, AclOperation.WRITE))
    refused = produce_error(gateway.settings("alice"), topic_name)
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert topic_name not in gateway.operator().list_topics(timeout=30).topics
    grant(gateway, allow("alice", ResourceType.TOPIC, topic_name, AclOperation.CREATE))
    assert produce_error(gateway.settings("alice"), topic_name) is None


def test_an_acl_applies_only_to_its_host(gateway: AclGateway, topic_name: str) -> None:
    # bob, not dave: WRITE on any topic lets dave's idempotent producer in (another test).
    create_topic(gateway.operator(), topic_name)
    elsewhere = AclBinding(ResourceType.TOPIC, topic_name, ResourcePatternType.LITERAL, "User:bob",
                           "10.0.0.1", AclOperation.WRITE, AclPermissionType.ALLOW)
    grant(gateway, elsewhere)
    refused = produce_error(gateway.settings("bob"), topic_name)
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(gateway, AclBinding(ResourceType.TOPIC, topic_name, ResourcePatternType.LITERAL, "User:bob",
                              "127.0.0.1", AclOperation.WRITE, AclPermissionType.ALLOW))
    assert produce_error(gateway.settings("bob"), topic_name) is None


def test_allow_everyone_if_no_acl_found_opens_only_resources_without_acls(tmp_path: Path) -> None:
    redis_alone = RedisServer(tmp_path / "redis").start()
    opened = AclGateway(redis_alone.url, tmp_path / "gateway.log", "--allow-everyone-if-no-acl-found", "true")
    try:
        operator = opened.operator()
        create_users(operator)
        without_acls, with_acls = f"open-{uuid.uuid4().hex[:8]}", f"closed-{uuid.uuid4().hex[:8]}"
        for topic in (without_acls, with_acls):
            create_topic(operator, topic)
        create_acls(operator, allow("bob", ResourceType.TOPIC, with_acls, AclOperation.WRITE))
        assert produce_error(opened.settings("dave"), without_acls) is None
        refused = produce_error(opened.settings("dave"), with_acls)
        assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        assert produce_error(opened.settings("bob"), with_acls) is None
    finally:
        opened.process.stop()
        redis_alone.stop()


def test_acls_created_through_one_gateway_are_enforced_by_another(tmp_path: Path) -> None:
    redis_alone = RedisServer(tmp_path / "redis").start()
    first = AclGateway(redis_alone.url, tmp_path / "first.log", "--acl-refresh-ms", "200")
    second = AclGateway(redis_alone.url, tmp_path / "second.log", "--acl-refresh-ms", "200")
    try:
        create_users(first.operator())
        topic = f"t-{uuid.uuid4().hex[:8]}"
        operator = first.operator()
        for future in operator.create_topics([NewTopic(topic, 6)]).values():
            future.result(timeout=30)
        deadline = time.monotonic() + 30
        while len({p.leader for p in operator.list_topics(topic, timeout=30).topics[topic]
                   .partitions.values()}) < 2:
            assert time.monotonic() < deadline, "the two gateways never both led partitions"
            time.sleep(0.2)

        def produce_everywhere(gateway: AclGateway) -> set[int | None]:
            """The error codes of one record to each partition (led by both gateways), as bob."""
            codes: set[int | None] = set()
            producer = Producer({**gateway.settings("bob"), "message.timeout.ms": 10000})
            for partition in range(6):
                producer.produce(topic, b"v", partition=partition, on_delivery=lambda error, _m: codes.add(
                    None if error is None else error.code()))
            producer.flush(20)
            return codes

        assert produce_everywhere(second) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
        grant(first, allow("bob", ResourceType.TOPIC, topic, AclOperation.WRITE))
        time.sleep(0.6)  # the refresh interval, with room
        assert produce_everywhere(second) == {None}
        create_acls(second.operator(), allow("bob", ResourceType.TOPIC, topic, AclOperation.WRITE,
                                             permission=AclPermissionType.DENY))
        time.sleep(0.6)
        assert produce_everywhere(first) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    finally:
        first.process.stop()
        second.process.stop()
        redis_alone.stop()


def test_records_partitions_groups_and_users_need_their_grants(gateway: AclGateway, topic_name: str) -> None:
    operator = gateway.operator()
    create_topic(operator, topic_name)
    group = f"g-{topic_name}"
    operator_settings = {"bootstrap.servers": f"127.0.0.1:{gateway.plain}"}
    assert produce_error(operator_settings, topic_name) is None
    assert consume_error(operator_settings, topic_name, group) is None  # its commit registers the group
    dave = gateway.admin("dave")
    # DESCRIBE (librdkafka finds the partition's leader first), not DELETE.
    grant(gateway, allow("dave", ResourceType.TOPIC, topic_name, AclOperation.DESCRIBE))
    records = dave.delete_records([TopicPartition(topic_name, 0, 0)])
    assert kafka_code(lambda: next(iter(records.values())).result(timeout=30)) == \
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    partitions = dave.create_partitions([NewPartitions(topic_name, 2)])[topic_name]
    assert kafka_code(lambda: partitions.result(timeout=30)) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # (describe_user_scram_credentials refused: librdkafka 2.16 aborts the process on
    # CLUSTER_AUTHORIZATION_FAILED, from a Kafka broker as from the gateway; not asked here.)
    upsert = UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                          b"new-secret")
    altered = dave.alter_user_scram_credentials([upsert])["dave"]
    assert kafka_code(lambda: altered.result(timeout=30)) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    deleted = dave.delete_consumer_groups([group])[group]
    assert kafka_code(lambda: deleted.result(timeout=30)) == KafkaError.GROUP_AUTHORIZATION_FAILED
    listed = dave.list_consumer_groups().result(timeout=30)
    assert group not in {listing.group_id for listing in listed.valid}
    grant(gateway, allow("dave", ResourceType.GROUP, group, AclOperation.DESCRIBE))
    listed = dave.list_consumer_groups().result(timeout=30)
    assert group in {listing.group_id for listing in listed.valid}


def test_an_idempotent_producer_needs_idempotent_write_or_write_somewhere(
        gateway: AclGateway, topic_name: str) -> None:
    create_topic(gateway.operator(), topic_name)
    # DESCRIBE, so that Metadata does not fail the record first.
    grant(gateway, allow("dave", ResourceType.TOPIC, topic_name, AclOperation.DESCRIBE))
    producer = Producer({**gateway.settings("dave"), "enable.idempotence": True,
                         "message.timeout.ms": 10000})
    producer.produce(topic_name, b"v")
    # librdkafka raises InitProducerId's fatal error out of flush() (confluent-kafka
    # wraps it in a SystemError whose context is the KafkaException).
    with pytest.raises(Exception) as raised:
        producer.flush(15)
    chain = (raised.value, raised.value.__cause__, raised.value.__context__)
    codes = {error.args[0].code() for error in chain if isinstance(error, KafkaException)}
    assert KafkaError.CLUSTER_AUTHORIZATION_FAILED in codes


def call_as(gateway: AclGateway, user: str, request: Any) -> Any:
    """One raw request on a connection authenticated as ``user`` (SASL PLAIN)."""
    return raw_call_as(gateway.settings(user), request)


def test_describe_cluster_needs_describe_on_the_cluster(gateway: AclGateway) -> None:
    # librdkafka's describe_cluster sends Metadata; DescribeCluster itself is sent raw here.
    def describe_cluster(user: str) -> Any:
        return call_as(gateway, user, build(request_types(60, 1).DescribeClusterRequest,
                                            include_cluster_authorized_operations=True, endpoint_type=1))
    refused = describe_cluster("dave")
    assert refused.error_code == KafkaError.CLUSTER_AUTHORIZATION_FAILED and not refused.brokers
    grant(gateway, allow("dave", ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE))
    described = describe_cluster("dave")
    assert described.error_code == 0 and described.brokers
    assert described.cluster_authorized_operations == 1 << 8  # DESCRIBE only


def test_describe_client_quotas_needs_describe_configs_on_the_cluster(gateway: AclGateway) -> None:
    def describe_quotas() -> Any:
        return call_as(gateway, "dave", build(request_types(48, 1).DescribeClientQuotasRequest,
                                              components=(), strict=False))
    refused = describe_quotas()
    assert (refused.error_code, refused.error_message, refused.entries) == (
        KafkaError.CLUSTER_AUTHORIZATION_FAILED, None, None)
    grant(gateway, allow("dave", ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE_CONFIGS))
    described = describe_quotas()
    assert (described.error_code, described.error_message, described.entries) == (0, "", ())


def test_share_group_apis_need_read_on_the_group(gateway: AclGateway, topic_name: str) -> None:
    group = f"share-{uuid.uuid4().hex[:10]}"

    def heartbeat() -> Any:
        return call_as(gateway, "dave", build(
            request_types(76, 1).ShareGroupHeartbeatRequest, group_id=group, member_id=str(uuid.uuid4()),
            member_epoch=0, rack_id=None, subscribed_topic_names=(topic_name,)))

    def share_fetch() -> Any:
        return call_as(gateway, "dave", build(
            request_types(78, 1).ShareFetchRequest, group_id=group, member_id=str(uuid.uuid4()),
            share_session_epoch=0, max_wait=datetime.timedelta(0), min_bytes=1, max_bytes=1 << 20,
            max_records=10, batch_size=10, topics=(), forgotten_topics_data=()))

    assert heartbeat().error_code == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert share_fetch().error_code == KafkaError.GROUP_AUTHORIZATION_FAILED
    grant(gateway, allow("dave", ResourceType.GROUP, group, AclOperation.READ))
    assert heartbeat().error_code == 0
    assert share_fetch().error_code == 0


def test_a_transactional_producer_id_needs_write_on_the_transactional_id(
        gateway: AclGateway, redis_server: RedisServer) -> None:
    transactional_id = f"tx-{uuid.uuid4().hex[:12]}"

    def init_producer_id() -> Any:
        return call_as(gateway, "dave", build(
            request_types(22, 5).InitProducerIdRequest, transactional_id=transactional_id,
            transaction_timeout=datetime.timedelta(seconds=60), producer_id=-1, producer_epoch=-1))

    # IDEMPOTENT_WRITE on the cluster, as an idempotent producer needs, is not enough.
    grant(gateway, allow("dave", ResourceType.BROKER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE),
          allow("dave", ResourceType.TRANSACTIONAL_ID, transactional_id, AclOperation.DESCRIBE))
    refused = init_producer_id()
    assert (refused.error_code, refused.producer_id) == (KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1)
    grant(gateway, allow("dave", ResourceType.TRANSACTIONAL_ID, transactional_id, AclOperation.WRITE))
    initialized = init_producer_id()
    assert (initialized.error_code, initialized.producer_epoch) == (0, 0)

    # ListTransactions lists only the IDs the principal may DESCRIBE.
    def listed(user: str) -> set[str]:
        response = call_as(gateway, user, build(request_types(66, 1).ListTransactionsRequest))
        assert response.error_code == 0
        return {state.transactional_id for state in response.transaction_states}
    assert transactional_id in listed("dave")
    assert transactional_id not in listed("bob")

    # DescribeTransactions: DESCRIBE on the ID, and its partitions only in topics it may DESCRIBE.
    async def add_partitions() -> int:
        store = RedisStorage(redis_server.url)
        try:
            producer = TxnProducer(transactional_id, initialized.producer_id, initialized.producer_epoch)
            return await store.add_to_transaction(producer, [partition_member(f"{transactional_id}-a", 0),
                                                             partition_member(f"{transactional_id}-b", 1)])
        finally:
            await store.close()

    assert asyncio.run(add_partitions()) == 0
    grant(gateway, allow("dave", ResourceType.TOPIC, f"{transactional_id}-a", AclOperation.DESCRIBE))

    def described(user: str) -> Any:
        (state,) = call_as(gateway, user, build(request_types(65, 0).DescribeTransactionsRequest,
                                                transactional_ids=(transactional_id,))).transaction_states
        return state
    seen = described("dave")
    assert (seen.error_code, seen.transaction_state) == (0, "Ongoing")
    assert [(topic.topic, topic.partitions) for topic in seen.topics] == [(f"{transactional_id}-a", (0,))]
    assert described("bob").error_code == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_describe_producers_needs_read_on_the_topic(gateway: AclGateway, topic_name: str) -> None:
    create_topic(gateway.operator(), topic_name)
    types = request_types(61, 0)
    request = build(types.DescribeProducersRequest, topics=(
        build(types.TopicRequest, name=topic_name, partition_indexes=(0,)),))

    def described() -> int:
        (topic,) = call_as(gateway, "dave", request).topics
        return int(topic.partitions[0].error_code)

    grant(gateway, allow("dave", ResourceType.TOPIC, topic_name, AclOperation.DESCRIBE))
    assert described() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(gateway, allow("dave", ResourceType.TOPIC, topic_name, AclOperation.READ))
    assert described() == 0


# -- authorized operations ----------------------------------------------------------


def test_authorized_operations_in_metadata_and_describe_groups(
        gateway: AclGateway, topic_name: str) -> None:
    create_topic(gateway.operator(), topic_name)
    group = f"g-{topic_name}"
    grant(gateway, allow("bob", ResourceType.TOPIC, topic_name, AclOperation.READ),
          allow("bob", ResourceType.TOPIC, topic_name, AclOperation.ALTER_CONFIGS),
          allow("bob", ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE),
          allow("bob", ResourceType.GROUP, group, AclOperation.DELETE))
    admin = gateway.admin("bob")
    topic = admin.describe_topics(TopicCollection([topic_name]),
                                  include_authorized_operations=True)[topic_name].result(timeout=30)
    # READ and ALTER_CONFIGS, and what they imply (DESCRIBE, DESCRIBE_CONFIGS).
    assert set(topic.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE,
                                                AclOperation.ALTER_CONFIGS, AclOperation.DESCRIBE_CONFIGS}
    # librdkafka's describe_cluster asks Metadata for the cluster's operations.
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=30)
    assert set(cluster.authorized_operations) == {AclOperation.DESCRIBE}
    described = admin.describe_consumer_groups([group], include_authorized_operations=True)[group] \
        .result(timeout=30)
    assert set(described.authorized_operations) == {AclOperation.DELETE, AclOperation.DESCRIBE}
    # Not asked: not computed.
    assert admin.describe_cluster().result(timeout=30).authorized_operations is None


# -- Kafka's own tools and broker -----------------------------------------------------

ACLS_BIN = next((path for path in (Path("/opt/kafka-broker/bin"), Path("/opt/kafka-java/bin"))
                 if (path / "kafka-acls.sh").exists()), None)
BROKER = Path("/opt/kafka-broker/bin/run-broker.sh")


def kafka_acls(bootstrap: str, *args: str) -> str:
    assert ACLS_BIN is not None
    done = subprocess.run([str(ACLS_BIN / "kafka-acls.sh"), "--bootstrap-server", bootstrap, *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, KAFKA_LOG_LEVEL="warn"))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.skipif(ACLS_BIN is None, reason="no kafka-acls.sh in /opt/kafka-broker or /opt/kafka-java")
def test_kafka_acls_sh_adds_lists_and_removes(gateway: AclGateway, topic_name: str) -> None:
    bootstrap = f"127.0.0.1:{gateway.plain}"
    kafka_acls(bootstrap, "--add", "--allow-principal", "User:bob", "--operation", "Write",
               "--topic", topic_name, "--resource-pattern-type", "prefixed")
    listed = kafka_acls(bootstrap, "--list", "--topic", topic_name, "--resource-pattern-type", "prefixed")
    assert "principal=User:bob" in listed and "operation=WRITE" in listed, listed
    assert produce_error(gateway.settings("bob"), topic_name + "-x") is not None  # no CREATE
    create_topic(gateway.operator(), topic_name + "-x")
    assert produce_error(gateway.settings("bob"), topic_name + "-x") is None
    kafka_acls(bootstrap, "--remove", "--force", "--allow-principal", "User:bob", "--operation", "Write",
               "--topic", topic_name, "--resource-pattern-type", "prefixed")
    assert "User:bob" not in kafka_acls(bootstrap, "--list", "--topic", topic_name,
                                        "--resource-pattern-type", "prefixed")


def scenario(operator: AdminClient, settings: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """One ACL scenario with confluent-kafka; what each step answered, to compare with Kafka's."""
    prefix = f"s{uuid.uuid4().hex[:6]}-"
    open_topic, closed_topic, hidden_topic = prefix + "open", prefix + "closed", prefix + "hidden"
    for topic in (open_topic, closed_topic, hidden_topic):
        create_topic(operator, topic)
    group = prefix + "group"
    bindings = [allow("bob", ResourceType.TOPIC, prefix, AclOperation.WRITE, ResourcePatternType.PREFIXED),
                allow("bob", ResourceType.TOPIC, closed_topic, AclOperation.WRITE,
                      permission=AclPermissionType.DENY),
                allow("bob", ResourceType.TOPIC, open_topic, AclOperation.READ),
                allow("bob", ResourceType.GROUP, group, AclOperation.READ),
                allow("alice", ResourceType.TOPIC, open_topic, AclOperation.DESCRIBE)]
    create_acls(operator, *bindings)
    time.sleep(1)
    answers: dict[str, Any] = {}

    def code(error: KafkaError | None) -> str:
        return "OK" if error is None else error.name()

    for user in ("alice", "bob"):
        for topic in (open_topic, closed_topic):
            answers[f"produce {user} {topic[len(prefix):]}"] = code(produce_error(settings(user), topic))
        visible = settings_admin(settings(user)).list_topics(timeout=30).topics
        answers[f"lists {user}"] = sorted(t[len(prefix):] for t in visible if t.startswith(prefix))
        named = settings_admin(settings(user)).list_topics(hidden_topic, timeout=30).topics[hidden_topic]
        answers[f"names hidden {user}"] = code(named.error)
    answers["consume bob"] = code(consume_error(settings("bob"), open_topic, group))
    answers["consume alice"] = code(consume_error(settings("alice"), open_topic, group))
    alice = settings_admin(settings("alice"))
    answers["delete alice"] = code(_admin_error(lambda: alice.delete_topics([open_topic])[open_topic]))
    resource = ConfigResource(ConfigResource.Type.TOPIC, open_topic, {"retention.ms": "3600000"})
    answers["alter configs alice"] = code(_admin_error(lambda: alice.alter_configs([resource])[resource]))
    acl_future = next(iter(alice.create_acls([allow("alice", ResourceType.TOPIC, "*",
                                                    AclOperation.ALL)]).values()))
    answers["create acls alice"] = code(_admin_error(lambda: acl_future))
    described = operator.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, prefix + "zzz", ResourcePatternType.MATCH, None, None,
        AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    answers["match"] = sorted(str(b).replace(prefix, "P-") for b in described)
    # Every ACL of bob's that applies to the closed topic (not those of other tests).
    deleted = operator.delete_acls([AclBindingFilter(
        ResourceType.TOPIC, closed_topic, ResourcePatternType.MATCH, "User:bob", None,
        AclOperation.ANY, AclPermissionType.ANY)])
    answers["deleted bob"] = sorted(str(b).replace(prefix, "P-")
                                    for b in next(iter(deleted.values())).result(timeout=30))
    answers["produce bob closed after"] = code(produce_error(settings("bob"), closed_topic))
    answers.update(cluster_refusals(settings("alice")))
    return answers


def raw_call_as(settings: dict[str, Any], request: Any) -> Any:
    """One raw request on a connection logged in with SASL PLAIN as the settings say."""
    with closing(Wire(settings["bootstrap.servers"])) as wire:
        assert wire.call(build(request_types(17, 1).SaslHandshakeRequest, mechanism="PLAIN")).error_code == 0
        token = f"\x00{settings['sasl.username']}\x00{settings['sasl.password']}".encode()
        authenticated = wire.call(build(request_types(36, 2).SaslAuthenticateRequest, auth_bytes=token))
        assert authenticated.error_code == 0
        return wire.call(request)


def cluster_refusals(settings: dict[str, Any]) -> dict[str, Any]:
    """Whole answers to APIs refused for want of a cluster grant, sent raw (clients hide them)."""
    quotas = raw_call_as(settings, build(request_types(48, 1).DescribeClientQuotasRequest,
                                         components=(), strict=False))
    users_type = request_types(50, 0)
    users = raw_call_as(settings, build(users_type.DescribeUserScramCredentialsRequest,
                                        users=(build(users_type.UserName, name="alice"),)))
    return {"quotas refused": (quotas.error_code, quotas.error_message, quotas.entries),
            "users refused": (users.error_code, users.error_message,
                              [(r.user, r.error_code, r.error_message, r.credential_infos)
                               for r in users.results])}


def settings_admin(settings: dict[str, Any]) -> AdminClient:
    return AdminClient(settings)


def _admin_error(call: Callable[[], Any]) -> KafkaError | None:
    try:
        call().result(timeout=30)
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        return error
    return None


def test_the_acl_scenario_answers_as_on_the_gateway_as_on_kafka(gateway: AclGateway, tmp_path: Path) -> None:
    expected = scenario(gateway.operator(), gateway.settings)
    assert expected["produce bob open"] == "OK"
    assert expected["produce bob closed"] == "TOPIC_AUTHORIZATION_FAILED"
    assert expected["lists alice"] == ["open"]
    assert expected["consume alice"] == "GROUP_AUTHORIZATION_FAILED"
    if not BROKER.exists():
        pytest.skip(f"no Kafka broker at {BROKER}: the gateway's answers are checked, not compared")
    port, sasl = free_port(), free_port()
    controller = free_port()
    jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            + " ".join(f'user_{user}="{password}"' for user, password in PASSWORDS.items()) + ";")
    broker = subprocess.Popen(
        [str(BROKER), str(port), str(tmp_path / "kafka"),
         f"listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl},"
         f"CONTROLLER://127.0.0.1:{controller}",
         f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl}",
         "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
         "SASL_PLAINTEXT:SASL_PLAINTEXT",
         f"controller.quorum.voters=1@127.0.0.1:{controller}",
         "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN",
         f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
         "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
         "super.users=User:ANONYMOUS"],
        env=dict(os.environ, CONTROLLER_PORT=str(controller), KAFKA_HEAP_OPTS="-Xmx512m -Xms512m"),
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "kafka.log", "wb"))  # noqa: SIM115
    try:
        operator = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        deadline = time.monotonic() + 120
        while True:
            try:
                operator.list_topics(timeout=5)
                break
            except KafkaException:
                assert broker.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "kafka.log").read_text()[-3000:]

        def kafka_settings(user: str) -> dict[str, Any]:
            return {"bootstrap.servers": f"127.0.0.1:{sasl}", "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": PASSWORDS[user]}

        assert scenario(operator, kafka_settings) == expected
    finally:
        broker.terminate()
        broker.wait(timeout=60)


def test_committed_offsets_need_the_group_and_the_topic(gateway: AclGateway, topic_name: str) -> None:
    """OffsetCommit, OffsetFetch and OffsetDelete through kafka-python's admin client."""
    from kafka import TopicPartition as PyTopicPartition
    from kafka.errors import GroupAuthorizationFailedError, NoError, TopicAuthorizationFailedError
    from kafka.structs import OffsetAndMetadata

    create_topic(gateway.operator(), topic_name)
    assert produce_error({"bootstrap.servers": f"127.0.0.1:{gateway.plain}"}, topic_name) is None
    group = f"g-{topic_name}"
    partition = PyTopicPartition(topic_name, 0)

    def admin(user: str) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{gateway.sasl}",
                                security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                                sasl_plain_username=user, sasl_plain_password=PASSWORDS[user])

    # alice may find and describe the group, not READ it: committing is refused.
    grant(gateway, allow("alice", ResourceType.GROUP, group, AclOperation.DESCRIBE),
          allow("bob", ResourceType.GROUP, group, AclOperation.READ),
          allow("bob", ResourceType.TOPIC, topic_name, AclOperation.READ))
    alice, bob = admin("alice"), admin("bob")
    try:
        committed = alice.alter_group_offsets(group, {partition: OffsetAndMetadata(1, "", -1)})
        assert committed == {partition: GroupAuthorizationFailedError}
        committed = bob.alter_group_offsets(group, {partition: OffsetAndMetadata(1, "", -1)})
        assert committed == {partition: NoError}
        # All the group's offsets: bob sees the topic's, alice (no DESCRIBE on it) none.
        assert bob.list_group_offsets({group: None})[group][partition].offset == 1
        assert partition not in alice.list_group_offsets({group: None})[group]
        # Named, the topic is refused to alice.
        with pytest.raises(TopicAuthorizationFailedError):
            alice.list_group_offsets({group: [partition]})
        # Deleting offsets needs DELETE on the group.
        with pytest.raises(GroupAuthorizationFailedError):
            bob.delete_group_offsets(group, [partition])
    finally:
        alice.close()
        bob.close()


def share_consume(settings: dict[str, Any], topic: str, group: str, want: int) -> tuple[int, set[int]]:
    """Records a share consumer got, and the error codes it saw, within ten seconds."""
    from confluent_kafka import ShareConsumer

    share = ShareConsumer({**settings, "group.id": group})
    share.subscribe([topic])
    got, codes = 0, set()
    deadline = time.monotonic() + 10
    try:
        while got < want and time.monotonic() < deadline:
            try:
                for message in share.poll(0.5) or []:
                    if message.error() is not None:
                        codes.add(message.error().code())
                    else:
                        got += 1
            except KafkaException as exc:
                codes.add(exc.args[0].code())
        share.commit_sync()
    except KafkaException as exc:
        codes.add(exc.args[0].code())
    finally:
        share.close()
    return got, codes


def test_share_groups_need_read_on_the_group_and_the_topic(gateway: AclGateway, topic_name: str) -> None:
    operator = gateway.operator()
    create_topic(operator, topic_name)
    group = f"share-{topic_name}"
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[ConfigEntry(
        "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    operator.incremental_alter_configs([resource])[resource].result(timeout=30)
    assert produce_error({"bootstrap.servers": f"127.0.0.1:{gateway.plain}"}, topic_name) is None
    grant(gateway, allow("alice", ResourceType.TOPIC, topic_name, AclOperation.READ),
          allow("alice", ResourceType.GROUP, group, AclOperation.DESCRIBE),
          allow("bob", ResourceType.TOPIC, topic_name, AclOperation.READ),
          allow("bob", ResourceType.GROUP, group, AclOperation.READ))
    got, codes = share_consume(gateway.settings("alice"), topic_name, group, 1)
    assert got == 0 and KafkaError.GROUP_AUTHORIZATION_FAILED in codes, codes
    got, codes = share_consume(gateway.settings("bob"), topic_name, group, 1)
    assert got >= 1, codes
