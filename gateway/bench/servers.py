"""The servers ``bench`` starts: a valkey-server and a gateway (``--start-gateway``)
and an Apache Kafka broker (``--start-kafka``).

All are child processes bound to free loopback ports, logging into the
run's temporary directory, and are stopped when the run ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

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
        self._log: BinaryIO | None = None

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
        self.start_redis()
        self.start_gateway()
        return self

    def start_redis(self) -> None:
        """valkey-server on its port and data directory (a restart reloads its AOF)."""
        data = self.work_dir / "redis-data"
        data.mkdir(parents=True, exist_ok=True)
        self.redis_process = subprocess.Popen(
            server_command(self.binary, self.redis_port, data, self.appendfsync),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_redis(self.redis_port, self.redis_process)

    def start_gateway(self) -> None:
        if self._log is None:
            self._log = open(self.work_dir / "gateway.log", "ab")  # noqa: SIM115 - closed in stop()
        self.gateway_process = subprocess.Popen(
            [sys.executable, "-m", "kafka_redis_gateway.gateway", "--listen", self.bootstrap,
             "--redis-url", self.redis_url, "--group-initial-rebalance-delay-ms", "0",
             "--log-level", "WARNING", *self.gateway_args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )
        wait_for_port(self.gateway_port, self.gateway_process)

    def kill_gateway(self) -> None:
        _kill(self.gateway_process)

    def kill_redis(self) -> None:
        _kill(self.redis_process)

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
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL, as a crash, and reap it."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


KAFKA_HOME = Path("/opt/kafka-broker")


def kafka_available(home: Path = KAFKA_HOME) -> bool:
    """Whether ../shared/kafka-broker/build.sh has built a broker here."""
    return (home / "bin" / "run-broker.sh").is_file()


class KafkaBroker:
    """A single-node Apache Kafka (KRaft) from /opt/kafka-broker on free loopback ports.

    Its data directory is ``work_dir`` (created, and removed by ``stop``
    when ``remove_data`` is set). The broker runs in a process group of its
    own so that stopping it also ends the one-off format step's JVM.
    """

    def __init__(self, work_dir: Path, *, home: Path = KAFKA_HOME, configs: list[str] | None = None,
                 remove_data: bool = True, heap: str = "-Xmx512m -Xms512m") -> None:
        self.work_dir = work_dir
        self.home = home
        self.configs = configs or []
        self.remove_data = remove_data
        self.heap = heap
        self.port = free_port()
        self.controller_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        """Kafka's log.dirs: one directory per partition, ``<topic>-<partition>``."""
        return self.work_dir / "data"

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = open(self.work_dir / "broker-stdout.log", "ab")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, CONTROLLER_PORT=str(self.controller_port), KAFKA_HEAP_OPTS=self.heap,
                   KAFKA_LOG_LEVEL="WARN")
        self.process = subprocess.Popen(
            [str(self.home / "bin" / "run-broker.sh"), str(self.port), str(self.work_dir), *self.configs],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env, start_new_session=True,
        )
        wait_for_port(self.port, self.process, timeout=timeout)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until the broker answers Metadata with itself in it (it listens a little before)."""
        from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "reconnect.backoff.max.ms": 100})
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Kafka broker exited with {self.process.returncode}; "
                                   f"see {self.work_dir / 'broker-stdout.log'}")
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception:  # not ready yet; retried until the deadline
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, as a crash: the page cache keeps what was written (no machine crash)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.remove_data:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def version(self) -> str:
        """Apache Kafka's version, from the name of its broker (or clients) jar."""
        for prefix in ("kafka-broker-", "kafka-clients-"):
            for jar in sorted((self.home / "libs").glob(f"{prefix}[0-9]*.jar")):
                return f"Apache Kafka {jar.name[len(prefix):-len('.jar')]}"
        return "Apache Kafka"

    def log_bytes(self, topic: str, partitions: int) -> int:
        """Bytes of the topic's log segments (``*.log``: the record batches as stored).

        Index files are left out: Kafka preallocates the active segment's
        offset and time indexes (10 MB each, sparse) and trims them on roll.
        """
        total = 0
        for partition in range(partitions):
            for segment in (self.data_dir / f"{topic}-{partition}").glob("*.log"):
                total += segment.stat().st_size
        return total

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
