"""Redis key names.

Every key of a partition carries the same hash tag, ``{<topic>:<partition>}``,
so the stream, its offset index and its metadata share one Redis Cluster slot
(one script touches them all) while different partitions spread over slots.
Kafka topic names are limited to ``[a-zA-Z0-9._-]``, so they never contain
the braces or colons that would confuse the tag.
"""

from __future__ import annotations

TOPICS = "kafka:topics"
CLUSTER = "kafka:cluster"


def partition_tag(topic: str, partition: int) -> str:
    return f"{{{topic}:{partition}}}"


def stream(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}"


def offset_index(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:idx"


def partition_meta(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:meta"


def partition_keys(topic: str, partition: int) -> list[str]:
    return [stream(topic, partition), offset_index(topic, partition), partition_meta(topic, partition)]
