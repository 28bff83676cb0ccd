"""SASL listeners: SCRAM-SHA-256/512 and PLAIN with real clients; users made through the admin API."""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaConsumer, KafkaProducer
from kafka_redis_gateway.gateway.embedded import free_port

from tests.integration.test_java_tools import BIN as JAVA_CONSOLE_BIN
from tests.integration.test_java_tools import console_consume, console_produce
from tests.integration.test_protocol import Wire, api_versions, build, metadata, request_types
from tests.servers import GatewayProcess, RedisServer, module_redis
from tests.tls_support import Certificates, java_tls_properties, make_certificates, tls_args

# A Redis of this module's own: its gateways form a cluster of their own, and the
# session's gateway (on the shared Redis) never lists them as brokers, nor they it.
redis_server = module_redis()


PASSWORD = "alice-secret"
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("sasl-tls"))


class SaslGateway:
    """A gateway with PLAINTEXT (for the admin), SASL_PLAINTEXT and SASL_SSL listeners."""

    def __init__(self, redis_server: RedisServer, log: Path, certificates: Certificates,
                 extra_args: list[str] | None = None) -> None:
        self.plain, self.sasl, self.sasl_ssl = free_port(), free_port(), free_port()
        self.process = GatewayProcess(
            redis_server.url, port=self.plain, log_path=log,
            listeners=f"PLAINTEXT://127.0.0.1:{self.plain},SASL_PLAINTEXT://127.0.0.1:{self.sasl},"
                      f"SASL_SSL://localhost:{self.sasl_ssl}",
            extra_args=["--sasl-enabled-mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
                        *tls_args(certificates), *(extra_args or [])]).start()


def create_users(gateway: SaslGateway, *users: tuple[str, str]) -> None:
    """SCRAM-SHA-256 and -512 credentials for each (user, password), through the PLAINTEXT listener."""
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{gateway.plain}"})
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 8192), password.encode())
               for user, password in users
               for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer, certificates: Certificates,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslGateway]:
    started = SaslGateway(redis_server, tmp_path_factory.mktemp("sasl") / "gateway.log", certificates)
    try:
        create_users(started, ("alice", PASSWORD))
        yield started
    finally:
        started.process.stop()


def sasl_settings(mechanism: str, password: str = PASSWORD, *,
                  tls: Certificates | None = None) -> dict[str, str]:
    settings = {"security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                "sasl.username": "alice", "sasl.password": password}
    if tls:
        settings["ssl.ca.location"] = str(tls.ca)
    return settings


def round_trip(bootstrap: str, topic: str, settings: dict[str, str], count: int = 3) -> list[bytes]:
    producer = Producer({"bootstrap.servers": bootstrap, **settings})
    for i in range(count):
        producer.produce(topic, f"sasl-{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", **settings})
    read: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(read) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                read.append(message.value())
    finally:
        consumer.close()
    return read


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
@pytest.mark.parametrize("tls", [False, True], ids=["SASL_PLAINTEXT", "SASL_SSL"])
def test_confluent_kafka_logs_in_and_produces_and_consumes(
        gateway: SaslGateway, certificates: Certificates, topic_name: str, mechanism: str, tls: bool) -> None:
    port = gateway.sasl_ssl if tls else gateway.sasl
    host = "localhost" if tls else "127.0.0.1"
    settings = sasl_settings(mechanism, tls=certificates if tls else None)
    assert round_trip(f"{host}:{port}", topic_name, settings) == [b"sasl-0", b"sasl-1", b"sasl-2"]


def test_a_wrong_password_gets_sasl_authentication_failed_and_writes_nothing(
        gateway: SaslGateway, redis_server: RedisServer, topic_name: str) -> None:
    for mechanism in ("SCRAM-SHA-256", "PLAIN"):
        errors: list[KafkaError] = []
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{gateway.sasl}",
                             **sasl_settings(mechanism, "wrong"), "error_cb": errors.append,
                             "message.timeout.ms": 5000})
        producer.produce(topic_name, b"must not be written")
        producer.flush(10)
        assert any(error.code() == KafkaError._AUTHENTICATION for error in errors), errors
        assert "SASL_AUTHENTICATION_FAILED" in str(errors) or "nvalid" in str(errors), errors
    assert not redis_server.client().keys(f"kafka:{{{topic_name}:*")


