"""Several listeners per gateway, as Kafka's listeners / advertised.listeners configure them.

Each client is told the advertised address of the listener it connected
on; a listener beyond loopback with no authentication is named in a
warning at start.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from confluent_kafka import Consumer, Producer
from kafka_redis_gateway.gateway.embedded import free_port

from tests.integration.test_protocol import Wire, metadata
from tests.servers import GatewayProcess, RedisServer, module_redis

# A Redis of this module's own: its gateways form a cluster of their own, and the
# session's gateway (on the shared Redis) never lists them as brokers, nor they it.
redis_server = module_redis()


def brokers_seen_through(bootstrap: str) -> list[tuple[str, int]]:
    """The brokers of a Metadata response on a connection to ``bootstrap`` (the raw protocol:
    librdkafka would go on to connect to the advertised address, which may not exist)."""
    with closing(Wire(bootstrap)) as wire:
        response = wire.call(metadata([]))
    return [(broker.host, broker.port) for broker in response.brokers]


def test_each_client_is_told_the_address_of_the_listener_it_connected_on(
        redis_server: RedisServer, tmp_path: Path, topic_name: str) -> None:
    internal, external = free_port(), free_port()
    gateway = GatewayProcess(
        redis_server.url, port=internal, log_path=tmp_path / "gateway.log",
        listeners=f"INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}",
        extra_args=["--listener-security-protocol-map", "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
                    "--advertised-listeners", f"EXTERNAL://localhost:{external}"]).start()
    try:
        assert brokers_seen_through(f"127.0.0.1:{internal}") == [("127.0.0.1", internal)]
        assert brokers_seen_through(f"127.0.0.1:{external}") == [("localhost", external)]

        # A producer and a consumer on the external listener follow its advertised address.
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{external}"})
        for i in range(10):
            producer.produce(topic_name, f"m{i}".encode())
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": f"localhost:{external}", "group.id": topic_name,
                             "auto.offset.reset": "earliest"})
        try:
            consumer.subscribe([topic_name])
            read: list[bytes] = []
            for _ in range(120):
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    read.append(message.value())
                if len(read) == 10:
                    break
            assert read == [f"m{i}".encode() for i in range(10)]
        finally:
            consumer.close()
    finally:
        gateway.stop()
    log = (tmp_path / "gateway.log").read_text()
    assert f"INTERNAL://127.0.0.1:{internal} PLAINTEXT" in log
    assert "NO AUTHENTICATION" not in log  # both on loopback


def test_a_plaintext_listener_beyond_loopback_is_named_in_a_loud_warning(
        redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    gateway = GatewayProcess(redis_server.url, port=port, log_path=tmp_path / "gateway.log",
                             listeners=f"PLAINTEXT://0.0.0.0:{port}").start()
    try:
        # The wildcard is advertised as loopback, as --listen 0.0.0.0:PORT always was.
        assert brokers_seen_through(f"127.0.0.1:{port}") == [("127.0.0.1", port)]
    finally:
        gateway.stop()
    warnings = [line for line in (tmp_path / "gateway.log").read_text().splitlines()
                if "NO AUTHENTICATION" in line]
    assert len(warnings) == 1
    assert f"LISTENER PLAINTEXT ON 0.0.0.0:{port}" in warnings[0]
    assert "WARNING" in warnings[0]


def test_listen_and_advertised_listener_are_the_one_plaintext_listener(
        redis_server: RedisServer, tmp_path: Path) -> None:
    gateway = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--advertised-listener", "localhost:1234"]).start()
    try:
        assert brokers_seen_through(gateway.bootstrap) == [("localhost", 1234)]
    finally:
        gateway.stop()
