"""docs/security.md's hardened example, run without Docker.

The secrets are made by the document's own shell commands; Redis runs with
compose/hardened.yaml's command line and the gateway with its environment,
only names, paths and ports made local (the compose network's ``redis`` is
``localhost`` here, the container's ``/secrets`` a temporary directory, and
every port a free loopback one). A user made through the OPERATOR listener
then produces and consumes over SASL_SSL with SCRAM-SHA-512; another user
may not write until admin grants it (the authorizer is on).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka_redis_gateway.gateway.embedded import free_port, wait_for_port

from tests.compose_support import COMPOSE_DIR, list_under, mapping_under, service_lines
from tests.servers import TEST_GATEWAY_ARGS
from tests.tls_support import Certificates, tls_server_binary

ROOT = Path(__file__).resolve().parents[2]
HARDENED = COMPOSE_DIR / "hardened.yaml"


def documented_commands() -> str:
    """The shell block of docs/security.md's "A hardened example"."""
    section = (ROOT / "docs" / "security.md").read_text().split("## A hardened example", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found, "no sh block in the hardened example"
    return found[1]


def make_secrets(base: Path) -> Path:
    """Run the documented commands from a copy of the repository's root; the secrets directory."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    (base / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "security.md", base / "docs" / "security.md")
    subprocess.run(["bash", "-euo", "pipefail", "-c", documented_commands()], cwd=base, check=True,
                   capture_output=True, timeout=120)
    return base / "compose" / "secrets"


def dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def localized(text: str, secrets: Path, ports: dict[str, int], variables: dict[str, str]) -> str:
    """A compose value with the compose file's names, paths, ports and ${...} made local."""
    text = re.sub(r"\$\{(\w+)(?::[-?][^}]*)?\}",
                  lambda m: variables.get(m[1], "localhost" if m[1] == "KRG_ADVERTISED_HOST" else m[0]),
                  text)
    text = text.replace("/secrets/", f"{secrets}/").replace("@redis:", "@localhost:")
    text = text.replace("0.0.0.0:", "127.0.0.1:")  # tests listen on loopback only
    for port, local in ports.items():
        text = str(local) if text == port else re.sub(rf":{port}\b", f":{local}", text)
    return text


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    return make_secrets(tmp_path / "repo")


@pytest.fixture
def hardened_redis(secrets: Path, tmp_path: Path) -> Iterator[int]:
    """Redis with the compose file's command line; its TLS port."""
    certificates = Certificates(secrets / "ca.pem", secrets / "redis.pem", secrets / "redis.key",
                                secrets / "gateway.pem", secrets / "gateway.key")
    binary = tls_server_binary(certificates)
    port = free_port()
    command = [localized(arg, secrets, {"6380": port}, {})
               for arg in list_under(service_lines(HARDENED, "redis"), "command")]
    assert command[0] == "redis-server"
    data = tmp_path / "redis-data"
    data.mkdir()
    process = subprocess.Popen([binary, *command[1:], "--bind", "127.0.0.1", "--dir", str(data)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_the_hardened_example_serves_a_scram_user_over_sasl_ssl(
        secrets: Path, hardened_redis: int, tmp_path: Path) -> None:
    external, operator = free_port(), free_port()
    ports = {"6380": hardened_redis, "9093": external, "9092": operator}
    variables = dotenv(secrets.parent / ".env")
    compose_environment = mapping_under(service_lines(HARDENED, "gateway"), "environment")
    environment = {name: localized(value, secrets, ports, variables)
                   for name, value in compose_environment.items()}
    log_path = tmp_path / "gateway.log"
    with open(log_path, "wb") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "kafka_redis_gateway.gateway", *TEST_GATEWAY_ARGS],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("KRG_")}, **environment})
    try:
        wait_for_port(external, gateway)
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{operator}"})
        admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "admin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"admin-secret")]
        )["admin"].result(timeout=30)
        login = {"bootstrap.servers": f"localhost:{external}", "security.protocol": "SASL_SSL",
                 "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                 "sasl.password": "admin-secret", "ssl.ca.location": str(secrets / "ca.pem")}
        producer = Producer({**login, "enable.idempotence": True})
        for i in range(10):
            producer.produce("hardened", f"v{i}".encode())
        assert producer.flush(30) == 0
        consumer = Consumer({**login, "group.id": "hardened", "auto.offset.reset": "earliest"})
        values: list[bytes] = []
        try:
            consumer.subscribe(["hardened"])
            deadline = time.monotonic() + 60
            while len(values) < 10 and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    values.append(message.value())
        finally:
            consumer.close()
        assert values == [f"v{i}".encode() for i in range(10)]
        user_needs_a_grant(admin, login)
        assert "NO AUTHENTICATION" not in log_path.read_text()
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)


def user_needs_a_grant(operator: AdminClient, admin_login: dict[str, str]) -> None:
    """A user without ACLs is refused the topic; once admin grants WRITE, it may produce."""
    operator.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "app", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"app-secret")]
    )["app"].result(timeout=30)
    app_login = {**admin_login, "sasl.username": "app", "sasl.password": "app-secret"}
    assert produce_errors(app_login) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    granted = AclBinding(ResourceType.TOPIC, "hardened", ResourcePatternType.LITERAL, "User:app", "*",
                         AclOperation.WRITE, AclPermissionType.ALLOW)
    as_admin = AdminClient(admin_login)
    as_admin.create_acls([granted])[granted].result(timeout=30)
    assert produce_errors(app_login) == [None]


def produce_errors(login: dict[str, str]) -> list[int | None]:
    """One record produced to "hardened": its delivery error code (None when written)."""
    errors: list[int | None] = []
    producer = Producer({**login, "message.timeout.ms": 20000})
    producer.produce("hardened", b"from app",
                     on_delivery=lambda error, _: errors.append(None if error is None else error.code()))
    producer.flush(30)
    return errors


def test_the_hardened_example_redis_lets_in_only_its_user(secrets: Path, hardened_redis: int) -> None:
    tls = {"ssl": True, "ssl_ca_certs": str(secrets / "ca.pem"),
           "ssl_certfile": str(secrets / "gateway.pem"), "ssl_keyfile": str(secrets / "gateway.key")}
    nobody = redis.Redis(host="localhost", port=hardened_redis, **tls)  # type: ignore[arg-type]
    with pytest.raises(redis.AuthenticationError):
        nobody.ping()  # the default user is off
    nobody.close()
    password = dotenv(secrets.parent / ".env")["KRG_REDIS_PASSWORD"]
    krg = redis.Redis(host="localhost", port=hardened_redis, username="krg", password=password,
                      **tls)  # type: ignore[arg-type]
    try:
        assert krg.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            krg.set("other-app:data", "x")  # keys outside kafka:*
        with pytest.raises(redis.exceptions.NoPermissionError):
            krg.flushall()
    finally:
        krg.close()
    without_certificate = redis.Redis(host="localhost", port=hardened_redis, ssl=True,
                                      ssl_ca_certs=str(secrets / "ca.pem"), username="krg",
                                      password=password)
    with pytest.raises(redis.ConnectionError):
        without_certificate.ping()  # tls-auth-clients yes
    without_certificate.close()
