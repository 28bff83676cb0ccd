"""The README's way to run: the gateway with its embedded Redis-compatible server.

No --redis-url: the gateway starts valkey-server under --data-dir, records
its URL there for `inspect` and `adopt`, keeps the data across a restart,
and stops the server with itself, also when it is killed. The directory is
locked (one gateway per data directory), private and password-protected
(docs/operations.md#the-embedded-server).
"""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from kafka_redis_gateway.gateway.data_dir import process_gone

from tests.integration.test_confluent import Rec, produce_ok, read_to_end
from tests.servers import GatewayProcess, RedisServer

RECORDS = [Rec(0, b"k1", b"hello"), Rec(0, b"k2", b"world")]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafka_redis_gateway.gateway", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def refuses(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def test_embedded_server_lifecycle(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    gateway = GatewayProcess(None, data_dir=data_dir, log_path=tmp_path / "gateway.log").start()
    try:
        url = (data_dir / "redis-url").read_text().strip()
        produce_ok(gateway.bootstrap, "greetings", [Rec(0, b"k1", b"hello"), Rec(0, b"k2", b"world")])
        client = redis.Redis.from_url(url)
        client.xadd("payments", {"payment_id": "p1"})
        client.close()
        adopted = cli("adopt", "payments", "payments", "--data-dir", str(data_dir))
        assert adopted.returncode == 0, adopted.stderr
        shown = cli("inspect", "--data-dir", str(data_dir))
        assert shown.returncode == 0, shown.stderr
        assert "topic greetings (1 partitions)" in shown.stdout
        assert "0: kafka:{greetings:0} length 2 offsets 0..2" in shown.stdout
        assert "0: payments (adopted) length 1 offsets 0..1" in shown.stdout
    finally:
        assert gateway.stop() == 0
    # The server stopped with the gateway and its URL file is gone.
    assert not (data_dir / "redis-url").exists()
    assert refuses(url)
    assert cli("inspect", "--data-dir", str(data_dir)).returncode == 2

    # Started again on the same data directory, the records are still there.
    gateway = GatewayProcess(None, data_dir=data_dir, log_path=tmp_path / "gateway.log").start()
    try:
        found = read_to_end(gateway.bootstrap, "greetings")[0]
        assert [(m.offset(), m.key(), m.value()) for m in found] == [(0, b"k1", b"hello"),
                                                                     (1, b"k2", b"world")]
    finally:
        gateway.stop()


def start_gateway(tmp_path: Path, data_dir: Path) -> GatewayProcess:
    return GatewayProcess(None, data_dir=data_dir, log_path=tmp_path / "gateway.log").start()


def server_pid(gateway: GatewayProcess) -> int:
    """The gateway's embedded server: its one child process (Linux /proc)."""
    assert gateway.process is not None
    pid = gateway.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def eventually(condition: Callable[[], bool], within: float = 15.0) -> bool:
    """Poll for a state another process reaches on its own (a server exiting)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def records_of(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes]]:
    return [(m.offset(), m.key(), m.value()) for m in read_to_end(bootstrap, topic)[0]]


def test_second_gateway_on_the_data_dir_fails_naming_the_first(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_gateway(tmp_path, data_dir)
    try:
        assert first.process is not None
        url = (data_dir / "redis-url").read_text()
        pid = server_pid(first)
        # It exits at once rather than serve (60 s is only the test's guard).
        second = subprocess.run(GatewayProcess(None, data_dir=data_dir).command(),
                                capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 1, second.stderr
        assert f"pid {first.process.pid} listening on PLAINTEXT://{first.bootstrap}" in second.stderr
        assert "Traceback" not in second.stderr
        # It touched nothing: the first gateway's server and URL file are as they were.
        assert (data_dir / "redis-url").read_text() == url
        assert server_pid(first) == pid
        assert int((data_dir / "valkey.pid").read_text()) == pid
        produce_ok(first.bootstrap, "greetings", RECORDS)
    finally:
        assert first.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_the_server_does_not_outlive_the_gateway(tmp_path: Path, sig: int) -> None:
    data_dir = tmp_path / "data"
    gateway = start_gateway(tmp_path, data_dir)
    pid = server_pid(gateway)
    try:
        produce_ok(gateway.bootstrap, "greetings", RECORDS, acks="all")
    finally:
        gateway.stop(sig)
    assert eventually(lambda: process_gone(pid)), f"valkey-server {pid} still runs after {sig!r}"

    gateway = start_gateway(tmp_path, data_dir)
    try:
        assert records_of(gateway.bootstrap, "greetings") == [(0, b"k1", b"hello"), (1, b"k2", b"world")]
    finally:
        assert gateway.stop() == 0


def test_a_leftover_server_is_stopped_cleanly_before_the_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert start_gateway(tmp_path, data_dir).stop() == 0
    # A server of this data directory still running without its gateway (as
    # where no parent-death signal exists): it holds a write that only its
    # clean shutdown puts into the append-only file (fsync everysec).
    leftover = RedisServer(data_dir, extra_args=["--pidfile", str(data_dir / "valkey.pid")]).start()
    assert leftover.process is not None
    client = leftover.client()
    client.set("written-by-the-leftover", "1")
    client.close()

    gateway = start_gateway(tmp_path, data_dir)
    try:
        assert leftover.process.wait(timeout=30) == 0
        ours = redis.Redis.from_url((data_dir / "redis-url").read_text().strip())
        assert ours.get("written-by-the-leftover") == b"1"
        ours.close()
    finally:
        assert gateway.stop() == 0


def test_the_data_is_private_and_the_server_needs_its_password(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)  # made before, world-readable
    data_dir.chmod(0o755)
    gateway = start_gateway(tmp_path, data_dir)
    try:
        produce_ok(gateway.bootstrap, "greetings", RECORDS)
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        files = [path for path in data_dir.rglob("*") if path.is_file()]
        assert {"redis-url", "password", "valkey.conf", "gateway.lock"} <= {f.name for f in files}
        assert any(f.suffix == ".aof" for f in files)
        open_to_others = {str(f.relative_to(data_dir)): oct(f.stat().st_mode)
                          for f in [data_dir / "appendonlydir", *files]
                          if f.stat().st_mode & 0o077}
        assert open_to_others == {}

        password = (data_dir / "password").read_text().strip()
        url = (data_dir / "redis-url").read_text().strip()
        assert url.startswith(f"redis://:{password}@127.0.0.1:")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        anonymous = redis.Redis(host="127.0.0.1", port=port)
        with pytest.raises(redis.RedisError, match=r"NOAUTH|authenticated"):
            anonymous.xlen("kafka:{greetings:0}")
        anonymous.close()
        # Nor does the password show on the server's command line.
        assert password.encode() not in Path(f"/proc/{server_pid(gateway)}/cmdline").read_bytes()
    finally:
        assert gateway.stop() == 0
