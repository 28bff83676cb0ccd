"""Compaction: a periodic task that cleans topics with cleanup.policy compact.

Like retention (retention.py) it runs on every gateway and acts only on the
cluster's controller (gateway/cluster.py), every retention check interval:
for each topic whose cleanup.policy includes ``compact``, each partition is
compacted in script calls of bounded work (gateway/storage/lua/compact.lua),
so each partition is compacted by one gateway at a time (two, for a second
while the gateways' views of the cluster differ: a pass is idempotent, as
every call goes on from where the partition's meta says the last one got).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import metrics
from .storage import CompactionSettings, Storage, StorageUnavailable, TopicInfo
from .storage.keys import is_compacted
from .topics import config_value

log = logging.getLogger(__name__)


def settings(info: TopicInfo) -> CompactionSettings | None:
    """A topic's compaction configs, or None when it is not compacted."""
    if not is_compacted(info.configs):
        return None
    return CompactionSettings(
        min_lag_ms=int(config_value(info, "min.compaction.lag.ms")),
        max_lag_ms=int(config_value(info, "max.compaction.lag.ms")),
        segment_ms=int(config_value(info, "segment.ms")),
        min_dirty_ratio=float(config_value(info, "min.cleanable.dirty.ratio")),
        delete_retention_ms=int(config_value(info, "delete.retention.ms")),
    )


async def compact_once(storage: Storage) -> int:
    """Compact every compacted topic's partitions; the number of entries removed."""
    removed = 0
    for info in (await storage.topics()).values():
        found = settings(info)
        if found is None:
            continue
        for partition in range(info.partitions):
            stats = await storage.compact(info.name, partition, found)
            removed += stats.removed
    return removed


async def run(storage: Storage, interval_ms: int, is_controller: Callable[[], bool]) -> None:
    """Compact every interval, when this gateway is the controller, until cancelled."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        if not is_controller():
            continue
        metrics.BACKGROUND_SWEEPS.labels("compaction").inc()
        try:
            await compact_once(storage)
        except StorageUnavailable as exc:
            log.warning("compaction skipped, Redis unavailable: %s", exc)
        except Exception:  # keep the task alive; the next interval tries again
            log.exception("compaction failed")
