"""SSL listeners: real clients over TLS, client certificates (mTLS), certificates reloaded live."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer
from kafka_redis_gateway.gateway.embedded import free_port

from tests.integration.operations_support import wait_for_log
from tests.integration.test_java_tools import BIN as JAVA_CONSOLE_BIN
from tests.integration.test_java_tools import console_consume, console_produce
from tests.servers import GatewayProcess, RedisServer, module_redis
from tests.tls_support import Certificates, issue, java_tls_properties, make_certificates, tls_args

# A Redis of this module's own: its gateways form a cluster of their own, and the
# session's gateway (on the shared Redis) never lists them as brokers, nor they it.
redis_server = module_redis()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def ssl_gateway(redis_server: RedisServer, log: Path, args: list[str],
                plaintext_port: int | None = None) -> GatewayProcess:
    port = free_port()
    listeners = f"SSL://127.0.0.1:{port}"
    if plaintext_port is not None:
        listeners += f",PLAINTEXT://127.0.0.1:{plaintext_port}"
    return GatewayProcess(redis_server.url, port=port, log_path=log, listeners=listeners,
                          extra_args=args).start()


def confluent_ssl(certificates: Certificates, *, client_cert: bool = False) -> dict[str, str]:
    settings = {"security.protocol": "SSL", "ssl.ca.location": str(certificates.ca)}
    if client_cert:
        settings |= {"ssl.certificate.location": str(certificates.client_cert),
                     "ssl.key.location": str(certificates.client_key)}
    return settings


def confluent_round_trip(bootstrap: str, topic: str, settings: dict[str, str]) -> list[bytes]:
    producer = Producer({"bootstrap.servers": bootstrap, **settings})
    for i in range(5):
        producer.produce(topic, f"tls-{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", **settings})
    read: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(read) < 5 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                read.append(message.value())
    finally:
        consumer.close()
    return read


def test_clients_produce_and_consume_over_tls(redis_server: RedisServer, certificates: Certificates,
                                              tmp_path: Path, topic_name: str) -> None:
    plaintext = free_port()
    gateway = ssl_gateway(redis_server, tmp_path / "gateway.log", tls_args(certificates), plaintext)
    try:
        expected = [f"tls-{i}".encode() for i in range(5)]
        assert confluent_round_trip(gateway.bootstrap, topic_name, confluent_ssl(certificates)) == expected

        # kafka-python, then aiokafka, read what was written and add their own.
        producer = KafkaProducer(bootstrap_servers=gateway.bootstrap, security_protocol="SSL",
                                 ssl_cafile=str(certificates.ca))
        producer.send(topic_name, b"kafka-python").get(timeout=30)
        producer.close()
        consumer = KafkaConsumer(topic_name, bootstrap_servers=gateway.bootstrap, security_protocol="SSL",
                                 ssl_cafile=str(certificates.ca), auto_offset_reset="earliest",
                                 consumer_timeout_ms=10_000)
        assert [message.value for message in consumer][:6] == [*expected, b"kafka-python"]
        consumer.close()

        async def with_aiokafka() -> list[bytes]:
            context = create_ssl_context(cafile=str(certificates.ca))
            producer = AIOKafkaProducer(bootstrap_servers=gateway.bootstrap, security_protocol="SSL",
                                        ssl_context=context)
            await producer.start()
            try:
                await producer.send_and_wait(topic_name, b"aiokafka")
            finally:
                await producer.stop()
            consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=gateway.bootstrap,
                                        security_protocol="SSL", ssl_context=context,
                                        auto_offset_reset="earliest")
            await consumer.start()
            try:
                batches = await consumer.getmany(timeout_ms=10_000, max_records=7)
                return [record.value for records in batches.values() for record in records]
            finally:
                await consumer.stop()

        assert asyncio.run(with_aiokafka()) == [*expected, b"kafka-python", b"aiokafka"]

        # The PLAINTEXT listener next to it serves the same topic in clear text.
        plain = Consumer({"bootstrap.servers": f"127.0.0.1:{plaintext}", "group.id": "plain",
                          "auto.offset.reset": "earliest"})
        try:
            metadata = plain.list_topics(topic_name, timeout=20)
            assert [(b.host, b.port) for b in metadata.brokers.values()] == [("127.0.0.1", plaintext)]
        finally:
            plain.close()
    finally:
        gateway.stop()


def test_a_plaintext_client_on_a_tls_listener_gets_nowhere(
        redis_server: RedisServer, certificates: Certificates, tmp_path: Path) -> None:
    # Every failed handshake logged (the start-up probe's too), not one per 10 s.
    gateway = ssl_gateway(redis_server, tmp_path / "gateway.log",
                          [*tls_args(certificates), "--warning-interval-ms", "1"])
    try:
        admin = AdminClient({"bootstrap.servers": gateway.bootstrap, "socket.timeout.ms": 3000})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)
    finally:
        gateway.stop()
    assert "TLS handshake with 127.0.0.1:" in (tmp_path / "gateway.log").read_text()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@contextlib.contextmanager
def held_in_handshake(host: str, port: int) -> Iterator[socket.socket]:
    """A connection that never sends its ClientHello, once the gateway keeps it
    (the start-up probe's own handshake may still hold the only place at first)."""
    deadline = time.monotonic() + 20
    while True:
        sock = socket.create_connection((host, port))
        if not closed_within(sock, 0.5):
            break
        sock.close()
        assert time.monotonic() < deadline, "no connection was kept"
    with sock:
        yield sock


def test_connections_in_their_tls_handshake_count_against_max_connections(
        redis_server: RedisServer, certificates: Certificates, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    gateway = ssl_gateway(redis_server, log, [*tls_args(certificates), "--max-connections", "1",
                                              "--warning-interval-ms", "1"])
    try:
        host, port = gateway.bootstrap.rsplit(":", 1)
        with held_in_handshake(host, int(port)) as silent:
            with socket.create_connection((host, int(port))) as second:
                second.settimeout(5)
                started = time.monotonic()
                with contextlib.suppress(ConnectionResetError):
                    assert second.recv(1) == b""
                assert time.monotonic() - started < 3, "the second connection was taken into a handshake"
            assert not closed_within(silent, 0.5), "the connection in its handshake was dropped"
        assert "the --max-connections limit" in wait_for_log(log, "refusing connection")
    finally:
        gateway.stop()


def python_clients_over_mtls(bootstrap: str, topic: str, certificates: Certificates) -> list[bytes]:
    """kafka-python then aiokafka, each with the client certificate, add a record; all read back."""
    tls = {"security_protocol": "SSL", "ssl_cafile": str(certificates.ca),
           "ssl_certfile": str(certificates.client_cert), "ssl_keyfile": str(certificates.client_key)}
    producer = KafkaProducer(bootstrap_servers=bootstrap, **tls)
    producer.send(topic, b"kafka-python").get(timeout=30)
    producer.close()

    async def with_aiokafka() -> list[bytes]:
        context = create_ssl_context(cafile=str(certificates.ca), certfile=str(certificates.client_cert),
                                     keyfile=str(certificates.client_key))
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_context=context)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"aiokafka")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, security_protocol="SSL",
                                    ssl_context=context, auto_offset_reset="earliest")
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=10_000, max_records=100)
            return [record.value for records in batches.values() for record in records]
        finally:
            await consumer.stop()

    return asyncio.run(with_aiokafka())


