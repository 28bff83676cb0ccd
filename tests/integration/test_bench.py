"""Smoke test of ``kafka-redis-gateway bench``: tiny workloads, report files with numbers.

No timing assertions: only that every step ran and reported figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

from kafka_redis_gateway.gateway.bench import main

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
