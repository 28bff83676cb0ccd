"""What a Redis failure means to the gateway: one classifier for every store.

``classify`` turns the errors after which nothing ran and asking again may
work (Redis unreachable or loading, a Redis Cluster slot moving or a shard
without its primary, the function library missing) into
:class:`StorageUnavailable`, which handlers answer with a retriable Kafka
error. Anything else is returned as it is: a bug or a refusal to report,
not to retry.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import hiredis
from redis import exceptions as redis_errors

from ..metrics import REDIS_LATENCY, REDIS_RECONNECTS
from .base import StorageUnavailable

T = TypeVar("T")

# Errors that mean "Redis is not there right now": the gateway answers with a
# retriable Kafka error and redis-py reconnects on the next command.
# BusyLoadingError (-LOADING, a server replaying its data) is a ConnectionError.
UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    ConnectionError,
    OSError,
)

# A Redis Cluster's "nothing ran, ask again": a slot moving (TRYAGAIN,
# MOVED/ASK past the redirections followed) or a shard without its primary
# (CLUSTERDOWN, MASTERDOWN), or a slot map that names no node for some slots.
# MovedError is an AskError.
CLUSTER_TRANSIENT = (
    redis_errors.TryAgainError,
    redis_errors.AskError,
    redis_errors.ClusterDownError,
    redis_errors.MasterDownError,
    redis_errors.SlotNotCoveredError,
)
# The same errors by their prefix, as they come where no parser mapped them to
# redis-py's classes (hiredis's errors inside an EXEC reply keep their text).
_TRANSIENT_PREFIXES = frozenset({"TRYAGAIN", "MOVED", "ASK", "CLUSTERDOWN", "MASTERDOWN", "LOADING"})

# redis-py's RedisClusterException text for a slot map with holes (it has no class of its own).
_UNCOVERED = "slots are not covered"

# Redis's and Valkey's answer to FCALL of a function no library registers.
MISSING_FUNCTION = "Function not found"


def is_cluster_transient(error: BaseException) -> bool:
    """Whether the error is a Redis Cluster's (or a loading server's) "nothing ran, ask again"."""
    if isinstance(error, CLUSTER_TRANSIENT):
        return True
    if isinstance(error, redis_errors.RedisClusterException):
        # redis-py's cluster client, reading a slot map with slots no node serves.
        return _UNCOVERED in str(error)
    if not isinstance(error, (redis_errors.ResponseError, hiredis.ReplyError)):
        return False
    words = str(error).split(maxsplit=1)
    return bool(words) and words[0] in _TRANSIENT_PREFIXES


def is_missing_function(reply: object) -> bool:
    """Whether a reply is FCALL's error for a function not loaded (nothing ran).

    redis-py strips the ``ERR`` prefix; hiredis's errors inside an EXEC reply keep it.
    """
    return isinstance(reply, Exception) and str(reply).removeprefix("ERR ") == MISSING_FUNCTION


def classify(error: Exception) -> Exception:
    """StorageUnavailable for what is worth asking again (see the module); else the error itself."""
    if isinstance(error, StorageUnavailable):
        return error
    if isinstance(error, UNAVAILABLE):
        return StorageUnavailable(str(error))
    if is_cluster_transient(error):
        return StorageUnavailable(f"Redis Cluster: {type(error).__name__} {error}")
    if is_missing_function(error):
        # Nothing ran, and run_calls has loaded the library again.
        return StorageUnavailable("the gateway's Redis functions were missing (FUNCTION FLUSH, "
                                  "or a Redis without persistence restarted); loaded again")
    return error


async def call_once(operation: Callable[[], Awaitable[T]]) -> T:
    """Run one Redis operation, timed; what ``classify`` finds retriable becomes StorageUnavailable.

    Not repeated on a new connection (RedisStorage._call does that for what
    is safe to repeat): for the registry, group and credential stores, whose
    callers answer with a retriable Kafka error instead.
    """
    started = time.perf_counter()
    try:
        return await operation()
    except Exception as exc:  # what classify leaves alone is raised as it was
        classified = classify(exc)
        if classified is exc:
            raise
        if isinstance(exc, UNAVAILABLE):
            REDIS_RECONNECTS.inc()
        raise classified from exc
    finally:
        REDIS_LATENCY.observe(time.perf_counter() - started)