def kcat_over_mtls(bootstrap: str, topic: str, certificates: Certificates) -> list[str]:
    """kcat produces one record with the client certificate, then prints the topic's values."""
    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={certificates.ca}",
           "-X", f"ssl.certificate.location={certificates.client_cert}",
           "-X", f"ssl.key.location={certificates.client_key}"]
    kcat = shutil.which("kcat")
    assert kcat is not None
    produced = subprocess.run([kcat, "-b", bootstrap, *tls, "-P", "-t", topic], input="kcat\n",
                              capture_output=True, text=True, timeout=60, check=False)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run([kcat, "-b", bootstrap, *tls, "-C", "-t", topic, "-e", "-q"],
                              capture_output=True, text=True, timeout=60, check=False)
    assert consumed.returncode == 0, consumed.stderr
    return consumed.stdout.splitlines()


def test_required_client_certificates_authenticate_the_client_as_its_subject(
        redis_server: RedisServer, certificates: Certificates, tmp_path: Path, topic_name: str) -> None:
    log = tmp_path / "gateway.log"
    gateway = ssl_gateway(redis_server, log, [*tls_args(certificates, client_auth="required"),
                                              "--log-level", "DEBUG"])
    try:
        without = AdminClient({"bootstrap.servers": gateway.bootstrap, **confluent_ssl(certificates)})
        with pytest.raises(KafkaException):
            without.list_topics(timeout=5)
        read = confluent_round_trip(gateway.bootstrap, topic_name,
                                    confluent_ssl(certificates, client_cert=True))
        assert read == [f"tls-{i}".encode() for i in range(5)]
        assert python_clients_over_mtls(gateway.bootstrap, topic_name, certificates)[5:] == [
            b"kafka-python", b"aiokafka"]
        if shutil.which("kcat") is not None:
            assert kcat_over_mtls(gateway.bootstrap, topic_name, certificates)[-1] == "kcat"
    finally:
        gateway.stop()
    text = log.read_text()
    # Kafka's default principal builder: the subject in RFC 2253 order.
    assert "on listener SSL as User:CN=alice,O=Example" in text
    # On loopback, or authenticated: no warning either way.
    assert "NO AUTHENTICATION" not in text