def test_before_authentication_only_the_sasl_apis_are_answered(gateway: SaslGateway) -> None:
    with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
        assert wire.call(api_versions(3)).error_code == 0
        wire.send(metadata([]))
        assert wire.closed_by_server()


@pytest.mark.parametrize("tls", [False, True], ids=["SASL_PLAINTEXT", "SASL_SSL"])
def test_kafka_python_and_aiokafka_log_in_with_scram(gateway: SaslGateway, certificates: Certificates,
                                                     topic_name: str, tls: bool) -> None:
    bootstrap = f"localhost:{gateway.sasl_ssl}" if tls else f"127.0.0.1:{gateway.sasl}"
    login: dict[str, Any] = {"security_protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
                             "sasl_mechanism": "SCRAM-SHA-256",
                             "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD}
    producer = KafkaProducer(bootstrap_servers=bootstrap, **login,
                             **({"ssl_cafile": str(certificates.ca)} if tls else {}))
    producer.send(topic_name, b"kafka-python").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic_name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000, **login,
                             **({"ssl_cafile": str(certificates.ca)} if tls else {}))
    assert [message.value for message in consumer][:1] == [b"kafka-python"]
    consumer.close()

    async def with_aiokafka() -> list[bytes]:
        settings = {**login, "sasl_mechanism": "SCRAM-SHA-512"}
        if tls:
            settings["ssl_context"] = create_ssl_context(cafile=str(certificates.ca))
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **settings)
        await producer.start()
        try:
            await producer.send_and_wait(topic_name, b"aiokafka")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    **settings)
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=10_000, max_records=2)
            return [record.value for records in batches.values() for record in records]
        finally:
            await consumer.stop()

    assert asyncio.run(with_aiokafka()) == [b"kafka-python", b"aiokafka"]


def test_users_are_described_altered_and_deleted_through_the_admin_api(gateway: SaslGateway) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{gateway.plain}"})
    upsert = UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                          b"bob-secret")
    admin.alter_user_scram_credentials([upsert])["bob"].result(timeout=30)
    described = admin.describe_user_scram_credentials(["alice", "bob"])
    alice = described["alice"].result(timeout=30)
    assert sorted((info.mechanism, info.iterations) for info in alice.scram_credential_infos) == [
        (ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 8192)]
    bob = described["bob"].result(timeout=30)
    assert [(info.mechanism, info.iterations) for info in bob.scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_512, 4096)]
    everyone = admin.describe_user_scram_credentials().result(timeout=30)
    assert {"alice", "bob"} <= set(everyone)

    # Too few iterations: Kafka's UNACCEPTABLE_CREDENTIAL, nothing stored.
    weak = UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"x")
    with pytest.raises(KafkaException) as refused:
        admin.alter_user_scram_credentials([weak])["carol"].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL

    deletion = UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([deletion])["bob"].result(timeout=30)
    with pytest.raises(KafkaException) as gone:
        admin.describe_user_scram_credentials(["bob"])["bob"].result(timeout=30)
    assert gone.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    with pytest.raises(KafkaException) as again:
        admin.alter_user_scram_credentials([deletion])["bob"].result(timeout=30)
    assert again.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND


def sasl_handshake(mechanism: str, version: int = 1) -> Any:
    return build(request_types(SASL_HANDSHAKE, version).SaslHandshakeRequest, mechanism=mechanism)


def sasl_authenticate(token: bytes, version: int = 2) -> Any:
    return build(request_types(SASL_AUTHENTICATE, version).SaslAuthenticateRequest, auth_bytes=token)


