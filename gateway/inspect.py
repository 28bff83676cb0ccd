"""``kafka-redis-gateway inspect [topic] [--json] [--redis-url URL]``: the Kafka-to-Redis mapping.

For each topic (or the one named): per partition its stream key, length,
log start and end offsets, first and last entry IDs, MEMORY USAGE, and the
Redis consumer groups on it with their lag, marked when they are Kafka
groups (registered through OffsetCommit). Plain text for people, ``--json``
for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from .storage.inspect import inspect_topics
from .tool_args import add_redis_arguments, redis_url


def render(topics: list[dict[str, Any]]) -> str:
    lines = []
    for topic in topics:
        configs = ",".join(f"{k}={v}" for k, v in sorted(topic["configs"].items()))
        lines.append(f"topic {topic['topic']} ({len(topic['partitions'])} partitions) {configs}".rstrip())
        for p in topic["partitions"]:
            adopted = " (adopted)" if p.get("adopted") else ""
            lines.append(f"  {p['partition']}: {p['stream']}{adopted} length {p['length']} offsets "
                         f"{p['start_offset']}..{p['end_offset']} ids {p['first_id']}..{p['last_id']} "
                         f"memory {p['memory_bytes']} B")
            for group in p["groups"]:
                kind = "kafka" if group["kafka"] else "redis"
                lines.append(f"     {kind} group {group['name']}: read {group['entries_read']} "
                             f"lag {group['lag']} pending {group['pending']}")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kafka-redis-gateway inspect",
                                     description="Show how topics map onto Redis streams.")
    parser.add_argument("topic", nargs="?", help="only this topic")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_redis_arguments(parser)
    args = parser.parse_args(argv)
    topics = asyncio.run(inspect_topics(redis_url(parser, args), args.topic))
    if args.topic is not None and not topics:
        print(f"no topic {args.topic}", file=sys.stderr)
        return 1
    print(json.dumps(topics, indent=2) if args.json else render(topics))
    return 0