@pytest.mark.skipif(not (JAVA_CONSOLE_BIN / "kafka-console-producer.sh").exists(),
                    reason=f"no Kafka console tools in {JAVA_CONSOLE_BIN}")
def test_java_console_tools_produce_and_consume_with_a_client_certificate(
        redis_server: RedisServer, certificates: Certificates, tmp_path: Path, topic_name: str) -> None:
    log = tmp_path / "gateway.log"
    gateway = ssl_gateway(redis_server, log, [*tls_args(certificates, client_auth="required"),
                                              "--log-level", "DEBUG"])
    properties = tmp_path / "client.properties"
    properties.write_text("\n".join(["security.protocol=SSL", *java_tls_properties(
        certificates, tmp_path, client_certificate=True)]) + "\n")
    try:
        console_produce(gateway.bootstrap, topic_name, ["java", "over mTLS"],
                        "--producer.config", str(properties))
        printed = console_consume(gateway.bootstrap, topic_name, 2, "--from-beginning",
                                  "--consumer.config", str(properties))
        assert printed == ["java", "over mTLS"]
    finally:
        gateway.stop()
    # The principal is the certificate's subject, as Kafka's default principal builder makes it.
    assert "on listener SSL as User:CN=alice,O=Example" in log.read_text()


def test_only_tls_listeners_beyond_loopback_that_do_not_authenticate_are_warned_about(
        redis_server: RedisServer, certificates: Certificates, tmp_path: Path) -> None:
    # SSL with client certificates only requested lets anyone in; SASL_SSL does not.
    ssl_port, sasl_ssl_port = free_port(), free_port()
    log = tmp_path / "gateway.log"
    gateway = GatewayProcess(redis_server.url, port=ssl_port, log_path=log,
                             listeners=f"SSL://0.0.0.0:{ssl_port},SASL_SSL://0.0.0.0:{sasl_ssl_port}",
                             extra_args=[*tls_args(certificates, client_auth="requested"),
                                         "--sasl-enabled-mechanisms", "SCRAM-SHA-256"]).start()
    gateway.stop()
    warnings = [line for line in log.read_text().splitlines() if "NO AUTHENTICATION" in line]
    assert len(warnings) == 1, warnings
    assert f"LISTENER SSL ON 0.0.0.0:{ssl_port}" in warnings[0]


def served_certificate_subject(port: int, ca: Path) -> str:
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        certificate = tls.getpeercert()
    assert certificate is not None
    return ",".join(f"{name}={value}" for rdn in certificate["subject"] for name, value in rdn)


def test_a_replaced_certificate_is_served_to_new_connections_without_a_restart(
        redis_server: RedisServer, certificates: Certificates, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    cert, key = served / "server.pem", served / "server.key"
    shutil.copy(certificates.server_cert, cert)
    shutil.copy(certificates.server_key, key)
    gateway = ssl_gateway(redis_server, tmp_path / "gateway.log",
                          ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)])
    try:
        assert served_certificate_subject(gateway.port, certificates.ca) == "commonName=localhost"
        renewed_cert, renewed_key = issue(tmp_path, "renewed", "/O=Renewed/CN=localhost", certificates.ca,
                                          certificates.ca.with_name("ca.key"),
                                          alt_names="DNS:localhost,IP:127.0.0.1")
        # Replaced as a deployment tool would: each file renamed into place.
        shutil.copy(renewed_key, served / "key.tmp")
        shutil.copy(renewed_cert, served / "cert.tmp")
        (served / "key.tmp").replace(key)
        (served / "cert.tmp").replace(cert)
        deadline = time.monotonic() + 30
        subject = ""
        while time.monotonic() < deadline:
            subject = served_certificate_subject(gateway.port, certificates.ca)
            if subject != "commonName=localhost":
                break
            time.sleep(0.2)
        assert subject == "organizationName=Renewed,commonName=localhost"
    finally:
        gateway.stop()
    assert "TLS certificate reloaded" in (tmp_path / "gateway.log").read_text()