def test_a_refused_login_is_answered_sasl_authentication_failed_then_closed(gateway: SaslGateway) -> None:
    with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
        assert wire.call(sasl_handshake("PLAIN")).error_code == 0
        refused = wire.call(sasl_authenticate(b"\x00alice\x00wrong"))
        assert refused.error_code == 58  # SASL_AUTHENTICATION_FAILED
        assert "invalid credentials with SASL mechanism PLAIN" in refused.error_message
        assert wire.closed_by_server()
    with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
        answer = wire.call(sasl_handshake("GSSAPI"))
        assert answer.error_code == 33  # UNSUPPORTED_SASL_MECHANISM
        assert set(answer.mechanisms) == {"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"}
        assert wire.closed_by_server()


def test_plain_users_are_the_scram_users_whichever_mechanism_they_have(gateway: SaslGateway,
                                                                       topic_name: str) -> None:
    # There is no PLAIN user list: a PLAIN login is checked against the user's SCRAM credential.
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{gateway.plain}"})
    only = {"only-sha256": ScramMechanism.SCRAM_SHA_256, "only-sha512": ScramMechanism.SCRAM_SHA_512}
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 4096),
                                            f"pw-{user}".encode()) for user, mechanism in only.items()]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)
    for user in (*only, "nobody"):
        for password, expected in ((f"pw-{user}", 0 if user in only else 58), ("wrong", 58)):
            with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
                assert plain_login(wire, user, password).error_code == expected, (user, password)
    settings = {**sasl_settings("PLAIN", "pw-only-sha512"), "sasl.username": "only-sha512"}
    assert round_trip(f"127.0.0.1:{gateway.sasl}", topic_name, settings, count=1) == [b"sasl-0"]


def test_a_v0_handshake_takes_the_tokens_as_bare_frames(gateway: SaslGateway) -> None:
    with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
        assert wire.call(sasl_handshake("PLAIN", version=0)).error_code == 0
        token = f"\x00alice\x00{PASSWORD}".encode()
        wire.sock.sendall(struct.pack(">i", len(token)) + token)
        assert wire.receive_frame() == b""  # PLAIN's empty server token
        assert wire.call(metadata([])).brokers[0].port == gateway.sasl
    with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
        assert wire.call(sasl_handshake("PLAIN", version=0)).error_code == 0
        token = b"\x00alice\x00wrong"
        wire.sock.sendall(struct.pack(">i", len(token)) + token)
        assert wire.closed_by_server()


def test_sasl_apis_on_a_plaintext_listener_are_an_illegal_sasl_state(gateway: SaslGateway) -> None:
    with closing(Wire(f"127.0.0.1:{gateway.plain}")) as wire:
        assert wire.call(sasl_handshake("PLAIN")).error_code == 34  # ILLEGAL_SASL_STATE
        assert wire.call(sasl_authenticate(b"x")).error_code == 34
        assert wire.call(metadata([])).brokers[0].port == gateway.plain  # and it goes on serving


