"""The gateway works with the least-privileged Redis ACL user docs/security.md gives, and needs nothing more.

The user's rules are read from docs/security.md, so the document cannot
drift from what is tested; Redis's ACL LOG must record no denial.
"""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka_redis_gateway.gateway.embedded import free_port

from tests.servers import GatewayProcess, RedisServer, module_redis

SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def documented_rules() -> list[str]:
    (line,) = [line for line in SECURITY_MD.read_text().splitlines()
               if line.startswith("ACL SETUSER krg on >PASSWORD ")]
    return line.removeprefix("ACL SETUSER krg on >PASSWORD ").split()


redis_server = module_redis()


def test_the_documented_redis_user_is_all_the_gateway_needs(redis_server: RedisServer,
                                                            tmp_path: Path) -> None:
    admin_client = redis_server.client()
    admin_client.execute_command("ACL", "SETUSER", "krg", "on", ">krg-secret", *documented_rules())
    admin_client.execute_command("ACL", "LOG", "RESET")
    admin_client.set("other-app:data", "not the gateway's")
    plain, sasl = free_port(), free_port()
    gateway = GatewayProcess(
        f"redis://krg:krg-secret@127.0.0.1:{redis_server.port}/0", port=plain,
        log_path=tmp_path / "gateway.log",
        listeners=f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        # Kafka ACLs too (their hash and version counter), the operator a super user.
        extra_args=["--authorizer", "true", "--super-users", "User:ANONYMOUS"]).start()
    try:
        admin = AdminClient({"bootstrap.servers": gateway.bootstrap})
        admin.create_topics([NewTopic("acl-topic", 2)])["acl-topic"].result(timeout=30)
        grants = [AclBinding(resource, name, ResourcePatternType.LITERAL, "User:app", "*",
                             AclOperation.ALL, AclPermissionType.ALLOW)
                  for resource, name in ((ResourceType.TOPIC, "acl-topic"),
                                         (ResourceType.GROUP, "acl-group"),
                                         (ResourceType.GROUP, "acl-share"))]
        for future in admin.create_acls(grants).values():
            future.result(timeout=30)
        assert len(admin.describe_acls(AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, "User:app", None, AclOperation.ANY,
            AclPermissionType.ANY)).result(timeout=30)) == 3
        admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "app", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"app-secret")])["app"].result(30)
        assert "app" in admin.describe_user_scram_credentials().result(timeout=30)

        login = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
                 "sasl.username": "app", "sasl.password": "app-secret"}
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{sasl}", "enable.idempotence": True, **login})
        for i in range(20):
            producer.produce("acl-topic", f"v{i}".encode(), key=str(i).encode())
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{sasl}", "group.id": "acl-group",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False, **login})
        read = 0
        try:
            consumer.subscribe(["acl-topic"])
            deadline = time.monotonic() + 60
            while read < 20 and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    read += 1
            consumer.commit(asynchronous=False)
        finally:
            consumer.close()
        assert read == 20
        groups = admin.list_consumer_groups().result(timeout=30).valid
        assert "acl-group" in {group.group_id for group in groups}
        # A share group (KIP-932): configs, acquisition, acknowledgement, release on close, deletion.
        share_config = ConfigResource(ResourceType.GROUP, "acl-share", incremental_configs=[ConfigEntry(
            "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([share_config])[share_config].result(timeout=30)
        from confluent_kafka import ShareConsumer  # 2.16+, as test_share_groups

        share = ShareConsumer({"bootstrap.servers": f"127.0.0.1:{sasl}", "group.id": "acl-share", **login})
        shared = 0
        try:
            share.subscribe(["acl-topic"])
            deadline = time.monotonic() + 60
            while shared < 20 and time.monotonic() < deadline:
                shared += sum(1 for m in share.poll(0.5) or [] if m.error() is None)
            share.commit_sync()
        finally:
            share.close()
        assert shared == 20
        admin.delete_consumer_groups(["acl-share"])["acl-share"].result(timeout=30)
        (configs,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "acl-topic")]).values()
        assert "retention.ms" in configs.result(timeout=30)
        admin.delete_topics(["acl-topic"])["acl-topic"].result(timeout=30)
    finally:
        gateway.stop()
    denials = admin_client.acl_log()
    assert denials == [], denials
    assert admin_client.get("other-app:data") == b"not the gateway's"
    # And the rules keep what they should out of its reach.
    for command in (["FLUSHALL"], ["FUNCTION", "FLUSH"], ["GET", "other-app:data"],
                    ["CONFIG", "SET", "a", "b"]):
        assert admin_client.execute_command("ACL", "DRYRUN", "krg", *command) != b"OK", command
