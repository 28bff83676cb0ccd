"""Kafka ACLs: created, described and deleted with real clients, and enforced on every API.

The gateways here run --authorizer true on a Redis of this module's own,
with a PLAINTEXT listener whose principal (User:ANONYMOUS) is a super user
(the operator's) and a SASL_PLAINTEXT listener where alice (no grant) and
bob (granted what each test grants) log in with PLAIN.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
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

from tests.servers import GatewayProcess, RedisServer

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


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
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )
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
