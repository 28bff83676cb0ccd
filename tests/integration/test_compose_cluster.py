"""compose/compose.yaml's cluster profile (three gateways on one Redis), run without Docker.

No Docker engine runs here, so the three gateway services run as processes
with the compose file's own environment, only names and ports made local:
the compose network's ``redis`` is a Redis of this module's own, each
container's ports are free loopback ports, and the service names that the
INTERNAL listeners advertise are ``localhost``. The file's settings are also
checked against each other: the port each service publishes is the one its
HOST listener binds and advertises, and each INTERNAL listener advertises
its own service name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_redis_gateway.gateway.embedded import free_port, wait_for_port

from tests.compose_support import COMPOSE_DIR, list_under, mapping_under, service_lines
from tests.integration.groups_support import wait_until
from tests.servers import TEST_GATEWAY_ARGS, RedisServer, module_redis

COMPOSE = COMPOSE_DIR / "compose.yaml"
SERVICES = ("gateway", "gateway-2", "gateway-3")

# The three gateways must form a cluster of their own.
redis_server = module_redis()


def environment(service: str) -> dict[str, str]:
    """The service's environment, with a ``<<: *gateway-environment`` merge resolved."""
    own = mapping_under(service_lines(COMPOSE, service), "environment")
    if own.pop("<<", None) == "*gateway-environment":
        return {**mapping_under(service_lines(COMPOSE, "gateway"), "environment"), **own}
    return own


def endpoints(text: str) -> dict[str, tuple[str, int]]:
    """NAME://HOST:PORT,... -> {NAME: (HOST, PORT)}."""
    found = {}
    for item in text.split(","):
        name, host, port = re.fullmatch(r"(\w+)://([^:]*):(\d+)", item.strip()).groups()  # type: ignore[union-attr]
        found[name] = (host, int(port))
    return found


def test_each_gateway_publishes_binds_and_advertises_the_same_host_port() -> None:
    host_ports = []
    for service in SERVICES:
        settings = environment(service)
        assert settings["KRG_REDIS_URL"] == "redis://redis:6379/0", service
        listeners = endpoints(settings["KRG_LISTENERS"])
        advertised = endpoints(settings["KRG_ADVERTISED_LISTENERS"])
        (published,) = list_under(service_lines(COMPOSE, service), "ports")
        host_port, container_port = published.rsplit(":", 2)[1:]
        assert int(host_port) == int(container_port) == listeners["HOST"][1] == advertised["HOST"][1]
        assert advertised["HOST"][0] == "127.0.0.1"
        assert advertised["INTERNAL"] == (service, listeners["INTERNAL"][1]), service
        host_ports.append(listeners["HOST"][1])
    assert len(set(host_ports)) == 3


def local_environment(service: str, redis_url: str, ports: dict[int, int]) -> dict[str, str]:
    """The service's environment on this machine: Redis, ports and service names made local."""
    local = {}
    for name, value in environment(service).items():
        value = value.replace("redis://redis:6379/0", redis_url).replace("0.0.0.0:", "127.0.0.1:")
        value = re.sub(r"INTERNAL://[\w-]+:", "INTERNAL://localhost:", value)
        local[name] = re.sub(r":(\d+)\b", lambda m: f":{ports.get(int(m[1]), int(m[1]))}", value)
    return local


@pytest.fixture
def compose_cluster(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[tuple[int, int]]]:
    """The three gateway services as processes; each one's (HOST port, INTERNAL port)."""
    redis_server.client().flushall()
    started: list[subprocess.Popen[bytes]] = []
    addresses = []
    try:
        for service in SERVICES:
            listeners = endpoints(environment(service)["KRG_LISTENERS"])
            host, internal = free_port(), free_port()
            settings = local_environment(service, redis_server.url,
                                         {listeners["HOST"][1]: host, listeners["INTERNAL"][1]: internal})
            with open(tmp_path / f"{service}.log", "wb") as log:
                started.append(subprocess.Popen(
                    [sys.executable, "-m", "kafka_redis_gateway.gateway", *TEST_GATEWAY_ARGS],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env={**{k: v for k, v in os.environ.items() if not k.startswith("KRG_")}, **settings}))
            wait_for_port(host, started[-1])
            addresses.append((host, internal))
        yield addresses
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)


def listed(bootstrap: str) -> set[str]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {f"{broker.host}:{broker.port}" for broker in metadata.brokers.values()}


def test_the_cluster_profile_is_one_kafka_cluster_on_both_listeners(
        compose_cluster: list[tuple[int, int]]) -> None:
    hosts = {f"127.0.0.1:{host}" for host, _ in compose_cluster}
    internals = {f"localhost:{internal}" for _, internal in compose_cluster}
    for host, internal in compose_cluster:
        wait_until(lambda h=host: listed(f"127.0.0.1:{h}") == hosts, 30, "every HOST address")
        wait_until(lambda i=internal: listed(f"localhost:{i}") == internals, 30, "every INTERNAL address")
    # Produced through one gateway's HOST listener, read through another's INTERNAL one.
    (first_host, _), _, (_, last_internal) = compose_cluster
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{first_host}"})
    admin.create_topics([NewTopic("compose-cluster", num_partitions=3)])["compose-cluster"].result(30)
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{first_host}", "enable.idempotence": True})
    for i in range(30):
        producer.produce("compose-cluster", str(i).encode(), partition=i % 3)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": f"localhost:{last_internal}", "group.id": "compose",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition("compose-cluster", p, 0) for p in range(3)])
    values: list[int] = []
    try:
        wait_until(lambda: values.extend(int(m.value()) for m in consumer.consume(30, timeout=0.5)
                                         if m.error() is None) or len(values) >= 30,
                   60, "the 30 records")
    finally:
        consumer.close()
    assert sorted(values) == list(range(30))
