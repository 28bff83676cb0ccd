"""Smoke test of ``kafka-redis-gateway bench``: tiny workloads, report files with numbers.

No timing assertions: only that every step ran and reported figures.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

from kafka_redis_gateway.gateway.bench import main
from kafka_redis_gateway.gateway.bench.servers import kafka_available

from tests.servers import GatewayProcess, RedisServer


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_bench_against_test_gateway(gateway: GatewayProcess, redis_server: RedisServer,
                                    tmp_path: Path) -> None:
    out = tmp_path / "report"
    code = main([
        "--kafka", f"gateway={gateway.bootstrap}", "--redis", f"redis-py={redis_server.url}",
        "--workloads", "produce,consume,group,rebalance,latency", "--record-sizes", "100,1000",
        "--count", "300", "--rates", "200", "--duration", "1", "--step-timeout", "60",
        "--out", str(out), "--no-progress",
    ])
    assert code == 0
    for name in ("report.md", "results.json", "throughput.png", "latency.png"):
        assert (out / name).stat().st_size > 0, name
    run = json.loads((out / "results.json").read_text())
    rows = run["results"]
    errors = [row for row in rows if "error" in row]
    assert not errors, errors
    seen = {(row["workload"], row["target"]) for row in rows}
    for workload in ("produce", "consume", "group", "latency"):
        assert {(workload, "gateway"), (workload, "redis-py")} <= seen
    assert ("rebalance", "gateway") in seen
    for row in rows:
        if row["workload"] == "rebalance":
            if row["target"] == "gateway":
                assert _number(row["join_s"]) and _number(row["rebalance_s"])
        elif row["workload"] == "latency":
            assert row["received"] == 200
            assert all(_number(row[key]) for key in ("p50_ms", "p99_ms", "p999_ms", "max_ms"))
        else:
            assert row["records"] == 300
            assert _number(row["records_per_s"]) and row["records_per_s"] > 0
    report = (out / "report.md").read_text()
    assert "| gateway | 100 |" in report and "| redis-py | 100 |" in report


def test_several_producers_share_the_records(gateway: GatewayProcess, redis_server: RedisServer,
                                             tmp_path: Path) -> None:
    # 301 records over 3 producers and 2 partitions: every record is sent
    # exactly once (consume reads back exactly the count, or times out).
    out = tmp_path / "multi"
    code = main([
        "--kafka", f"gateway={gateway.bootstrap}", "--redis", f"redis-py={redis_server.url}",
        "--workloads", "produce,consume", "--record-sizes", "100", "--count", "301",
        "--producers", "3", "--partitions", "2", "--step-timeout", "60", "--out", str(out),
        "--no-progress",
    ])
    assert code == 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert not [row for row in rows if "error" in row]
    produced = [row for row in rows if row["workload"] == "produce"]
    assert {(row["target"], row["producers"], row["partitions"]) for row in produced} == {
        ("gateway", 3, 2), ("redis-py", 3, 2)}
    assert all(row["records"] == 301 for row in rows)


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def test_recovery_after_kill_9_of_the_gateway_and_of_redis(tmp_path: Path) -> None:
    out = tmp_path / "recovery"
    code = main(["--start-gateway", "--workloads", "produce,recovery", "--record-sizes", "100",
                 "--count", "500", "--warmup", "0", "--out", str(out), "--no-progress"])
    assert code == 0
    rows = [row for row in json.loads((out / "results.json").read_text())["results"]
            if row["workload"] == "recovery"]
    assert [(row["target"], row["killed"]) for row in rows] == [
        ("gateway", "gateway"), ("gateway", "redis"), ("redis-py", "redis")]
    for row in rows:
        assert "error" not in row, row
        assert row["records_before"] == row["records_after"] == 500
        assert _number(row["recovery_s"]) and row["recovery_s"] >= row["restart_s"] > 0
        assert _number(row["all_records_s"])
    assert (out / "storage_recovery.png").stat().st_size > 0


@pytest.mark.skipif(not kafka_available(), reason="no Apache Kafka broker at /opt/kafka-broker")
def test_start_kafka_beside_the_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "report"
    code = main(["--start-gateway", "--start-kafka", "--workloads", "produce,consume,rebalance,recovery",
                 "--record-sizes", "100", "--count", "500", "--warmup", "100", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    run = json.loads((out / "results.json").read_text())
    rows = run["results"]
    assert not [row for row in rows if "error" in row], rows
    kafka = {row["workload"]: row for row in rows if row["target"] == "kafka"}
    assert kafka["produce"]["records"] == kafka["consume"]["records"] == 500
    # 500 records of 100 bytes in record batches: at least the values, and not wildly more.
    assert 100 <= kafka["produce"]["disk_bytes_per_record"] < 1000
    assert _number(kafka["rebalance"]["rebalance_s"])
    assert kafka["recovery"]["records_before"] == kafka["recovery"]["records_after"] == 500
    assert _number(kafka["recovery"]["all_records_s"])
    assert "Apache Kafka" in run["environment"]["kafka broker"]
    # The broker is stopped and its data directory removed.
    assert not _listening(run["environment"]["kafka bootstrap"])
    assert list(scratch.iterdir()) == []


def test_cluster_bench_runs_one_two_and_three_gateways_and_the_anchor() -> None:
    """benchmarks/cluster_bench.py gateways, tiny: a row per gateway count and the redis-py anchor."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "cluster_bench.py"), "gateways",
                           "--records", "3000", "--rounds", "1"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("round 1")]
    assert [row.split("produce")[0].split(maxsplit=2)[2].strip() for row in rows] == [
        "1 gateway", "2 gateways", "3 gateways", "redis-py (anchor)"]
    assert all(re.search(r"produce +[\d,]+ +consume +[\d,]+", row) for row in rows), rows
