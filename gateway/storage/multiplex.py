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
Batches sent with ``replay=True`` (an idempotent producer's appends) are
not failed with a dead connection but sent again first on the next one,
so that their callers learn whether they ran (see ``execute``).
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

from .redis_tls import client_context

# Pause between attempts to reconnect for commands owed a replay.
RECONNECT_PAUSE = 0.1


class _Waiter:
    """One caller's batch: the replies it still expects and where they go.

    ``commands`` is kept only for a batch that may be replayed (see
    MultiplexedConnection.execute); ``protocol`` is the connection it is
    queued on, None while it waits for a new one.
    """

    __slots__ = ("commands", "expected", "future", "generation", "protocol", "replies", "settling")

    def __init__(self, future: asyncio.Future[list[Any]], expected: int, protocol: _Protocol,
                 commands: Sequence[Sequence[Any]] | None) -> None:
        self.future = future
        self.expected = expected
        self.replies: list[Any] = []
        self.protocol: _Protocol | None = protocol
        self.commands = commands
        # Whether its one extra timeout to settle (replayable batches) has begun;
        # timers of older generations are void.
        self.settling = False
        self.generation = 0


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
        lost = redis_errors.ConnectionError(f"connection to Redis lost: {exc or 'closed'}")
        lost.__cause__ = exc  # a TLS alert (a client certificate Redis refused) stays findable
        self.fail(lost)

    def fail(self, error: Exception) -> None:
        """Fail the waiting callers and close: the reply stream is no longer trustworthy.

        Replayable batches are not failed but handed back to the owner, in
        order, to be sent again first on the next connection.
        """
        self.owner._forget(self)
        replays = []
        while self.waiters:
            waiter = self.waiters.popleft()
            if waiter.future.done():
                continue
            if waiter.commands is not None and not self.owner.closed:
                replays.append(waiter)
            else:
                waiter.future.set_exception(error)
        if self.transport is not None:
            self.transport.close()
        if replays:
            self.owner._replay(replays)


def _arm(waiter: _Waiter, timeout: float) -> None:
    waiter.generation += 1
    received = waiter.protocol.received if waiter.protocol is not None else -1
    asyncio.get_running_loop().call_later(timeout, _expire, waiter, waiter.generation, timeout, received)


def _expire(waiter: _Waiter, generation: int, timeout: float, received_before: int) -> None:
    """Fail one caller whose replies did not come in time; the connection only if it went silent.

    The caller's waiter stays queued, so the replies still owed to it are
    matched to it and dropped, and every later caller still gets its own.
    A replayable batch gets one more timeout first: its replies, or its
    replay's, settle whether it ran.
    """
    if waiter.future.done() or generation != waiter.generation:
        return
    protocol = waiter.protocol
    if waiter.commands is not None and not waiter.settling:
        waiter.settling = True
        _arm(waiter, timeout)
    else:
        waiter.future.set_exception(redis_errors.TimeoutError(f"no reply from Redis within {timeout:g} s"))
    if protocol is not None and protocol.received == received_before:
        protocol.fail(redis_errors.TimeoutError(
            f"Redis sent nothing for {timeout:g} s while replies were owed"))


class MultiplexedConnection:
    """A lazily (re)connected, pipelined connection to a ``redis://`` or ``rediss://`` URL."""

    def __init__(self, url: str, *, timeout: float) -> None:
        options = parse_url(url)  # type: ignore[no-untyped-call]
        self.host: str = options.get("host", "127.0.0.1")
        self.port: int = int(options.get("port", 6379))
        self.timeout = timeout
        # rediss://: TLS with the URL's settings (redis_tls.py), one context per URL.
        self._tls = client_context(url)
        self._setup: list[tuple[Any, ...]] = []
        if options.get("password") is not None:
            user = options.get("username")
            self._setup.append(("AUTH", user, options["password"]) if user else
                               ("AUTH", options["password"]))
        if int(options.get("db", 0) or 0):
            self._setup.append(("SELECT", int(options["db"])))
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        # Replayable batches whose connection died before all their replies
        # came, in the order first sent; the next connection sends them first.
        self._replays: collections.deque[_Waiter] = collections.deque()
        self._reconnecting: asyncio.Task[None] | None = None
        self.closed = False

    @staticmethod
    def supports(url: str) -> bool:
        """TCP, with TLS or without; unix:// URLs stay on redis-py."""
        return url.startswith(("redis://", "rediss://"))

    async def execute(self, commands: Sequence[Sequence[Any]], *, extra_time: float = 0.0,
                      on_written: Callable[[], None] | None = None, replay: bool = False) -> list[Any]:
        """Send the commands in one write; their replies in order, errors as exception objects.

        ``extra_time``: seconds the commands may legitimately take on top of
        the timeout (a blocking command's own timeout). ``on_written`` is
        called once the commands are written, before their replies come:
        every later call's commands reach Redis after them.

        ``replay``: the commands may run twice with the effect of once (an
        idempotent producer's appends), and the caller needs to know whether
        they ran. Then a connection that dies before their replies come does
        not fail them: they are sent again, in their first order and before
        any other command, on the next connection, and a timeout gives them
        one more timeout for their replies. Only when that runs out too does
        the caller get a TimeoutError.
        """
        if not commands:
            return []
        protocol = self._protocol or await self._connect()
        return await self._send(protocol, commands, self.timeout + extra_time, on_written,
                                commands if replay else None)

    async def _send(self, protocol: _Protocol, commands: Sequence[Sequence[Any]],
                    timeout: float, on_written: Callable[[], None] | None = None,
                    replayable: Sequence[Sequence[Any]] | None = None) -> list[Any]:
        assert protocol.transport is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        waiter = _Waiter(future, len(commands), protocol, replayable)
        protocol.waiters.append(waiter)
        protocol.transport.write(_packed(commands))
        if on_written is not None:
            on_written()
        # A timer rather than asyncio.timeout: this is the hot path, and a
        # cancelled caller's future just drops its replies when they come.
        timer = loop.call_later(timeout, _expire, waiter, 0, timeout, protocol.received)
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
                    lambda: _Protocol(self), self.host, self.port, **self._tls_arguments())
        except (OSError, TimeoutError) as exc:
            raise redis_errors.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        if self._setup:
            for reply in await self._send(protocol, self._setup, self.timeout):
                if isinstance(reply, Exception):
                    protocol.fail(redis_errors.ConnectionError(str(reply)))
                    raise redis_errors.AuthenticationError(str(reply))
        self._resend_replays(protocol)
        self._protocol = protocol
        return protocol

    def _tls_arguments(self) -> dict[str, Any]:
        if self._tls is None:
            return {}
        # The host is also the name the certificate must carry (ssl_check_hostname).
        return {"ssl": self._tls, "server_hostname": self.host, "ssl_handshake_timeout": self.timeout}

    def _resend_replays(self, protocol: _Protocol) -> None:
        """Queue and write the batches owed a replay, before any caller can write."""
        assert protocol.transport is not None
        while self._replays:
            waiter = self._replays.popleft()
            if waiter.future.done() or waiter.commands is None:
                continue  # its caller timed out meanwhile (or was cancelled)
            waiter.protocol, waiter.replies = protocol, []
            protocol.waiters.append(waiter)
            protocol.transport.write(_packed(waiter.commands))

    def _replay(self, waiters: list[_Waiter]) -> None:
        """Take back batches from a dead connection: they go first on the next one."""
        for waiter in waiters:
            waiter.protocol = None
            if not waiter.settling:
                waiter.settling = True
                _arm(waiter, self.timeout)
        self._replays.extend(waiters)
        if self._protocol is not None:
            self._resend_replays(self._protocol)
        elif self._reconnecting is None:
            self._reconnecting = asyncio.ensure_future(self._reconnect_for_replays())

    async def _reconnect_for_replays(self) -> None:
        # No caller may come along to reconnect: keep trying while a replay is still wanted.
        try:
            while any(not waiter.future.done() for waiter in self._replays) and not self.closed:
                try:
                    await self._connect()
                    return
                except redis_errors.ConnectionError:
                    await asyncio.sleep(RECONNECT_PAUSE)
        finally:
            self._reconnecting = None

    def _forget(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    def close(self) -> None:
        self.closed = True
        if self._protocol is not None:
            protocol = self._protocol
            protocol.fail(redis_errors.ConnectionError("closed"))
        while self._replays:
            waiter = self._replays.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(redis_errors.ConnectionError("closed"))
        if self._reconnecting is not None:
            self._reconnecting.cancel()


def _packed(commands: Sequence[Sequence[Any]]) -> bytes:
    return b"".join([hiredis.pack_command(tuple(command)) for command in commands])


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
