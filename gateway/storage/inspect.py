"""What the ``inspect`` subcommand shows: each topic's streams as Redis sees them."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from . import keys
from .base import StorageUnavailable
from .errors import UNAVAILABLE
from .redis_cluster import is_cluster, redis_client
from .redis_storage import _decode_topic


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def inspect_topics(url: str, topic: str | None = None) -> list[dict[str, Any]]:
    """Per topic and partition: stream key, length, offsets, entry IDs, memory, groups with lag."""
    client = redis_client(url, cluster=await is_cluster(url), max_connections=4, timeout=5.0)
    try:
        registry: dict[Any, Any] = await client.hgetall(keys.TOPICS)  # type: ignore[misc]
        kafka_groups = {_text(name) for name in await client.hkeys(keys.GROUPS)}  # type: ignore[misc]
        topics = []
        for raw_name, raw in sorted(registry.items()):
            info = _decode_topic(raw_name.decode(), raw)
            if topic is not None and info.name != topic:
                continue
            partitions = []
            streams = keys.StreamKeyMap()
            streams.learn(info.name, info.configs)
            adopted = keys.adopted_streams(info.configs)
            for partition in range(info.partitions):
                found = await _partition(client, streams.stream(info.name, partition),
                                         partition, kafka_groups)
                found["adopted"] = partition < len(adopted)
                partitions.append(found)
            topics.append({"topic": info.name, "topic_id": str(info.topic_id),
                           "configs": dict(info.configs), "partitions": partitions})
        return topics
    except UNAVAILABLE as exc:  # the command line says so in one line
        raise StorageUnavailable(str(exc)) from exc
    finally:
        await client.aclose()


async def _partition(client: aioredis.Redis, stream: str, partition: int,
                     kafka_groups: set[str]) -> dict[str, Any]:
    found: dict[str, Any] = {"partition": partition, "stream": stream, "length": 0, "start_offset": 0,
                             "end_offset": 0, "first_id": None, "last_id": None, "memory_bytes": 0,
                             "groups": []}
    if not await client.exists(stream):
        return found
    info = await client.xinfo_stream(stream)
    fields = {_text(name): value for name, value in info.items()}
    length, added = int(fields["length"]), int(fields["entries-added"])
    first, last = fields.get("first-entry"), fields.get("last-entry")
    found.update(length=length, start_offset=added - length, end_offset=added,
                 first_id=_text(first[0]) if first else None, last_id=_text(last[0]) if last else None,
                 memory_bytes=int(await client.memory_usage(stream) or 0))
    for group in await client.xinfo_groups(stream):
        values = {_text(name): _text(value) for name, value in group.items()}
        name = values["name"]
        found["groups"].append({
            "name": name, "kafka": name in kafka_groups, "entries_read": values.get("entries-read"),
            "lag": values.get("lag"), "pending": values.get("pending"),
            "last_delivered_id": values.get("last-delivered-id")})
    return found