def test_a_user_made_through_one_gateway_logs_in_at_another(
        gateway: SaslGateway, redis_server: RedisServer, certificates: Certificates, tmp_path: Path,
        topic_name: str) -> None:
    other = SaslGateway(redis_server, tmp_path / "other.log", certificates)
    try:
        # Both in one cluster now: wait until each lists the other, so leaders and the
        # group's coordinator are the same whichever is asked (as test_cluster does).
        deadline = time.monotonic() + 15
        for port in (gateway.plain, other.plain):
            while True:
                with closing(Wire(f"127.0.0.1:{port}")) as wire:
                    if len(wire.call(metadata([])).brokers) == 2:
                        break
                assert time.monotonic() < deadline, "the two gateways do not see each other"
                time.sleep(0.1)
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{gateway.plain}"})
        upsert = UserScramCredentialUpsertion(
            "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"dave-secret")
        admin.alter_user_scram_credentials([upsert])["dave"].result(timeout=30)
        settings = {**sasl_settings("SCRAM-SHA-256", "dave-secret"), "sasl.username": "dave"}
        assert round_trip(f"127.0.0.1:{other.sasl}", topic_name, settings, count=1) == [b"sasl-0"]
    finally:
        other.process.stop()


JAVA_BIN = next((path for path in (Path("/opt/kafka-broker/bin"), Path("/opt/kafka-java/bin"))
                 if (path / "kafka-configs.sh").exists()), None)


@pytest.mark.skipif(JAVA_BIN is None, reason="no kafka-configs.sh in /opt/kafka-broker or /opt/kafka-java")
def test_kafka_configs_sh_adds_a_user_that_then_logs_in(gateway: SaslGateway, tmp_path: Path,
                                                        topic_name: str) -> None:
    assert JAVA_BIN is not None
    def configs(*args: str) -> str:
        done = subprocess.run([str(JAVA_BIN / "kafka-configs.sh"), "--bootstrap-server",
                               f"127.0.0.1:{gateway.plain}", *args], capture_output=True, text=True,
                              timeout=120, check=False, env=dict(os.environ, KAFKA_LOG_LEVEL="warn"))
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout
    configs("--alter", "--entity-type", "users", "--entity-name", "erin",
            "--add-config",
            "SCRAM-SHA-256=[iterations=4096,password=erin-secret],SCRAM-SHA-512=[password=erin-secret]")
    # --describe of users asks DescribeUserScramCredentials and DescribeClientQuotas (none is configured).
    described = configs("--describe", "--entity-type", "users", "--entity-name", "erin")
    assert "SCRAM credential configs for user-principal 'erin' are" in described, described
    assert "SCRAM-SHA-256=iterations=4096" in described and "SCRAM-SHA-512=iterations=4096" in described
    assert "Quota configs" not in described
    for entity in (["--entity-type", "users"], ["--entity-type", "clients"],
                   ["--entity-type", "users", "--entity-default"],
                   ["--entity-type", "users", "--entity-name", "erin", "--entity-type", "clients"]):
        assert "Quota configs" not in configs("--describe", *entity)
    # A quota is never accepted (AlterClientQuotas is not served): the gateway would not enforce it.
    alter_quota = subprocess.run([str(JAVA_BIN / "kafka-configs.sh"), "--bootstrap-server",
                                  f"127.0.0.1:{gateway.plain}", "--alter", "--entity-type", "clients",
                                  "--entity-name", "c1", "--add-config", "producer_byte_rate=1024"],
                                 capture_output=True, text=True, timeout=120, check=False,
                                 env=dict(os.environ, KAFKA_LOG_LEVEL="warn"))
    assert alter_quota.returncode != 0
    assert "UnsupportedVersionException" in alter_quota.stdout + alter_quota.stderr, alter_quota.stderr
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{gateway.plain}"})
    erin = admin.describe_user_scram_credentials(["erin"])["erin"].result(timeout=30)
    assert sorted((info.mechanism, info.iterations) for info in erin.scram_credential_infos) == [
        (ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 4096)]
    settings = {**sasl_settings("SCRAM-SHA-512", "erin-secret"), "sasl.username": "erin"}
    assert round_trip(f"127.0.0.1:{gateway.sasl}", topic_name, settings, count=1) == [b"sasl-0"]

    # A Java client logs in with the SCRAM login module.
    jaas = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            'username="erin" password="erin-secret";')
    properties = tmp_path / "client.properties"
    properties.write_text(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
                          f"sasl.jaas.config={jaas}\n")
    done = subprocess.run([str(JAVA_BIN / "kafka-topics.sh"),
                           "--bootstrap-server", f"127.0.0.1:{gateway.sasl}",
                           "--command-config", str(properties), "--describe", "--topic", topic_name],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, KAFKA_LOG_LEVEL="warn"))
    assert done.returncode == 0 and topic_name in done.stdout, done.stdout + done.stderr


def describe_client_quotas(gateway: SaslGateway, *components: tuple[str, int, str | None],
                           strict: bool = False) -> Any:
    types = request_types(48, 1)
    request = build(types.DescribeClientQuotasRequest, strict=strict, components=tuple(
        build(types.ComponentData, entity_type=entity_type, match_type=match_type, match=match)
        for entity_type, match_type, match in components))
    with closing(Wire(f"127.0.0.1:{gateway.plain}")) as wire:
        return wire.call(request)


