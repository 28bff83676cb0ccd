"""Redis time per cursor check with and without the leader-epoch check.

    python benchmarks/epoch_check_bench.py [--calls N] [--rounds R]

Starts a valkey-server on a free loopback port and loads one Functions
library holding cursor.lua twice: as it is, and with its leader-epoch lines
(one INFO replication and an HMGET of the meta hash, stream_info.lua's
leader_epochs) taken out. Each round pipelines N calls of either, alternating,
and reads Redis's CPU time per FCALL from INFO commandstats (reset before
each). Figures move with machine load: compare rows of one run, and prefer
the quietest rounds.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import redis
from kafka_redis_gateway.gateway.embedded import find_server_binary, free_port, server_command, wait_for_redis

LUA = Path(__file__).resolve().parent.parent / "gateway" / "storage" / "lua"


def without_epochs(body: str) -> str:
    """cursor.lua as it was before leader epochs: no lookup, nothing more in its replies."""
    body = re.sub(r"^local epochs = leader_epochs\(.*\)\n", "", body, flags=re.MULTILINE)
    return body.replace(", epochs}", "}")


def library() -> str:
    prelude, cursor = (LUA / "stream_info.lua").read_text(), (LUA / "cursor.lua").read_text()
    assert without_epochs(cursor) != cursor
    parts = ["#!lua name=epoch_bench", prelude]
    for name, body in (("with_epochs", cursor), ("without_epochs", without_epochs(cursor))):
        parts.append(f"redis.register_function{{function_name='{name}', "
                     f"callback=function(KEYS, ARGV)\n{body}\nend, flags={{'no-writes'}}}}")
    return "\n".join(parts)


def prepare(client: redis.Redis) -> bytes:
    """A 100-entry stream and its meta hash as the gateway leaves them; the ID of entry 49."""
    for _ in range(100):
        client.xadd("s", {"ts": "1", "value": "x" * 100})
    info = client.xinfo_stream("s")
    client.hset("m", mapping={"end_offset": 100, "length": 100, "first_id": info["first-entry"][0],
                              "last_id": info["last-generated-id"], "leader_epochs": "0:0,1:50",
                              "leader_replid": "other"})
    return bytes(client.xrange("s", count=50)[-1][0])


def per_call(client: redis.Redis, function: str, calls: int, after_id: bytes) -> float:
    client.config_resetstat()
    pipe = client.pipeline(transaction=False)
    for _ in range(calls):
        pipe.fcall(function, 2, "s", "m", 50, after_id)
    pipe.execute()
    return float(client.info("commandstats")["cmdstat_fcall"]["usec_per_call"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        process = subprocess.Popen(server_command(find_server_binary(), port, Path(data), "everysec"),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_redis(port, process)
            client = redis.Redis(port=port)
            client.function_load(library(), replace=True)
            after_id = prepare(client)
            print("round  without (us/call)  with (us/call)")
            for round_number in range(args.rounds):
                without = per_call(client, "without_epochs", args.calls, after_id)
                with_epochs = per_call(client, "with_epochs", args.calls, after_id)
                print(f"{round_number:5}  {without:18.2f}  {with_epochs:14.2f}")
        finally:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
