"""Shared fixtures: one Redis and one gateway per test session, fresh topics per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from kafka_redis_gateway.gateway.storage import RedisStorage

from tests.servers import GatewayProcess, RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    log = Path(tmp_path_factory.mktemp("gateway")) / "gateway.log"
    # Node 0, below every assigned ID: the controller whatever other
    # gateways tests start on the same Redis.
    process = GatewayProcess(redis_server.url, log_path=log, extra_args=["--node-id", "0"]).start()
    yield process
    process.stop()


@pytest.fixture
def bootstrap(gateway: GatewayProcess) -> str:
    return gateway.bootstrap


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def topic_name() -> str:
    """A topic name no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def storage(redis_server: RedisServer) -> AsyncIterator[RedisStorage]:
    """The gateway's storage layer on the session Redis, for tests below the wire protocol."""
    store = RedisStorage(redis_server.url)
    yield store
    await store.close()