def test_describe_client_quotas_answers_none_configured_and_checks_the_filter_as_kafka(
        gateway: SaslGateway) -> None:
    exact, default, specified = 0, 1, 2
    for components, strict in [((), False), ((), True), ((("user", exact, "alice"),), True),
                               ((("user", default, None), ("client-id", specified, None)), False),
                               ((("ip", exact, "127.0.0.1"),), False)]:
        answer = describe_client_quotas(gateway, *components, strict=strict)
        assert (answer.error_code, answer.error_message, answer.entries) == (0, "", ())
    invalid_request, unsupported_version = 42, 35
    for components, code, message in [
            ((("", exact, "x"),), invalid_request, "Invalid empty entity type."),
            ((("user", exact, "a"), ("user", specified, None)), invalid_request,
             "Entity type user cannot appear more than once in the filter."),
            ((("group", exact, "a"),), unsupported_version, "Unsupported entity type group"),
            ((("user", exact, None),), invalid_request,
             "Request specified MATCH_TYPE_EXACT, but set match string to null."),
            ((("user", default, "a"),), invalid_request,
             "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."),
            ((("user", specified, "a"),), invalid_request,
             "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."),
            ((("user", 3, None),), invalid_request, "Unknown match type 3"),
            ((("ip", specified, None), ("client-id", exact, "c")), invalid_request,
             "Invalid entity filter component combination. IP filter component should not be used "
             "with user or clientId filter component.")]:
        answer = describe_client_quotas(gateway, *components)
        assert (answer.error_code, answer.error_message, answer.entries) == (code, message, None)
    with closing(Wire(f"127.0.0.1:{gateway.plain}")) as wire:
        advertised = {key.api_key for key in wire.call(api_versions(3)).api_keys}
    assert 48 in advertised and 49 not in advertised  # quotas described (none), never altered


