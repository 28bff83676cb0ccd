"""The README's way to run: the gateway with its embedded Redis-compatible server.

No --redis-url: the gateway starts valkey-server under --data-dir, records
its URL there for `inspect` and `adopt`, keeps the data across a restart,
and stops the server with itself.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import redis

from tests.integration.test_confluent import Rec, produce_ok, read_to_end
from tests.servers import GatewayProcess


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
