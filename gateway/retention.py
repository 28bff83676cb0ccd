"""Retention: a periodic task that trims topics with retention.ms / retention.bytes.

Each gateway runs one, and the cluster's controller (gateway/cluster.py)
is the one that trims: every retention check interval it reads the topic
registry and, for each topic that sets ``retention.ms`` or
``retention.bytes`` to a limit (not -1), trims every partition in one
script call per partition (gateway/storage/lua/retention.lua). Trimming is
off the produce path: a produce never waits for it. While the gateways'
views of the cluster differ (a second after a gateway joins or leaves),
two may trim the same topics; the trims are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import metrics
from .storage import Storage, StorageUnavailable, TopicInfo
from .topics import config_value

log = logging.getLogger(__name__)


def limits(info: TopicInfo) -> tuple[int, int] | None:
    """(retention.ms, retention.bytes) of a topic, or None when it keeps everything.

    A topic whose cleanup.policy is compact alone is never trimmed by age or
    size (Kafka's rule); compact,delete is both compacted and trimmed.
    """
    if "delete" not in config_value(info, "cleanup.policy").split(","):
        return None
    try:
        retention_ms = int(config_value(info, "retention.ms"))
        retention_bytes = int(config_value(info, "retention.bytes"))
    except ValueError:
        return None
    retention_ms = retention_ms if retention_ms >= 0 else -1
    retention_bytes = retention_bytes if retention_bytes >= 0 else -1
    if retention_ms == -1 and retention_bytes == -1:
        return None
    return retention_ms, retention_bytes


async def apply_once(storage: Storage) -> int:
    """Trim every topic that has a limit; the number of partitions trimmed."""
    trimmed = 0
    for info in (await storage.topics()).values():
        found = limits(info)
        if found is None:
            continue
        for partition in range(info.partitions):
            await storage.apply_retention(info.name, partition, *found)
            trimmed += 1
    return trimmed


async def run(storage: Storage, interval_ms: int, is_controller: Callable[[], bool]) -> None:
    """Apply retention every interval, when this gateway is the controller, until cancelled."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        if not is_controller():
            continue
        metrics.BACKGROUND_SWEEPS.labels("retention").inc()
        try:
            await apply_once(storage)
        except StorageUnavailable as exc:
            log.warning("retention check skipped, Redis unavailable: %s", exc)
        except Exception:  # keep the task alive; the next interval tries again
            log.exception("retention check failed")
