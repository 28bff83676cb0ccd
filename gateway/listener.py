"""Accepting client connections: an accept loop of the gateway's own.

Neither event loop's server handles running out of file descriptors well:
uvloop's (libuv's) meets EMFILE/ENFILE by accepting and at once closing
every waiting connection, and tells nobody; asyncio's logs a traceback
each second. Here a failed accept is logged (rate-limited, with how many
connections are open) and accepting pauses briefly, doubling up to a
second, while the kernel's backlog holds the waiting clients: they are
served once descriptors free up instead of being dropped, and the loop
does not spin.

A connection counts against --max-connections from the moment it is
accepted, TLS handshake included: one over the limit is closed before any
handshake work is spent on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import socket
import ssl
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from .logs import RateLimitedLog

OnConnection = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[object, object, None]]
# Whether one more connection may be taken now; else told the refused peer.
Admit = Callable[[], bool]
OnRefused = Callable[[str], None]

# accept() failures that mean "no resources now", as asyncio's own server treats them.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_FIRST_PAUSE = 0.05
_LONGEST_PAUSE = 1.0
_BACKLOG = 1024


class Listener:
    def __init__(self, host: str, port: int, on_connection: OnConnection,
                 client_log: RateLimitedLog, open_connections: Callable[[], int],
                 admit: Admit, on_refused: OnRefused, tls: Tls | None = None) -> None:
        self._host = host
        self._tls = tls
        self._port = port
        self._on_connection = on_connection
        self._client_log = client_log
        self._open_connections = open_connections
        self._admit = admit
        self._on_refused = on_refused
        # Accepted connections still in their TLS handshake.
        self.handshaking = 0
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        # Connection tasks, held until they finish (the loop keeps only weak references).
        self._handlers: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._sockets = _bind(self._host, self._port)
        self._accepting = [asyncio.create_task(self._accept_forever(sock)) for sock in self._sockets]

    @property
    def port(self) -> int:
        port: int = self._sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop accepting; connections already accepted go on."""
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self._sockets:
            sock.close()

    async def _accept_forever(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        pause = _FIRST_PAUSE
        while True:
            try:
                client, _ = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # the client gave up before it was accepted (ECONNABORTED, ...)
                self._client_log.warning(
                    "accept", "cannot accept connections: %s (%d client connections open); "
                    "pausing accepts for %g s", exc, self._open_connections(), pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
                continue
            pause = _FIRST_PAUSE
            await self._serve(loop, client)

    async def _serve(self, loop: asyncio.AbstractEventLoop, client: socket.socket) -> None:
        if not self._admit():
            self._on_refused(_peer(client))
            _reset(client)  # nothing was read or written; no need to linger
            return
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # In the connection's own task: a TLS handshake waits on the client,
        # and must not hold up accepting the next one.
        task = asyncio.create_task(self._connect(loop, client))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _connect(self, loop: asyncio.AbstractEventLoop, client: socket.socket) -> None:
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        tls: dict[str, Any] = {}
        peer = _peer(client)  # a client that fails the handshake may be gone by then
        if self._tls is not None:
            tls = {"ssl": self._tls.context(), "ssl_handshake_timeout": self._tls.handshake_timeout}
        self.handshaking += 1
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, client, **tls)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            if self._tls is not None:
                self._client_log.warning("tls_handshake", "TLS handshake with %s failed: %s",
                                         peer, str(exc) or type(exc).__name__)
            client.close()
            return
        finally:
            self.handshaking -= 1
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._on_connection(reader, writer)


@dataclass(frozen=True, slots=True)
class Tls:
    """A TLS listener's current server context, and how long a handshake may take."""

    context: Callable[[], ssl.SSLContext]
    handshake_timeout: float


def _peer(client: socket.socket) -> str:
    try:
        peer = client.getpeername()
    except OSError:
        return "a client that left"
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def _reset(client: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as transport.abort() does."""
    with contextlib.suppress(OSError):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def _bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address of ``host``, as asyncio.start_server binds them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


# Descriptors besides client connections: Redis connections, the metrics
# server, log and data files.
_OTHER_FILES = 256


def fit_file_limit(max_connections: int) -> str | None:
    """Raise the soft open-file limit so --max-connections fit, up to the hard
    limit; a warning when even that is too low, else None."""
    wanted = max_connections + _OTHER_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft != resource.RLIM_INFINITY and soft < wanted:
        return (f"the open-file limit ({soft}) is below --max-connections ({max_connections}) "
                f"plus {_OTHER_FILES}: accepting will fail before the connection limit is reached "
                "(raise it with ulimit -n or LimitNOFILE=, or lower --max-connections)")
    return None
