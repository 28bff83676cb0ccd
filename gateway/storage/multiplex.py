"""One Redis connection shared by every request, commands pipelined on it.

redis-py's asyncio client costs about 170-250 us of CPU per round trip (its
pool, pipeline object, locks and timeouts), measured against about 35 us for
the same PING written with hiredis over an asyncio protocol
(docs/benchmarks.md). At a thousand Kafka requests a second, each one or two
round trips, that overhead alone was half of the gateway's core. The
produce and fetch hot path therefore sends its script calls here instead:
hiredis packs the commands and parses the replies (both in C), callers'
commands go out in one write each and are pipelined behind each other on one
socket, and replies are matched to callers in order, as Redis answers a
connection's commands in order.

Only commands that never block the connection belong here: a WAITAOF, WAIT
or XREAD BLOCK would hold up every caller queued behind it, so those stay on
redis-py's pooled connections. Failures surface as redis-py's exceptions
(ConnectionError, TimeoutError, ResponseError and its subclasses such as
NoScriptError), so callers classify them exactly as before.

Timeouts are per caller: a caller whose replies do not all come within its
timeout gets a TimeoutError, its place in the reply order is kept, and its
replies are dropped when they arrive; the callers behind it keep waiting for
theirs. The connection itself is declared dead, failing every caller on it
so that the next call connects afresh, when it breaks, when its reply
stream cannot be parsed, or when replies are owed and not one reply byte has
come since a caller that timed out sent its commands (Redis is hung or
unreachable, not merely busy with a queue of work it is answering).
"""

from __future__ import annotations

import asyncio
import collections
import gc
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from redis import exceptions as redis_errors
from redis._parsers.base import BaseParser
from redis.connection import parse_url


