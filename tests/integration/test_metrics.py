"""The Prometheus endpoint, scraped while a real producer and consumer group run."""

from __future__ import annotations

import asyncio
import time
from contextlib import closing
from pathlib import Path

from confluent_kafka import Consumer, Producer
from kafka_redis_gateway.gateway.config import Config, HostPort
from kafka_redis_gateway.gateway.embedded import free_port
from kafka_redis_gateway.gateway.server import Gateway

from tests.integration.operations_support import scrape, total, value
from tests.integration.test_protocol import Wire, metadata
from tests.servers import GatewayProcess, RedisServer


def test_metrics_count_a_producer_and_a_consumer_group(tmp_path: Path, topic_name: str) -> None:
    metrics_port = free_port()
    # A Redis of its own: on the session one, this gateway would be one of a
    # cluster, and clients would send some requests to the others.
    redis_server = RedisServer(tmp_path / "redis").start()
    gateway = GatewayProcess(redis_server.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"]).start()
    try:
        before = scrape(metrics_port)
        assert value(before, "krg_requests_total", api="Produce") == 0

        values = [f"record-{i}".encode() for i in range(200)]
        producer = Producer({"bootstrap.servers": gateway.bootstrap, "linger.ms": 5})
        for payload in values:
            producer.produce(topic_name, payload)
        assert producer.flush(30) == 0

        consumer = Consumer({"bootstrap.servers": gateway.bootstrap, "group.id": f"g-{topic_name}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            consumer.subscribe([topic_name])
            read: list[bytes] = []
            deadline = time.monotonic() + 60
            while len(read) < len(values) and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    read.append(message.value())
            assert read == values
            consumer.commit(asynchronous=False)

            # A request the gateway cannot serve: counted as an error of its API.
            with closing(Wire(gateway.bootstrap)) as wire:
                _, data = wire.encode(metadata([topic_name]))
                wire.sock.sendall(data[:6] + b"\x00\x63" + data[8:])  # Metadata v99
                assert wire.closed_by_server()

            samples = scrape(metrics_port)
        finally:
            consumer.close()
    finally:
        gateway.stop()
        redis_server.stop()

    for api in ("ApiVersions", "Metadata", "Produce", "Fetch", "FindCoordinator", "JoinGroup",
                "SyncGroup", "OffsetCommit"):
        assert value(samples, "krg_requests_total", api=api) > 0, api
    assert value(samples, "krg_request_duration_seconds_count", api="Produce") > 0
    assert value(samples, "krg_request_duration_seconds_count", api="Fetch") > 0
    assert value(samples, "krg_request_errors_total", api="Metadata") >= 1
    assert value(samples, "krg_request_errors_total", api="Produce") == 0
    assert value(samples, "krg_received_bytes_total") > sum(len(v) for v in values)
    assert value(samples, "krg_sent_bytes_total") > sum(len(v) for v in values)
    # The producer's and the consumer's connections at least.
    assert value(samples, "krg_open_connections") >= 2
    assert ("krg_in_flight_requests", ()) in samples
    assert value(samples, "krg_redis_duration_seconds_count") > 0
    assert value(samples, "krg_redis_reconnects_total") == 0
    assert total(samples, "krg_consumer_groups") == 1
    assert value(samples, "krg_consumer_groups", state="Stable") == 1


async def test_two_gateways_in_one_process_serve_the_same_metrics(redis_server: RedisServer) -> None:
    # The bench tool may run gateways in its own process: module-level
    # metrics must not be registered twice, and each endpoint serves them.
    configs = [Config(listen=HostPort("127.0.0.1", free_port()), redis_url=redis_server.url,
                      metrics_listen=HostPort("127.0.0.1", free_port())) for _ in range(2)]
    gateways = [Gateway(config) for config in configs]
    try:
        for gateway in gateways:
            await gateway.start()
        for config in configs:
            assert config.metrics_listen is not None
            samples = await asyncio.to_thread(scrape, config.metrics_listen.port)
            assert ("krg_open_connections", ()) in samples
    finally:
        for gateway in gateways:
            await gateway.shutdown()
