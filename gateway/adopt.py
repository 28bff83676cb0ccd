"""``kafka-redis-gateway adopt TOPIC STREAM [STREAM ...] [--redis-url URL]``.

Makes existing Redis streams the partitions of a new Kafka topic, in the
order given, without copying: the same as CreateTopics with the topic config
``redis.stream.keys``, which a gateway allows only for keys matching its
``--adopt-streams`` patterns; this command, for operators who have Redis at
hand, is not limited by them. Kafka consumers then read each stream's
history from its first entry (offset 0 unless native code trimmed it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from .storage import InvalidStream, RedisStorage, TopicExists, TopicInfo
from .storage.keys import STREAM_KEYS_CONFIG
from .storage.redis_cluster import is_cluster
from .tool_args import add_redis_arguments, redis_url
from .topics import invalid_name, validate_configs


class AdoptionRefused(Exception):
    pass


def topic_configs(streams: Sequence[str], settings: Sequence[str]) -> dict[str, str]:
    configs = {STREAM_KEYS_CONFIG: ",".join(streams)}
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep:
            raise AdoptionRefused(f"--config expects NAME=VALUE, got {setting!r}")
        if name == STREAM_KEYS_CONFIG:
            raise AdoptionRefused(f"give the streams as arguments, not as {STREAM_KEYS_CONFIG}")
        configs[name] = value
    problem = validate_configs(configs)
    if problem:
        raise AdoptionRefused(problem)
    return configs


async def adopt(redis_url: str, topic: str, streams: Sequence[str],
                settings: Sequence[str] = ()) -> TopicInfo:
    if invalid_name(topic):
        raise AdoptionRefused(f"invalid Kafka topic name {topic!r}")
    configs = topic_configs(streams, settings)
    # Any node of a Redis Cluster will do, as for the gateway.
    storage = RedisStorage(redis_url, cluster=await is_cluster(redis_url))
    try:
        return await storage.create_topic(topic, len(streams), configs)
    except TopicExists as exc:
        raise AdoptionRefused(f"topic {topic!r} already exists") from exc
    except InvalidStream as exc:
        raise AdoptionRefused(str(exc)) from exc
    finally:
        await storage.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="kafka-redis-gateway adopt",
        description="Make existing Redis streams a Kafka topic's partitions, without copying.")
    parser.add_argument("topic", help="Kafka topic name to create")
    parser.add_argument("streams", nargs="+", help="stream keys, one per partition, in order")
    parser.add_argument("--config", action="append", default=[], metavar="NAME=VALUE",
                        help="a topic config, e.g. redis.value.field=payload (repeatable)")
    add_redis_arguments(parser)
    args = parser.parse_args(argv)
    try:
        info = asyncio.run(adopt(redis_url(parser, args), args.topic, args.streams, args.config))
    except AdoptionRefused as exc:
        print(f"not adopted: {exc}", file=sys.stderr)
        return 1
    for partition, stream in enumerate(args.streams):
        print(f"topic {info.name} partition {partition}: stream {stream}")
    return 0
