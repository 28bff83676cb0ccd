"""Redis time per script call of a seek into a region without index points.

    python benchmarks/seek_bench.py [--lua-dir DIR] [--entries N]

Starts a valkey-server on a free loopback port, XADDs N native entries
(no index points) of 64 KiB and of 1 MiB, and seeks into the middle of
them: read.lua (a fetch at that offset, one record) and commit_offset.lua
(an OffsetCommit there), each called until it stops answering "call
again", as the storage layer does. Valkey's SLOWLOG (threshold 0) gives
each call's duration. The scripts run with EVAL (the prelude and the body),
so ``--lua-dir`` can point at another version's lua/ directory (for
example one extracted with ``git archive``) to compare.

Figures move with machine load: compare rows of one run.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from kafka_redis_gateway.gateway.embedded import find_server_binary, free_port, server_command, wait_for_redis

LUA = Path(__file__).resolve().parent.parent / "gateway" / "storage" / "lua"


def source(lua_dir: Path, body: str) -> str:
    return (lua_dir / "stream_info.lua").read_text() + "\n" + (lua_dir / body).read_text()


def fill(client: redis.Redis, key: str, count: int, size: int) -> None:
    client.delete(key, key + ":idx", key + ":meta", key + ":commits")
    value = b"x" * size
    for first in range(0, count, 64):
        pipe = client.pipeline(transaction=False)
        for _ in range(first, min(first + 64, count)):
            pipe.xadd(key, {"value": value})
        pipe.execute()


def calls_until_answered(client: redis.Redis, script: str, keys: Sequence[str], args: Sequence[Any],
                         yielded: Any) -> list[int]:
    """Each call's duration in µs (SLOWLOG), calling until the reply is not a yield."""
    client.slowlog_reset()
    calls = 0
    while True:
        reply = client.eval(script, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
        calls += 1
        if not yielded(reply) or calls > 10_000:
            break
    logged = [entry for entry in client.slowlog_get(100_000) if entry["command"].startswith(b"EVAL")]
    assert len(logged) == calls, (len(logged), calls, client.slowlog_get(3))
    return [int(entry["duration"]) for entry in reversed(logged)]


def report(what: str, durations: list[int]) -> None:
    print(f"  {what:<28} {len(durations):>4} calls  max {max(durations) / 1000:8.1f} ms  "
          f"total {sum(durations) / 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lua-dir", type=Path, default=LUA, help="the lua/ directory to run")
    parser.add_argument("--entries", type=int, default=1024, help="entries per stream")
    args = parser.parse_args()
    read, commit = source(args.lua_dir, "read.lua"), source(args.lua_dir, "commit_offset.lua")
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        server = subprocess.Popen(server_command(find_server_binary(), port, Path(data), "everysec"),
                                  stdout=subprocess.DEVNULL)
        try:
            wait_for_redis(port, server)
            client = redis.Redis(port=port)
            client.config_set("slowlog-log-slower-than", 0)
            client.config_set("slowlog-max-len", 100_000)
            middle = args.entries // 2
            for size in (64 * 1024, 1024 * 1024):
                key = "kafka:{bench:0}"
                print(f"{args.entries} native entries of {size // 1024} KiB, seek to offset {middle}:")
                fill(client, key, args.entries, size)
                # Older read.lua took the index interval and a step limit as ARGV[4] and
                # ARGV[5]; the current one reads ARGV[4] as min_one ('1024' is not '1': off).
                durations = calls_until_answered(
                    client, read, [key, key + ":idx", key + ":meta"], [middle, 1, 2 * size, 1024, 64],
                    lambda reply: reply[0] == 2)
                report("read.lua (a fetch)", durations)
                client.delete(key + ":idx")
                durations = calls_until_answered(
                    client, commit, [key, key + ":idx", key + ":commits", key + ":meta"],
                    ["g", middle + 1, -1, 0, ""], lambda reply: isinstance(reply, list))
                report("commit_offset.lua (a commit)", durations)
                client.delete(key, key + ":idx", key + ":meta", key + ":commits")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
