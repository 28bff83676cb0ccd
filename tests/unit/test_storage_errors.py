"""One classifier for every store: what is worth asking Redis again becomes StorageUnavailable."""

from __future__ import annotations

import asyncio

import hiredis
import pytest
from kafka_redis_gateway.gateway.storage import StorageUnavailable
from kafka_redis_gateway.gateway.storage.errors import call_once, classify
from redis import exceptions as redis_errors

RETRIABLE = [
    redis_errors.ConnectionError("Connection refused"),
    redis_errors.TimeoutError("Timeout reading from socket"),
    ConnectionResetError("reset by peer"),
    redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
    redis_errors.TryAgainError("Multiple keys request during rehashing of slot"),
    redis_errors.ClusterDownError("The cluster is down"),
    redis_errors.ClusterDownError("Hash slot not served"),
    redis_errors.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
    redis_errors.MovedError("3999 127.0.0.1:6381"),
    redis_errors.AskError("3999 127.0.0.1:6381"),
    redis_errors.SlotNotCoveredError("Slot 3999 not covered by the cluster."),
    redis_errors.RedisClusterException("All slots are not covered after query all startup_nodes."),
    # Unparsed, as in an EXEC reply or a plain client's pipeline: the prefix says it.
    hiredis.ReplyError("TRYAGAIN Multiple keys request during rehashing of slot"),
    hiredis.ReplyError("CLUSTERDOWN The cluster is down"),
    hiredis.ReplyError("MASTERDOWN Link with MASTER is down"),
    hiredis.ReplyError("LOADING Redis is loading the dataset in memory"),
    redis_errors.ResponseError("CLUSTERDOWN Hash slot not served"),
    redis_errors.ResponseError("Function not found"),
    hiredis.ReplyError("ERR Function not found"),
]

NOT_RETRIABLE = [
    redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    redis_errors.NoPermissionError("this user has no permissions to run the 'fcall' command"),
    redis_errors.ResponseError("user_script:12: bad argument"),
    redis_errors.RedisClusterException("Cluster mode is not enabled on this node"),
    hiredis.ReplyError("ERR unknown command 'FCALL'"),
    ValueError("not a Redis error at all"),
]


@pytest.mark.parametrize("error", RETRIABLE, ids=lambda e: f"{type(e).__name__}:{str(e)[:20]}")
def test_retriable_errors_become_storage_unavailable(error: Exception) -> None:
    classified = classify(error)
    assert isinstance(classified, StorageUnavailable)


@pytest.mark.parametrize("error", NOT_RETRIABLE, ids=lambda e: f"{type(e).__name__}:{str(e)[:20]}")
def test_other_errors_stay_as_they_are(error: Exception) -> None:
    assert classify(error) is error


def test_call_once_raises_what_classify_says() -> None:
    async def fails(error: Exception) -> None:
        raise error

    down = redis_errors.ClusterDownError("The cluster is down")
    with pytest.raises(StorageUnavailable) as raised:
        asyncio.run(call_once(lambda: fails(down)))
    assert raised.value.__cause__ is down
    refused = redis_errors.NoPermissionError("no permissions")
    with pytest.raises(redis_errors.NoPermissionError) as kept:
        asyncio.run(call_once(lambda: fails(refused)))
    assert kept.value is refused
