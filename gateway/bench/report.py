"""The report: results.json (raw numbers), report.md (tables) and PNG plots."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


COLUMNS: dict[str, list[tuple[str, str]]] = {
    "produce": [("producers", "producers"), ("partitions", "partitions"),
                ("records_per_s", "records/s"), ("mb_per_s", "MB/s"), ("records", "records"),
                ("seconds", "s"), ("bytes_per_record", "Redis bytes/record"),
                ("disk_bytes_per_record", "Kafka log bytes/record")],
    "consume": [("partitions", "partitions"), ("records_per_s", "records/s"), ("mb_per_s", "MB/s"),
                ("records", "records"), ("seconds", "s")],
    "group": [("partitions", "partitions"), ("records_per_s", "records/s"), ("mb_per_s", "MB/s"),
              ("join_s", "join s"),
              ("records", "records"), ("seconds", "s")],
    "rebalance": [("partitions", "partitions"), ("join_s", "first join s"),
                  ("rebalance_s", "second member s")],
    "recovery": [("killed", "killed"), ("records_before", "records before"),
                 ("records_after", "records after"), ("restart_s", "restarted s"),
                 ("recovery_s", "first acked write s"), ("all_records_s", "all records back s")],
    "latency": [("offered_per_s", "offered/s"), ("achieved_send_per_s", "sent/s"), ("received", "received"),
                ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("p999_ms", "p99.9 ms"), ("max_ms", "max ms"),
                ("max_at_s", "max at s")],
}


def markdown(run: dict[str, Any]) -> str:
    lines = [f"# bench report ({run['started']})", "", f"Command: `{run['command']}`", ""]
    for key, value in run["environment"].items():
        lines.append(f"- {key}: {value}")
    lines.append("")
    by_workload: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in run["results"]:
        by_workload[row["workload"]].append(row)
    for workload, rows in by_workload.items():
        columns = COLUMNS.get(workload, [])
        lines += [f"## {workload}", ""]
        header = ["target", "record size", *[title for _, title in columns], "note"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in rows:
            cells = [row["target"], _fmt(row.get("record_size"))]
            cells += [_fmt(row.get(key)) for key, _ in columns]
            cells.append(row.get("error") or row.get("note", ""))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plots(run: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    results = [row for row in run["results"] if "error" not in row]
    throughput = [row for row in results if row["workload"] in ("produce", "consume")]
    if throughput:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=80)
        for ax, workload in zip(axes, ("produce", "consume"), strict=True):
            series: dict[str, list[tuple[int, float]]] = defaultdict(list)
            for row in throughput:
                if row["workload"] == workload and row.get("records_per_s"):
                    series[_series(row)].append((row["record_size"], row["records_per_s"]))
            for target, points in sorted(series.items()):
                points.sort()
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=target)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("record size (bytes)")
            ax.set_ylabel("records/s")
            ax.set_title(workload)
            ax.grid(True, which="both", alpha=0.3)
            if series:
                ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / "throughput.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    latency = [row for row in results if row["workload"] == "latency" and row.get("received")]
    if latency:
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=80)
        styles = {"p50_ms": "-", "p99_ms": "--", "p999_ms": ":"}
        targets = sorted({row["target"] for row in latency})
        for index, target in enumerate(targets):
            rows = sorted((r for r in latency if r["target"] == target), key=lambda r: r["offered_per_s"])
            for key, style in styles.items():
                ax.plot([r["offered_per_s"] for r in rows], [r[key] for r in rows], style, marker="o",
                        color=f"C{index}", label=f"{target} {key[:-3]}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered rate (records/s)")
        ax.set_ylabel("end-to-end latency (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / "latency.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    extra = storage_and_recovery(results, out)
    return [*written, extra] if extra else written


def _series(row: dict[str, Any]) -> str:
    """The target, and its layout when it is not one producer into one partition."""
    partitions, producers = row.get("partitions", 1), row.get("producers", 1)
    if (partitions, producers) == (1, 1):
        return str(row["target"])
    return f"{row['target']} {partitions}p/{producers}prod" if row["workload"] == "produce" else (
        f"{row['target']} {partitions}p")


def storage_and_recovery(results: list[dict[str, Any]], out: Path) -> Path | None:
    """Bars: stored bytes per record (Redis memory, Kafka log on disk) and seconds back after kill -9."""
    import matplotlib.pyplot as plt

    stored = [(f"{row['target']} {row['record_size']} B", row.get("bytes_per_record")
               or row.get("disk_bytes_per_record"), row["record_size"])
              for row in results if row["workload"] == "produce"
              and row.get("partitions", 1) == 1 and row.get("producers", 1) == 1
              and (row.get("bytes_per_record") or row.get("disk_bytes_per_record"))]
    recovered = [(f"{row['target']} ({row['killed']} killed)", row["recovery_s"])
                 for row in results if row["workload"] == "recovery" and row.get("recovery_s")]
    if not (stored or recovered):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    if stored:
        labels = [label for label, _, _ in stored]
        axes[0].barh(labels, [value / size for _, value, size in stored])
        axes[0].set_xlabel("stored bytes per record / record size")
        axes[0].set_title("Redis memory or Kafka log, per record", fontsize=9)
        axes[0].tick_params(labelsize=7)
    if recovered:
        axes[1].barh([label for label, _ in recovered], [value for _, value in recovered])
        axes[1].set_xlabel("s from kill -9 to the first acknowledged write")
        axes[1].set_title("recovery", fontsize=9)
        axes[1].tick_params(labelsize=7)
    fig.tight_layout()
    path = out / "storage_recovery.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def write(run: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(run, indent=2, default=str) + "\n")
    md_path = out / "report.md"
    md_path.write_text(markdown(run) + "\n")
    return [md_path, json_path, *plots(run, out)]
