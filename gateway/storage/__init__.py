"""Storage: the only layer that speaks Redis.

Handlers see the :class:`Storage` protocol and the frozen results it returns;
:class:`RedisStorage` is its implementation.
"""

from .base import (
    AppendBatch,
    AppendRequest,
    AppendResult,
    CompactionSettings,
    CompactionStats,
    InvalidStream,
    OffsetOutOfRange,
    OffsetQuery,
    PartitionOffsets,
    ReadRequest,
    ReadResult,
    Storage,
    StorageUnavailable,
    TimeOffset,
    TopicExists,
    TopicInfo,
    TopicNotFound,
)
from .epochs import LeaderEpochs
from .redis_storage import RedisStorage

__all__ = [
    "AppendBatch",
    "AppendRequest",
    "AppendResult",
    "CompactionSettings",
    "CompactionStats",
    "InvalidStream",
    "LeaderEpochs",
    "OffsetOutOfRange",
    "OffsetQuery",
    "PartitionOffsets",
    "ReadRequest",
    "ReadResult",
    "RedisStorage",
    "Storage",
    "StorageUnavailable",
    "TimeOffset",
    "TopicExists",
    "TopicInfo",
    "TopicNotFound",
]
