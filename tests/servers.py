"""Real servers for the tests: a Redis-compatible server and the gateway.

Each runs as a child process on a free loopback port and is stopped by the
test that started it; nothing relies on a service that happens to be running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka_redis_gateway.gateway.embedded import (
    find_server_binary,
    free_port,
    server_command,
    wait_for_port,
    wait_for_redis,
)

from tests.tls_support import Certificates, redis_tls_args, tls_server_binary


def tls_url(port: int, certificates: Certificates, *, ca: Path | None = None,
            client_certificate: bool = True) -> str:
    """A rediss:// URL for the gateway: Redis's CA (``ca`` instead, to test a wrong one) and
    the client certificate Redis asks for (left off with ``client_certificate=False``)."""
    query = f"ssl_ca_certs={ca or certificates.ca}"
    if client_certificate:
        query += f"&ssl_certfile={certificates.client_cert}&ssl_keyfile={certificates.client_key}"
    return f"rediss://127.0.0.1:{port}/0?{query}"


class RedisServer:
    def __init__(self, data_dir: Path, port: int | None = None, appendfsync: str = "everysec",
                 extra_args: list[str] | None = None, tls: Certificates | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendfsync = appendfsync
        # Appended to the server's command line, e.g. enable-debug-command for DEBUG SLEEP.
        self.extra_args = extra_args or []
        # TLS only on `port`, clients authenticated by certificate (tls-auth-clients yes);
        # needs a server built with TLS (tls_server_binary skips the test where there is none).
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls is None:
            return f"redis://127.0.0.1:{self.port}/0"
        return tls_url(self.port, self.tls)

    def start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = find_server_binary() if self.tls is None else tls_server_binary(self.tls)
        tls_args = [] if self.tls is None else redis_tls_args(self.tls, self.port)
        self.process = subprocess.Popen(
            [*server_command(binary, self.port, self.data_dir, self.appendfsync), *tls_args,
             *self.extra_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if self.tls is None:
            wait_for_redis(self.port, self.process)
        else:
            self._wait_for_tls_ping()
        return self

    def _wait_for_tls_ping(self, timeout: float = 30.0) -> None:
        wait_for_port(self.port, self.process, timeout)
        deadline = time.monotonic() + timeout
        client = self.client()
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:  # -LOADING, or not accepting yet
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def client(self) -> redis.Redis:
        if self.tls is None:
            return redis.Redis(host="127.0.0.1", port=self.port)
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=str(self.tls.ca),
                           ssl_certfile=str(self.tls.client_cert), ssl_keyfile=str(self.tls.client_key))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=15)
        self.process = None


def module_redis(name: str = "redis_server", **options: Any) -> Any:
    """A module-scoped fixture ``name``: a Redis of the module's own, stopped after its tests.

    Gateways on one Redis are one Kafka cluster, so a module whose gateways
    must not meet the session's (or another module's) takes one:
    ``redis_server = module_redis()``. ``options`` go to RedisServer.
    """
    @pytest.fixture(scope="module", name=name)
    def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
        server = RedisServer(tmp_path_factory.mktemp(name), **options).start()
        try:
            yield server
        finally:
            server.stop()

    return own_redis


# Kafka's 3 s initial rebalance delay only slows tests that start many
# groups; 300 ms still lets members started together form one generation.
# Gateways on one Redis are one cluster: a short broker lease keeps one that
# a test killed from showing in the next tests' Metadata for long.
# Flags in extra_args come later on the command line and win.
TEST_GATEWAY_ARGS = ["--group-initial-rebalance-delay-ms", "300", "--broker-lease-ms", "1500"]


class GatewayProcess:
    def __init__(self, redis_url: str | None, *, port: int | None = None,
                 data_dir: Path | None = None, extra_args: list[str] | None = None,
                 log_path: Path | None = None, listeners: str | None = None) -> None:
        self.redis_url = redis_url
        self.port = port or free_port()
        # --listeners NAME://HOST:PORT,... instead of --listen (the first is waited for and
        # is `port`: give its port as `port`).
        self.listeners = listeners
        self.data_dir = data_dir
        self.extra_args = extra_args or []
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: object = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        listen = ["--listen", self.bootstrap] if self.listeners is None else ["--listeners", self.listeners]
        command = [sys.executable, "-m", "kafka_redis_gateway.gateway",
                   *listen, *TEST_GATEWAY_ARGS, *self.extra_args]
        if self.redis_url:
            command += ["--redis-url", self.redis_url]
        if self.data_dir:
            command += ["--data-dir", str(self.data_dir)]
        return command

    def start(self) -> GatewayProcess:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._log_file = log
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=log, env=env)
        wait_for_port(self.port, self.process)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(sig)
            try:
                code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Fail the test, but leave no gateway running behind it.
                self.process.kill()
                self.process.wait()
                raise
        self.process = None
        if hasattr(self._log_file, "close"):
            self._log_file.close()  # type: ignore[union-attr]
        return code
