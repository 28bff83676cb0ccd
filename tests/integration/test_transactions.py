"""Transactions (issue #16): the transaction coordinator's state in Redis.

So far InitProducerId with a transactional ID (KIP-98, KIP-360), spoken in
raw Kafka frames (clients cannot get there yet: FindCoordinator for a
transaction coordinator still refuses, test_idempotence), with the state
looked at in Redis.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator

import pytest
import redis
from kafka_redis_gateway.gateway.storage import RedisStorage, keys
from kafka_redis_gateway.gateway.storage.transactions import InitTransaction
from kio.schema.errors import ErrorCode

from tests.integration.test_idempotence import INIT_PRODUCER_ID
from tests.integration.test_protocol import Wire, build, request_types

# Kafka's last epoch of a producer ID (TransactionMetadata.isEpochExhausted).
LAST_EPOCH = 32766


@pytest.fixture
def wire(bootstrap: str) -> Iterator[Wire]:
    connection = Wire(bootstrap)
    yield connection
    connection.close()


@pytest.fixture
def transactional_id() -> str:
    return f"tx-{uuid.uuid4().hex[:12]}"


def init(wire: Wire, transactional_id: str, version: int = 5, *, producer: tuple[int, int] = (-1, -1),
         timeout_ms: int = 60_000) -> tuple[ErrorCode, int, int]:
    types = request_types(INIT_PRODUCER_ID, version)
    response = wire.call(build(types.InitProducerIdRequest, transactional_id=transactional_id,
                               transaction_timeout=datetime.timedelta(milliseconds=timeout_ms),
                               producer_id=producer[0], producer_epoch=producer[1]))
    return response.error_code, response.producer_id, response.producer_epoch


def stored(client: redis.Redis, transactional_id: str) -> dict[str, str]:
    raw = client.hgetall(keys.transaction(transactional_id))
    return {name.decode(): value.decode() for name, value in raw.items()}


@pytest.mark.parametrize("version", [0, 3, 5])
def test_a_new_transactional_id_gets_a_producer_id_then_its_next_epochs(
        wire: Wire, redis_client: redis.Redis, transactional_id: str, version: int) -> None:
    code, producer_id, epoch = init(wire, transactional_id, version)
    assert (code, epoch) == (ErrorCode.none, 0)
    assert producer_id >= 0
    assert init(wire, transactional_id, version) == (ErrorCode.none, producer_id, 1)
    assert init(wire, transactional_id, version) == (ErrorCode.none, producer_id, 2)
    state = stored(redis_client, transactional_id)
    assert (state["pid"], state["epoch"], state["state"], state["timeout_ms"]) == (
        str(producer_id), "2", "Empty", "60000")
    # Another transactional ID: another producer ID.
    other = init(wire, transactional_id + "-other", version)
    assert other[0] == ErrorCode.none and other[1] != producer_id


def test_a_producer_naming_itself_bumps_its_epoch_and_a_retry_gets_the_same(
        wire: Wire, transactional_id: str) -> None:
    _, producer_id, _ = init(wire, transactional_id)
    assert init(wire, transactional_id, producer=(producer_id, 0)) == (ErrorCode.none, producer_id, 1)
    # The same request again (its answer lost): the same answer, not epoch 2.
    assert init(wire, transactional_id, producer=(producer_id, 0)) == (ErrorCode.none, producer_id, 1)


@pytest.mark.parametrize(("version", "fenced"), [(4, ErrorCode.producer_fenced),
                                                 (5, ErrorCode.producer_fenced),
                                                 (3, ErrorCode.invalid_producer_epoch)])
def test_a_zombie_naming_its_old_epoch_is_fenced(wire: Wire, transactional_id: str, version: int,
                                                 fenced: ErrorCode) -> None:
    _, producer_id, _ = init(wire, transactional_id)
    init(wire, transactional_id)  # a new producer instance: epoch 1
    init(wire, transactional_id)  # and another: epoch 2
    assert init(wire, transactional_id, version, producer=(producer_id, 0)) == (fenced, -1, -1)
    # Naming another producer ID altogether: fenced too.
    assert init(wire, transactional_id, version, producer=(producer_id + 10_000, 2))[0] == fenced


def test_used_up_epochs_give_a_new_producer_id(wire: Wire, redis_client: redis.Redis,
                                               transactional_id: str) -> None:
    _, producer_id, _ = init(wire, transactional_id)
    redis_client.hset(keys.transaction(transactional_id), "epoch", LAST_EPOCH)
    code, new_id, epoch = init(wire, transactional_id, producer=(producer_id, LAST_EPOCH))
    assert (code, epoch) == (ErrorCode.none, 0)
    assert new_id != producer_id
    # The old ID with its last epoch is a retry of that rotation (its answer
    # lost), not a zombie: the same answer again.
    assert init(wire, transactional_id, producer=(producer_id, LAST_EPOCH)) == (ErrorCode.none, new_id, 0)


@pytest.mark.parametrize("timeout_ms", [0, 900_001])
def test_a_timeout_beyond_the_maximum_is_refused(wire: Wire, redis_client: redis.Redis,
                                                 transactional_id: str, timeout_ms: int) -> None:
    refused = init(wire, transactional_id, timeout_ms=timeout_ms)
    assert refused == (ErrorCode.invalid_transaction_timeout, -1, -1)
    assert not redis_client.exists(keys.transaction(transactional_id))
    assert init(wire, transactional_id, timeout_ms=900_000)[0] == ErrorCode.none


async def test_a_writer_with_a_superseded_fencing_token_writes_nothing(
        storage: RedisStorage, redis_client: redis.Redis, transactional_id: str) -> None:
    # What a gateway that lost the ID's coordinator lease to another still tries.
    redis_client.hset(keys.transaction(transactional_id), "lease:token", 3)
    superseded = await storage.init_transaction(InitTransaction(transactional_id, 60_000, fencing_token=2))
    assert superseded.error_code == ErrorCode.not_coordinator.value
    assert stored(redis_client, transactional_id) == {"lease:token": "3"}
    current = await storage.init_transaction(InitTransaction(transactional_id, 60_000, fencing_token=3))
    assert (current.error_code, current.producer_epoch) == (0, 0)
    assert stored(redis_client, transactional_id)["epoch"] == "0"
