"""Share groups (KIP-932): settings, and the share sessions this gateway serves.

Membership and every record's state live in Redis (gateway/storage/shares.py),
so any gateway serves any share group and a gateway's loss loses nothing
but its share sessions, which Kafka keeps in broker memory too (the client
opens a new one on SHARE_SESSION_NOT_FOUND).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from ..storage.shares import RedisShareStorage, ShareSettings

# How long a group's configs are taken from memory before Redis is asked again.
CONFIG_CACHE_SECONDS = 1.0
# Partitions one share session may hold; more: INVALID_REQUEST.
MAX_SESSION_PARTITIONS = 10_000
# Share sessions one gateway keeps; the oldest go first when more open.
MAX_SESSIONS = 10_000

RESET = "share.auto.offset.reset"
LOCK_DURATION = "group.share.record.lock.duration.ms"
DELIVERY_LIMIT = "group.share.delivery.count.limit"
DEAD_LETTER_TOPIC = "errors.deadletterqueue.topic.name"


# The group configs a share group takes (Kafka's GroupConfig), with Kafka's bounds.
_INT_CONFIGS = {LOCK_DURATION: (1000, 3_600_000), DELIVERY_LIMIT: (2, 10)}
SHARE_CONFIGS = frozenset({RESET, LOCK_DURATION, DELIVERY_LIMIT, DEAD_LETTER_TOPIC})


def share_config_problem(name: str, value: str | None) -> str | None:
    """Why a group config cannot be set to value (None: deleted), or None when it can."""
    if name not in SHARE_CONFIGS:
        return f"Unknown group config name: {name}"
    if value is None:
        return None
    if name == RESET and value not in ("earliest", "latest"):
        return f"Invalid value {value} for configuration {name}: String must be one of: earliest, latest"
    if name in _INT_CONFIGS:
        low, high = _INT_CONFIGS[name]
        if not value.lstrip("-").isdigit() or not low <= int(value) <= high:
            return f"Invalid value {value} for configuration {name}: must be from {low} to {high}"
    return None


@dataclass(frozen=True, slots=True)
class SessionPartition:
    topic_id: uuid.UUID
    topic: str
    partition: int


@dataclass(slots=True)
class ShareSession:
    """The partitions a member fetches from through this gateway, and the epoch next expected."""

    epoch: int
    partitions: dict[tuple[uuid.UUID, int], SessionPartition] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupSettings:
    share: ShareSettings
    dead_letter_topic: str | None


class ShareGroups:
    def __init__(self, storage: RedisShareStorage, lock_ms: int, delivery_limit: int) -> None:
        self.storage = storage
        self._lock_ms = lock_ms
        self._delivery_limit = delivery_limit
        self.sessions: dict[tuple[str, str], ShareSession] = {}
        self._settings: dict[str, tuple[float, GroupSettings]] = {}

    async def settings(self, group: str) -> GroupSettings:
        now = time.monotonic()
        cached = self._settings.get(group)
        if cached is not None and now - cached[0] < CONFIG_CACHE_SECONDS:
            return cached[1]
        configs = await self.storage.configs(group)
        settings = GroupSettings(
            ShareSettings(_int(configs.get(LOCK_DURATION), self._lock_ms),
                          _int(configs.get(DELIVERY_LIMIT), self._delivery_limit),
                          "earliest" if configs.get(RESET) == "earliest" else "latest"),
            configs.get(DEAD_LETTER_TOPIC) or None)
        if len(self._settings) >= MAX_SESSIONS:
            self._settings.clear()
        self._settings[group] = (now, settings)
        return settings

    async def described_configs(self, group: str) -> list[tuple[str, str, bool, int]]:
        """Every share-group config as DescribeConfigs shows it: (name, value, set on the
        group, Kafka's config type id); unset ones take the broker flags' defaults."""
        configs = await self.storage.configs(group)
        defaults = {RESET: ("latest", 2), LOCK_DURATION: (str(self._lock_ms), 3),
                    DELIVERY_LIMIT: (str(self._delivery_limit), 3), DEAD_LETTER_TOPIC: ("", 2)}
        return [(name, configs.get(name, default), name in configs, type_id)
                for name, (default, type_id) in defaults.items()]

    def forget_settings(self, group: str) -> None:
        """This gateway changed the group's configs: read them afresh (others within CONFIG_CACHE_SECONDS)."""
        self._settings.pop(group, None)

    def open_session(self, group: str, member: str) -> ShareSession:
        if len(self.sessions) >= MAX_SESSIONS:
            del self.sessions[next(iter(self.sessions))]
        session = ShareSession(epoch=1)
        self.sessions[(group, member)] = session
        return session

    async def close(self) -> None:
        await self.storage.close()


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
