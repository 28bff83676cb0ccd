"""Timeouts on the multiplexed hot-path connection, against a real Valkey.

A caller that times out must fail alone while Redis keeps answering the
connection; only a connection that sends nothing at all is declared dead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_redis_gateway.gateway.storage.multiplex import MultiplexedConnection
from redis import exceptions as redis_errors

from tests.servers import RedisServer

# DEBUG SLEEP holds Redis for a time of its own clock, however fast the
# machine is. Redis reads a client's commands 16 KiB at a time and sends the
# replies of each read before the next, so a 16 KiB ECHO after each sleep
# makes it answer the slow caller's commands bit by bit, as it answers a
# queue of large appends.
PADDING = b"x" * 16384


def slow_commands(count: int, seconds: float) -> list[tuple[object, ...]]:
    return [command for _ in range(count)
            for command in (("DEBUG", "SLEEP", seconds), ("ECHO", PADDING))]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, with DEBUG (shadowing the session one)."""
    server = RedisServer(tmp_path / "redis", extra_args=["--enable-debug-command", "yes"]).start()
    yield server
    server.stop()


async def test_a_callers_timeout_does_not_fail_the_callers_behind_it(redis_server: RedisServer) -> None:
    connection = MultiplexedConnection(redis_server.url, timeout=1.5)
    try:
        (client_id,) = await connection.execute([("CLIENT", "ID")])
        # 300 x 10 ms: twice the slow caller's timeout, with replies flowing all along.
        slow = asyncio.ensure_future(connection.execute(slow_commands(300, 0.01)))
        await asyncio.sleep(0)  # the slow caller's commands go out first
        fast = asyncio.ensure_future(connection.execute([("CLIENT", "ID")], extra_time=60))
        with pytest.raises(redis_errors.TimeoutError):
            await slow
        # Still on the same connection, answered once Redis got to it.
        assert await fast == [client_id]
        assert await connection.execute([("CLIENT", "ID")]) == [client_id]
    finally:
        connection.close()


async def test_a_silent_connection_is_declared_dead(redis_server: RedisServer) -> None:
    connection = MultiplexedConnection(redis_server.url, timeout=0.5)
    try:
        (client_id,) = await connection.execute([("CLIENT", "ID")])
        # One command holding Redis for 2 s: not one reply byte for the timeout.
        stuck = asyncio.ensure_future(connection.execute([("DEBUG", "SLEEP", 2)]))
        await asyncio.sleep(0)
        behind = asyncio.ensure_future(connection.execute([("PING",)], extra_time=60))
        with pytest.raises(redis_errors.TimeoutError):
            await stuck
        with pytest.raises(redis_errors.TimeoutError):
            await behind
        # The next call connects afresh (and waits its turn behind the script).
        connection.timeout = 10
        (new_id,) = await connection.execute([("CLIENT", "ID")])
        assert new_id != client_id
    finally:
        connection.close()
