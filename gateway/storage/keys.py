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
PRODUCER_IDS = "kafka:producer-ids"


def partition_tag(topic: str, partition: int) -> str:
    return f"{{{topic}:{partition}}}"


def stream(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}"


def offset_index(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:idx"


def partition_meta(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:meta"


def producer_state(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:producers"


def partition_keys(topic: str, partition: int) -> list[str]:
    """Every key of a partition, in the order the append script takes them."""
    return [
        stream(topic, partition),
        offset_index(topic, partition),
        partition_meta(topic, partition),
        producer_state(topic, partition),
    ]


# Consumer groups (gateway/storage/groups.py). A group's committed offset on a
# partition is the Redis consumer group of the same name on the partition's
# stream; the commit metadata shares the partition's slot.
GROUPS = "kafka:groups"


def partition_commits(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:commits"


def group_partitions(group: str) -> str:
    """The set of "<topic>:<partition>" a group committed on."""
    return f"kafka:groups:{group}"