@pytest.mark.skipif(not (JAVA_CONSOLE_BIN / "kafka-console-producer.sh").exists(),
                    reason=f"no Kafka console tools in {JAVA_CONSOLE_BIN}")
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_java_console_tools_produce_and_consume_over_sasl_ssl_with_scram(
        gateway: SaslGateway, certificates: Certificates, tmp_path: Path, topic_name: str,
        mechanism: str) -> None:
    jaas = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="alice" password="{PASSWORD}";')
    properties = tmp_path / "client.properties"
    properties.write_text("\n".join([
        "security.protocol=SASL_SSL", f"sasl.mechanism={mechanism}", f"sasl.jaas.config={jaas}",
        *java_tls_properties(certificates, tmp_path)]) + "\n")
    bootstrap = f"localhost:{gateway.sasl_ssl}"
    console_produce(bootstrap, topic_name, [f"java-{mechanism}", "over SASL_SSL"],
                    "--producer.config", str(properties))
    printed = console_consume(bootstrap, topic_name, 2, "--from-beginning", "--consumer.config",
                              str(properties))
    assert printed == [f"java-{mechanism}", "over SASL_SSL"]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_lists_metadata_produces_and_consumes_over_sasl_ssl_with_scram(
        gateway: SaslGateway, certificates: Certificates, topic_name: str) -> None:
    done = subprocess.run(["kcat", "-b", f"localhost:{gateway.sasl_ssl}", "-L",
                           "-X", "security.protocol=SASL_SSL",
                           "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice",
                           "-X", f"sasl.password={PASSWORD}", "-X", f"ssl.ca.location={certificates.ca}",
                           "-m", "20"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"localhost:{gateway.sasl_ssl}" in done.stdout
    login = ["-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
             "-X", "sasl.username=alice", "-X", f"sasl.password={PASSWORD}",
             "-X", f"ssl.ca.location={certificates.ca}"]
    produced = subprocess.run(["kcat", "-b", f"localhost:{gateway.sasl_ssl}", *login, "-P", "-t", topic_name],
                              input="kcat over SASL_SSL\n", capture_output=True, text=True, timeout=60,
                              check=False)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(["kcat", "-b", f"localhost:{gateway.sasl_ssl}", *login, "-C", "-t", topic_name,
                               "-e", "-q"], capture_output=True, text=True, timeout=60, check=False)
    assert (consumed.returncode, consumed.stdout) == (0, "kcat over SASL_SSL\n"), consumed.stderr
    wrong = subprocess.run(["kcat", "-b", f"127.0.0.1:{gateway.sasl}", "-L",
                            "-X", "security.protocol=SASL_PLAINTEXT",
                            "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice",
                            "-X", "sasl.password=wrong", "-m", "5"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode != 0
    assert "Authentication failed" in wrong.stderr or "SASL" in wrong.stderr, wrong.stderr


REAUTH_MS = 1500


@pytest.fixture(scope="module")
def reauth_gateway(certificates: Certificates,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SaslGateway, Path]]:
    """A gateway whose logins last REAUTH_MS, on a Redis (so a cluster) of its own: it leads
    every partition, so a producer's connections are all to it."""
    directory = tmp_path_factory.mktemp("reauth")
    redis_server = RedisServer(directory / "redis").start()
    log = directory / "gateway.log"
    started = SaslGateway(redis_server, log, certificates,
                          ["--connections-max-reauth-ms", str(REAUTH_MS), "--log-level", "DEBUG"])
    try:
        create_users(started, ("alice", PASSWORD), ("mallory", "mallory-secret"))
        yield started, log
    finally:
        started.process.stop()
        redis_server.stop()


def plain_login(wire: Wire, user: str = "alice", password: str = PASSWORD) -> Any:
    assert wire.call(sasl_handshake("PLAIN")).error_code == 0
    return wire.call(sasl_authenticate(f"\x00{user}\x00{password}".encode()))


def test_a_login_lasts_connections_max_reauth_ms_then_only_reauthentication_is_served(
        reauth_gateway: tuple[SaslGateway, Path]) -> None:
    gateway, _ = reauth_gateway
    with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
        answer = plain_login(wire)
        assert answer.error_code == 0
        assert answer.session_lifetime == datetime.timedelta(milliseconds=REAUTH_MS)
        assert wire.call(metadata([])).brokers
        time.sleep(REAUTH_MS / 1000 + 0.3)  # at least that long: the login has ended
        wire.send(metadata([]))
        assert wire.closed_by_server()
    with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
        assert plain_login(wire).error_code == 0
        time.sleep(REAUTH_MS / 1000 + 0.3)
        again = plain_login(wire)  # KIP-368: a new handshake on the same connection
        assert again.error_code == 0
        assert again.session_lifetime == datetime.timedelta(milliseconds=REAUTH_MS)
        assert wire.call(metadata([])).brokers


def test_reauthentication_cannot_change_the_principal(reauth_gateway: tuple[SaslGateway, Path]) -> None:
    reauth, _ = reauth_gateway
    with closing(Wire(f"127.0.0.1:{reauth.sasl}")) as wire:
        assert plain_login(wire).error_code == 0
        refused = plain_login(wire, "mallory", "mallory-secret")
        assert refused.error_code == 58
        assert "Cannot change principals" in refused.error_message
        assert wire.closed_by_server()


def test_confluent_kafka_reauthenticates_and_keeps_producing(
        reauth_gateway: tuple[SaslGateway, Path], topic_name: str) -> None:
    gateway, log = reauth_gateway
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{gateway.sasl}",
                         **sasl_settings("SCRAM-SHA-256")})
    delivered: list[bytes] = []
    for i in range(8):  # over at least 4 s: more than two logins' lifetimes
        producer.produce(topic_name, f"r{i}".encode(),
                         on_delivery=lambda error, message: delivered.append(message.value())
                         if error is None else None)
        producer.flush(30)
        time.sleep(0.5)
    assert delivered == [f"r{i}".encode() for i in range(8)]
    assert "User:alice re-authenticated with SCRAM-SHA-256" in log.read_text()


def test_describe_configs_shows_the_security_settings(reauth_gateway: tuple[SaslGateway, Path]) -> None:
    gateway, _ = reauth_gateway
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{gateway.plain}"})
    (node,) = admin.list_topics(timeout=20).brokers  # the only gateway on its Redis
    (configs,) = admin.describe_configs([ConfigResource(ResourceType.BROKER, str(node))]).values()
    values = {name: entry.value for name, entry in configs.result(timeout=30).items()}
    assert values["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"
    assert values["connections.max.reauth.ms"] == str(REAUTH_MS)
    assert values["ssl.client.auth"] == "none"
    assert values["listener.security.protocol.map"].startswith("PLAINTEXT:PLAINTEXT,SSL:SSL")
    assert values["listeners"] == (f"PLAINTEXT://127.0.0.1:{gateway.plain},SASL_PLAINTEXT://127.0.0.1:"
                                   f"{gateway.sasl},SASL_SSL://localhost:{gateway.sasl_ssl}")


class Monitored:
    """The commands Redis runs while the block runs (MONITOR, read in a thread): (client, command)."""

    STOP = "krg-test-monitor-stop"

    def __init__(self, redis_server: RedisServer) -> None:
        self._client = redis_server.client()
        self.commands: list[tuple[str, str]] = []
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        with self._client.monitor() as monitor:
            self._listening.set()
            for entry in monitor.listen():
                if self.STOP in entry["command"]:
                    return
                self.commands.append((f"{entry['client_address']}:{entry['client_port']}", entry["command"]))

    def __enter__(self) -> Monitored:
        self._thread.start()
        assert self._listening.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        redis.Redis(connection_pool=self._client.connection_pool).echo(self.STOP)
        self._thread.join(30)

    def on_scram_keys(self, command: str) -> int:
        return sum(1 for _, text in self.commands if text.startswith(f"{command} kafka:{{scram}}:"))

    def multis_of_scram_clients(self) -> int:
        # The credential store's connections are the ones that touch the SCRAM hashes.
        clients = {client for client, text in self.commands if "kafka:{scram}:" in text}
        return sum(1 for client, text in self.commands if client in clients and text == "MULTI")


def test_a_request_naming_thousands_of_users_reaches_redis_in_bounded_steps(
        gateway: SaslGateway, redis_server: RedisServer) -> None:
    users = [f"bulk-{i}" for i in range(2500)]
    alter = request_types(51, 0)
    request = alter.AlterUserScramCredentialsRequest(deletions=(), upsertions=tuple(
        alter.ScramCredentialUpsertion(name=user, mechanism=1, iterations=4096, salt=b"salt",
                                       salted_password=bytes(32))
        for user in users))
    describe = request_types(50, 0)
    with closing(Wire(f"127.0.0.1:{gateway.plain}")) as wire:
        with Monitored(redis_server) as altering:
            answer = wire.call(request)
        assert [result.error_code for result in answer.results] == [0] * len(users)
        # 2,500 users: three MULTI blocks of at most 1,000 users, not one of 2,500.
        assert altering.on_scram_keys("HSET") == len(users)
        assert altering.multis_of_scram_clients() == 3
        with Monitored(redis_server) as describing:
            described = wire.call(describe.DescribeUserScramCredentialsRequest(
                users=tuple(describe.UserName(name=user) for user in users)))
        assert [result.error_code for result in described.results] == [0] * len(users)
        # Three steps of at most 1,000 names, one HMGET per mechanism each.
        assert describing.on_scram_keys("HMGET") == 6


def test_sasl_apis_after_authentication_are_an_illegal_sasl_state_and_the_connection_goes_on(
        gateway: SaslGateway) -> None:
    with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
        assert wire.call(sasl_handshake("PLAIN")).error_code == 0
        assert wire.call(sasl_authenticate(f"\x00alice\x00{PASSWORD}".encode())).error_code == 0
        assert wire.call(sasl_authenticate(b"\x00alice\x00again")).error_code == 34  # ILLEGAL_SASL_STATE
        assert wire.call(sasl_handshake("PLAIN")).error_code == 34  # no re-authentication configured
        assert wire.call(metadata([])).brokers  # as Kafka's KafkaApis: answered, not closed
    with closing(Wire(f"127.0.0.1:{gateway.sasl}")) as wire:
        # Mid-exchange, a second handshake is out of order: answered, then closed.
        assert wire.call(sasl_handshake("SCRAM-SHA-256")).error_code == 0
        assert wire.call(sasl_handshake("SCRAM-SHA-256")).error_code == 34
        assert wire.closed_by_server()
