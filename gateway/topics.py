"""Topic rules shared by the handlers: names, configs, auto-creation."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from .config import Config
from .storage import Storage, TopicExists, TopicInfo
from .storage.entries import DEFAULT_NATIVE, NativeFormat
from .storage.keys import STREAM_KEYS_CONFIG, adopted_streams, adoption_problem

# Kafka's legal topic names.
_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")
MAX_NAME_LENGTH = 249


def invalid_name(name: str | None) -> bool:
    return (
        not name
        or name in (".", "..")
        or len(name) > MAX_NAME_LENGTH
        or _LEGAL_NAME.fullmatch(name) is None
    )


@dataclass(frozen=True, slots=True)
class ConfigDef:
    default: str
    # Config type as DescribeConfigs v3+ reports it: 1 BOOLEAN, 2 STRING,
    # 3 INT, 4 SHORT, 5 LONG, 6 DOUBLE, 7 LIST, 8 CLASS, 9 PASSWORD.
    type_id: int
    choices: tuple[str, ...] = ()
    # Whether the gateway acts on it (docs/compatibility.md lists which).
    applied: bool = False
    # Set when the topic is created and never altered afterwards.
    read_only: bool = False

    def valid(self, value: str) -> bool:
        if self.choices:
            return value in self.choices
        if self.type_id in (3, 4, 5):
            try:
                int(value)
            except ValueError:
                return False
        if self.type_id == 6:
            try:
                float(value)
            except ValueError:
                return False
        if self.type_id == 1:
            return value in ("true", "false")
        return True


# Kafka's topic-level configs with Kafka 4.0 defaults. Unknown names are
# refused with INVALID_CONFIG, as Kafka does.
TOPIC_CONFIGS: Mapping[str, ConfigDef] = {
    # compact: gateway/compaction.py, docs/mapping.md ("Compacted topics").
    "cleanup.policy": ConfigDef("delete", 7, ("delete", "compact", "compact,delete", "delete,compact"), True),
    "compression.type": ConfigDef(
        "producer", 2, ("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"), True),
    "compression.gzip.level": ConfigDef("-1", 3),
    "compression.lz4.level": ConfigDef("9", 3),
    "compression.zstd.level": ConfigDef("3", 3),
    "delete.retention.ms": ConfigDef("86400000", 5, applied=True),
    "file.delete.delay.ms": ConfigDef("60000", 5),
    "flush.messages": ConfigDef("9223372036854775807", 5),
    "flush.ms": ConfigDef("9223372036854775807", 5),
    "follower.replication.throttled.replicas": ConfigDef("", 7),
    "index.interval.bytes": ConfigDef("4096", 3),
    "leader.replication.throttled.replicas": ConfigDef("", 7),
    "local.retention.bytes": ConfigDef("-2", 5),
    "local.retention.ms": ConfigDef("-2", 5),
    "max.compaction.lag.ms": ConfigDef("9223372036854775807", 5, applied=True),
    "max.message.bytes": ConfigDef("1048588", 3, applied=True),
    "message.timestamp.after.max.ms": ConfigDef("3600000", 5),
    "message.timestamp.before.max.ms": ConfigDef("9223372036854775807", 5),
    "message.timestamp.type": ConfigDef("CreateTime", 2, ("CreateTime", "LogAppendTime"), True),
    "min.cleanable.dirty.ratio": ConfigDef("0.5", 6, applied=True),
    "min.compaction.lag.ms": ConfigDef("0", 5, applied=True),
    "min.insync.replicas": ConfigDef("1", 3),
    "preallocate": ConfigDef("false", 1),
    "remote.storage.enable": ConfigDef("false", 1),
    "retention.bytes": ConfigDef("-1", 5, applied=True),
    # Kafka's default is 7 days; the gateway keeps everything unless a topic
    # sets a limit, because its streams are shared with native applications.
    "retention.ms": ConfigDef("-1", 5, applied=True),
    "segment.bytes": ConfigDef("1073741824", 3),
    "segment.index.bytes": ConfigDef("10485760", 3),
    "segment.jitter.ms": ConfigDef("0", 5),
    "segment.ms": ConfigDef("604800000", 5, applied=True),
    "unclean.leader.election.enable": ConfigDef("false", 1),
    # The gateway's own configs (docs/mapping.md, "Native entries"): which
    # field of an entry that native code added is the record's value / key.
    "redis.value.field": ConfigDef("", 2, applied=True),
    "redis.key.field": ConfigDef("", 2, applied=True),
    # Existing streams the topic's partitions are, in partition order
    # (docs/mapping.md, "Adopted streams").
    STREAM_KEYS_CONFIG: ConfigDef("", 7, applied=True, read_only=True),
}


def native_format(info: TopicInfo) -> NativeFormat:
    value_field = info.configs.get("redis.value.field") or None
    key_field = info.configs.get("redis.key.field") or None
    if value_field is None and key_field is None:
        return DEFAULT_NATIVE
    return NativeFormat(value_field.encode() if value_field else None,
                        key_field.encode() if key_field else None)


# Compaction configs Kafka requires to be at least 0 (max.compaction.lag.ms at least 1).
_NON_NEGATIVE = ("delete.retention.ms", "min.compaction.lag.ms", "segment.ms")


def validate_configs(configs: Mapping[str, str | None]) -> str | None:
    """An error message for INVALID_CONFIG, or None when all are acceptable."""
    for name, value in configs.items():
        definition = TOPIC_CONFIGS.get(name)
        if definition is None:
            return f"Unknown topic config name: {name}"
        if value is None or not definition.valid(value):
            return f"Invalid value {value!r} for configuration {name}"
        if name == "min.cleanable.dirty.ratio" and not 0 <= float(value) <= 1:
            return f"Invalid value {value} for configuration {name}: Value must be in [0, 1]"
        if name in _NON_NEGATIVE and int(value) < 0:
            return f"Invalid value {value} for configuration {name}: Value must be at least 0"
        if name == STREAM_KEYS_CONFIG and value:
            problem = adoption_problem(adopted_streams({name: value}))
            if problem:
                return problem
    if "compact" in (configs.get("cleanup.policy") or "").split(",") and configs.get(STREAM_KEYS_CONFIG):
        return f"cleanup.policy=compact cannot be combined with {STREAM_KEYS_CONFIG}"
    return None


def adoption_forbidden(stream_keys: Sequence[str], patterns: Sequence[str]) -> str | None:
    """Why a Kafka client may not adopt these keys (POLICY_VIOLATION), or None.

    Adopting hands every Kafka client read, append and trim rights over a
    stream that native code owns, so the operator names the keys that may
    be adopted (--adopt-streams); the adopt subcommand, which needs Redis
    access anyway, is not limited.
    """
    if not patterns:
        return (f"{STREAM_KEYS_CONFIG} is disabled on this gateway: start it with "
                "--adopt-streams PATTERN[,PATTERN...] to let CreateTopics adopt matching "
                "streams, or use the 'kafka-redis-gateway adopt' command")
    for key in stream_keys:
        if not any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns):
            return (f"stream {key!r} does not match --adopt-streams "
                    f"({','.join(patterns)}) on this gateway")
    return None


def config_value(info: TopicInfo, name: str) -> str:
    return info.configs.get(name, TOPIC_CONFIGS[name].default)


async def topic_or_autocreate(
    storage: Storage, config: Config, name: str, *, allow: bool = True, may_create: bool = True
) -> tuple[TopicInfo | None, ErrorCode]:
    """Look a topic up, creating it when auto-creation is on and allowed.

    ``may_create``: the client's principal may create it (CREATE on the
    cluster or the topic); if not, TOPIC_AUTHORIZATION_FAILED, as Kafka.
    """
    info = await storage.topic(name)
    if info is not None:
        return info, ErrorCode.none
    if invalid_name(name):
        return None, ErrorCode.invalid_topic_exception
    if not (allow and config.auto_create_topics):
        return None, ErrorCode.unknown_topic_or_partition
    if not may_create:
        return None, ErrorCode.topic_authorization_failed
    try:
        return await storage.create_topic(name, config.default_partitions, {}), ErrorCode.none
    except TopicExists:
        return await storage.topic(name), ErrorCode.none
