"""A valkey-server and a gateway started by ``bench --start-gateway``.

Both are child processes bound to free loopback ports, logging into the
report directory, and are stopped when the run ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from ..embedded import find_server_binary, free_port, server_command, wait_for_port, wait_for_redis


class LocalServers:
    """valkey-server + gateway on loopback, for one bench run."""

    def __init__(self, work_dir: Path, *, appendfsync: str = "everysec",
                 gateway_args: list[str] | None = None) -> None:
        self.work_dir = work_dir
        self.appendfsync = appendfsync
        self.gateway_args = gateway_args or []
        self.redis_port = free_port()
        self.gateway_port = free_port()
        self.binary = find_server_binary()
        self.redis_process: subprocess.Popen[bytes] | None = None
        self.gateway_process: subprocess.Popen[bytes] | None = None
        self._log: object = None

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    def server_version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    def start(self) -> LocalServers:
        data = self.work_dir / "redis-data"
        data.mkdir(parents=True, exist_ok=True)
        self.redis_process = subprocess.Popen(
            server_command(self.binary, self.redis_port, data, self.appendfsync),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_redis(self.redis_port, self.redis_process)
        log = open(self.work_dir / "gateway.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.gateway_process = subprocess.Popen(
            [sys.executable, "-m", "kafka_redis_gateway.gateway", "--listen", self.bootstrap,
             "--redis-url", self.redis_url, "--group-initial-rebalance-delay-ms", "0",
             "--log-level", "WARNING", *self.gateway_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        wait_for_port(self.gateway_port, self.gateway_process)
        return self

    def stop(self) -> None:
        for process in (self.gateway_process, self.redis_process):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.gateway_process = self.redis_process = None
        if hasattr(self._log, "close"):
            self._log.close()

    def __enter__(self) -> LocalServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
