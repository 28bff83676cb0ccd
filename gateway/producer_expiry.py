"""Producer-state expiry: a periodic task that forgets idle idempotent producers.

The append script keeps each idempotent producer's last batches per
partition (``kafka:{<topic>:<partition>}:producers``, one hash field per
producer ID). Java clients are idempotent by default and take a new
producer ID at every start, so without expiry that hash grows for ever.
As Kafka does with ``producer.id.expiration.ms`` (default one day), a
producer's state on a partition is dropped once its newest batch there was
appended that long ago; every ``producer.id.expiration.check.interval.ms``
(default ten minutes) the cluster's controller sweeps every partition.

A sweep is many short steps: one script call looks at about
PRODUCER_EXPIRY_STEP states (HSCAN with COUNT, storage/lua/expire_producers.lua),
so neither Redis nor the event loop is held for long, however many producers
a partition saw. The decision and the HDEL are one atomic step, so an append
racing with the sweep is never lost, and two gateways may sweep the same
partitions (while their views of who is the controller differ): a producer
already forgotten is simply not found again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import metrics
from .storage import Storage, StorageUnavailable

log = logging.getLogger(__name__)


async def expire_partition(storage: Storage, topic: str, partition: int, expiration_ms: int) -> int:
    """Sweep one partition, step by step; the producers forgotten."""
    cursor, removed = "0", 0
    while True:
        cursor, step_removed = await storage.expire_producers(topic, partition, cursor, expiration_ms)
        removed += step_removed
        if cursor == "0":
            return removed


async def expire_once(storage: Storage, expiration_ms: int) -> int:
    """Sweep every partition of every topic; the producers forgotten."""
    removed = 0
    for info in (await storage.topics()).values():
        for partition in range(info.partitions):
            removed += await expire_partition(storage, info.name, partition, expiration_ms)
    return removed


async def run(storage: Storage, interval_ms: int, expiration_ms: int,
              is_controller: Callable[[], bool]) -> None:
    """Expire idle producers every interval, when this gateway is the controller, until cancelled."""
    while True:
        await asyncio.sleep(interval_ms / 1000)
        if not is_controller():
            continue
        metrics.BACKGROUND_SWEEPS.labels("producer_expiry").inc()
        try:
            removed = await expire_once(storage, expiration_ms)
        except StorageUnavailable as exc:
            log.warning("producer state expiry skipped, Redis unavailable: %s", exc)
        except Exception:  # keep the task alive; the next interval tries again
            log.exception("producer state expiry failed")
        else:
            if removed:
                log.info("forgot %d idempotent producer state(s) idle for %d ms", removed, expiration_ms)