class _Waiter:
    """One caller's batch: the replies it still expects and where they go."""

    __slots__ = ("expected", "future", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], expected: int) -> None:
        self.future = future
        self.expected = expected
        self.replies: list[Any] = []


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: MultiplexedConnection) -> None:
        self.owner = owner
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[_Waiter] = collections.deque()
        self.transport: asyncio.Transport | None = None
        # Reply bytes received so far: a caller that times out with this
        # unchanged since it sent has seen a silent connection.
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.reader.feed(data)
        # A fetch's reply is thousands of lists (two per stream entry) that
        # hiredis builds across many calls here and that live until the
        # fetch is encoded. Left alone, the cyclic GC traverses them again
        # and again as they are built and promoted, up to full collections
        # of the whole heap: measured, about a third of the gateway's CPU in
        # a consume from the beginning. Paused while hiredis builds them, it
        # counts them as allocations all the same and collects once after.
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            self._replies()
        finally:
            if collecting:
                gc.enable()

    def _replies(self) -> None:
        waiters = self.waiters
        gets = self.reader.gets
        try:
            while (reply := gets()) is not False:
                if not waiters:
                    raise redis_errors.ConnectionError("reply without a request")
                waiter = waiters[0]
                if isinstance(reply, hiredis.ReplyError):
                    reply = BaseParser.parse_error(str(reply))  # type: ignore[no-untyped-call]
                waiter.replies.append(reply)
                if len(waiter.replies) == waiter.expected:
                    waiters.popleft()
                    if not waiter.future.done():  # a cancelled or timed-out caller's replies are dropped
                        waiter.future.set_result(waiter.replies)
        except (hiredis.ProtocolError, redis_errors.ConnectionError) as exc:
            self.fail(redis_errors.ConnectionError(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis_errors.ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def fail(self, error: Exception) -> None:
        """Fail every waiting caller and close: the reply stream is no longer trustworthy."""
        self.owner._forget(self)
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)
        if self.transport is not None:
            self.transport.close()


def _expire(protocol: _Protocol, future: asyncio.Future[list[Any]], timeout: float,
            received_before: int) -> None:
    """Fail one caller whose replies did not come in time; the connection only if it went silent.

    The caller's waiter stays queued, so the replies still owed to it are
    matched to it and dropped, and every later caller still gets its own.
    """
    if future.done():
        return
    future.set_exception(redis_errors.TimeoutError(f"no reply from Redis within {timeout:g} s"))
    if protocol.received == received_before:
        protocol.fail(redis_errors.TimeoutError(
            f"Redis sent nothing for {timeout:g} s while replies were owed"))


class MultiplexedConnection:
    """A lazily (re)connected, pipelined connection to a ``redis://`` URL."""

    def __init__(self, url: str, *, timeout: float) -> None:
        options = parse_url(url)  # type: ignore[no-untyped-call]
        self.host: str = options.get("host", "127.0.0.1")
        self.port: int = int(options.get("port", 6379))
        self.timeout = timeout
        self._setup: list[tuple[Any, ...]] = []
        if options.get("password") is not None:
            user = options.get("username")
            self._setup.append(("AUTH", user, options["password"]) if user else
                               ("AUTH", options["password"]))
        if int(options.get("db", 0) or 0):
            self._setup.append(("SELECT", int(options["db"])))
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    @staticmethod
    def supports(url: str) -> bool:
        """TCP without TLS; other URLs (rediss://, unix://) stay on redis-py."""
        return url.startswith("redis://")

    async def execute(self, commands: Sequence[Sequence[Any]], *, extra_time: float = 0.0,
                      on_written: Callable[[], None] | None = None) -> list[Any]:
        """Send the commands in one write; their replies in order, errors as exception objects.

        ``extra_time``: seconds the commands may legitimately take on top of
        the timeout (a blocking command's own timeout). ``on_written`` is
        called once the commands are written, before their replies come:
        every later call's commands reach Redis after them.
        """
        if not commands:
            return []
        protocol = self._protocol or await self._connect()
        return await self._send(protocol, commands, self.timeout + extra_time, on_written)

    async def _send(self, protocol: _Protocol, commands: Sequence[Sequence[Any]],
                    timeout: float, on_written: Callable[[], None] | None = None) -> list[Any]:
        assert protocol.transport is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        protocol.waiters.append(_Waiter(future, len(commands)))
        protocol.transport.write(b"".join([hiredis.pack_command(tuple(command)) for command in commands]))
        if on_written is not None:
            on_written()
        # A timer rather than asyncio.timeout: this is the hot path, and a
        # cancelled caller's future just drops its replies when they come.
        timer = loop.call_later(timeout, _expire, protocol, future, timeout, protocol.received)
        try:
            return await future
        finally:
            timer.cancel()

    async def _connect(self) -> _Protocol:
        # Concurrent callers share one connection attempt.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(self), self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise redis_errors.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        if self._setup:
            for reply in await self._send(protocol, self._setup, self.timeout):
                if isinstance(reply, Exception):
                    protocol.fail(redis_errors.ConnectionError(str(reply)))
                    raise redis_errors.AuthenticationError(str(reply))
        self._protocol = protocol
        return protocol

    def _forget(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    def close(self) -> None:
        if self._protocol is not None:
            protocol = self._protocol
            protocol.fail(redis_errors.ConnectionError("closed"))


class BlockingPool:
    """Connections for blocking commands (XREAD BLOCK), each used by one caller at a time.

    A blocked connection cannot be shared, so each wait takes an idle
    connection or opens one, and gives it back when its command returned.
    A wait that is cancelled or fails closes its connection instead: Redis
    may still be blocking on it.
    """

    def __init__(self, url: str, *, timeout: float, max_idle: int = 64,
                 max_connections: int = 1024) -> None:
        self.url = url
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[MultiplexedConnection] = []
        # As many waits at once as redis-py's blocking pool allowed; more wait their turn.
        self._slots = asyncio.Semaphore(max_connections)

    async def execute(self, command: Sequence[Any], *, block_seconds: float) -> Any:
        async with self._slots:
            return await self._execute(command, block_seconds)

    async def _execute(self, command: Sequence[Any], block_seconds: float) -> Any:
        connection = self._idle.pop() if self._idle else MultiplexedConnection(
            self.url, timeout=self.timeout)
        try:
            (reply,) = await connection.execute([command], extra_time=block_seconds)
        except BaseException:
            connection.close()
            raise
        if len(self._idle) < self.max_idle:
            self._idle.append(connection)
        else:
            connection.close()
        return reply

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
