"""Coordinators' leases and fencing tokens on a real Redis (storage/leases.py, lua/lease_*.lua).

The storage's clients (coordinator/ownership.py) are tested here too:
local expiry, renewal losses, idle release and the clean stop. The
gateway-level tests (a paused former coordinator, FindCoordinator from
every gateway) are in test_coordinator_failover.py; these check the Redis
side: who gets a lease, that the token only ever rises, and that membership
and offset writes carrying an older token are refused.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
from kafka_redis_gateway.gateway.coordinator import membership
from kafka_redis_gateway.gateway.coordinator import ownership as ownership_module
from kafka_redis_gateway.gateway.coordinator.group import Group
from kafka_redis_gateway.gateway.coordinator.ownership import Ownership
from kafka_redis_gateway.gateway.storage import keys
from kafka_redis_gateway.gateway.storage.group_base import Fenced, OffsetCommit
from kafka_redis_gateway.gateway.storage.groups import RedisGroupStorage
from kafka_redis_gateway.gateway.storage.leases import (
    BATCH,
    Acquired,
    HeldElsewhere,
    HeldLease,
    Holder,
    RedisLeaseStore,
)

from tests.servers import RedisServer
from tests.unit.test_group_membership import stable_group

ONE = Holder(1001, "instance-one")
TWO = Holder(1002, "instance-two")
LONG_MS = 60_000


@pytest.fixture
async def leases(redis_server: RedisServer) -> AsyncIterator[RedisLeaseStore]:
    store = RedisLeaseStore(redis_server.url)
    yield store
    await store.close()


@pytest.fixture
async def group_storage(redis_server: RedisServer) -> AsyncIterator[RedisGroupStorage]:
    store = RedisGroupStorage(redis_server.url)
    yield store
    await store.close()


def new_group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


async def test_one_holder_at_a_time_and_the_token_rises_with_each_new_holder(
        leases: RedisLeaseStore) -> None:
    key = keys.group_membership(new_group())
    assert await leases.acquire(key, ONE, LONG_MS) == Acquired(1)
    # The holder taking it again keeps its token.
    assert await leases.acquire(key, ONE, LONG_MS) == Acquired(1)
    refused = await leases.acquire(key, TWO, LONG_MS)
    assert isinstance(refused, HeldElsewhere)
    assert refused.node_id == ONE.node_id
    assert 0 < refused.wait_ms <= LONG_MS
    assert await leases.holders([key]) == [ONE.node_id]
    await leases.release([key], ONE)
    assert await leases.holders([key]) == [None]
    assert await leases.acquire(key, TWO, LONG_MS) == Acquired(2)
    # Releasing what another holds changes nothing.
    await leases.release([key], ONE)
    assert await leases.holders([key]) == [TWO.node_id]
    await leases.release([key], TWO)
    # Even its last holder starts a new term after releasing.
    assert await leases.acquire(key, TWO, LONG_MS) == Acquired(3)


async def test_an_ended_lease_goes_to_the_next_taker_and_its_holder_cannot_renew_it(
        leases: RedisLeaseStore) -> None:
    key = keys.group_membership(new_group())
    assert await leases.acquire(key, ONE, 100) == Acquired(1)
    await asyncio.sleep(0.2)
    # Still named (FindCoordinator names it only while it is a live gateway).
    assert await leases.holders([key]) == [ONE.node_id]
    # Nobody took it meanwhile: its holder may renew it, with the same token.
    assert await leases.renew([HeldLease(key, 1)], ONE, 100) == [True]
    await asyncio.sleep(0.2)
    assert await leases.acquire(key, TWO, LONG_MS) == Acquired(2)
    assert await leases.renew([HeldLease(key, 1)], ONE, LONG_MS) == [False]
    refused = await leases.acquire(key, ONE, LONG_MS)
    assert isinstance(refused, HeldElsewhere)
    assert refused.node_id == TWO.node_id


async def test_renewals_go_in_batches(leases: RedisLeaseStore, redis_client: redis.Redis) -> None:
    lease_keys = [keys.group_membership(new_group()) for _ in range(2 * BATCH + 7)]
    for key in lease_keys:
        assert await leases.acquire(key, ONE, LONG_MS) == Acquired(1)
    held = [HeldLease(key, 1) for key in lease_keys]
    assert await leases.renew(held, ONE, LONG_MS) == [True] * len(held)
    assert await leases.holders(lease_keys) == [ONE.node_id] * len(held)
    await leases.release(lease_keys, ONE)
    assert await leases.holders(lease_keys) == [None] * len(held)
    redis_client.delete(*lease_keys)


async def test_a_stale_token_cannot_store_membership(leases: RedisLeaseStore,
                                                     group_storage: RedisGroupStorage) -> None:
    group_id = new_group()
    key = keys.group_membership(group_id)
    # Membership stored before leases existed (no token) stays readable and writable.
    first = membership.encode(stable_group(group_id, 3))
    assert await group_storage.save_membership(group_id, 3, first)
    # A gateway holding no lease on the group writes with -1: never stored.
    with pytest.raises(Fenced):
        await group_storage.save_membership(group_id, 4, membership.encode(Group(group_id, generation=4)), -1)
    assert await leases.acquire(key, ONE, 100) == Acquired(1)
    assert await group_storage.save_membership(group_id, 4, membership.encode(stable_group(group_id, 4)), 1)
    await asyncio.sleep(0.2)
    assert await leases.acquire(key, TWO, LONG_MS) == Acquired(2)
    newer = membership.encode(stable_group(group_id, 5))
    assert await group_storage.save_membership(group_id, 5, newer, 2)
    with pytest.raises(Fenced):
        await group_storage.save_membership(group_id, 6, membership.encode(Group(group_id, generation=6)), 1)
    assert await group_storage.load_membership(group_id) == newer


async def test_deleting_a_group_keeps_its_token(leases: RedisLeaseStore,
                                                group_storage: RedisGroupStorage) -> None:
    group_id = new_group()
    key = keys.group_membership(group_id)
    assert await leases.acquire(key, ONE, LONG_MS) == Acquired(1)
    assert await group_storage.save_membership(group_id, 1, membership.encode(stable_group(group_id, 1)), 1)
    await group_storage.delete_group(group_id)
    assert await group_storage.load_membership(group_id) is None
    await leases.release([key], ONE)
    assert await leases.acquire(key, TWO, LONG_MS) == Acquired(2)


async def test_no_commit_of_a_former_coordinator_lands_after_a_later_ones(
        group_storage: RedisGroupStorage, topic_name: str) -> None:
    group_id = new_group()

    async def commit(partition: int, offset: int, token: int | None) -> Exception | None:
        (result,) = await group_storage.commit_offsets(
            group_id, [OffsetCommit(topic_name, partition, offset)], "consumer", token)
        return result

    async def committed(partition: int) -> int:
        (offset,) = await group_storage.fetch_offsets(group_id, [(topic_name, partition)])
        return offset.offset

    # A gateway holding no lease commits with -1: refused even where no stamp is.
    assert isinstance(await commit(0, 1, -1), Fenced)
    # A partition with no stamp yet (commits from before fencing) takes any token.
    assert await commit(0, 1, None) is None
    assert await commit(0, 2, 1) is None
    assert await commit(0, 3, 2) is None
    # Token 1's holder lost the group to token 2's: its commit is refused.
    assert isinstance(await commit(0, 9, 1), Fenced)
    assert await committed(0) == 3
    assert await commit(0, 4, 2) is None
    assert await commit(0, 5, 3) is None
    assert isinstance(await commit(0, 9, 2), Fenced)
    assert await committed(0) == 5
    # Stamps are per partition: where the later coordinator has not committed,
    # the earlier one still may (docs/guarantees.md says so).
    assert await commit(1, 7, 1) is None
    assert await committed(1) == 7


# -- coordinator/ownership.py over the same store ---------------------------------


@pytest.fixture
async def ownership(redis_server: RedisServer) -> AsyncIterator[tuple[Ownership, list[str]]]:
    """An Ownership of group leases lasting 300 ms, not renewing by itself; the keys it lost."""
    owned = Ownership(RedisLeaseStore(redis_server.url), keys.group_membership, 300)
    lost: list[str] = []
    owned.lost = lost.append
    owned._holder = ONE  # as start() sets it, without the renewal task: the tests renew by hand
    yield owned, lost
    await owned.stop()
    await owned.store.close()


async def test_a_lease_past_its_end_on_this_gateways_clock_is_lost_before_use(
        ownership: tuple[Ownership, list[str]]) -> None:
    owned, lost = ownership
    group = new_group()
    assert await owned.acquire(group) == 1
    assert owned.token(group) == 1
    await asyncio.sleep(0.4)  # not renewed: a paused gateway's view when it resumes
    assert owned.token(group) is None
    assert lost == [group]
    assert owned.fence_token(group) == -1
    # Nobody took it meanwhile: taken again with the same token.
    assert await owned.acquire(group) == 1


async def test_renewal_finds_a_lease_another_gateway_took(ownership: tuple[Ownership, list[str]],
                                                          leases: RedisLeaseStore) -> None:
    owned, lost = ownership
    kept, taken = new_group(), new_group()
    assert await owned.acquire(kept) == 1
    assert await owned.acquire(taken) == 1
    await asyncio.sleep(0.4)
    assert await leases.acquire(keys.group_membership(taken), TWO, LONG_MS) == Acquired(2)
    await owned.renew_once()
    assert lost == [taken]
    assert owned.token(kept) == 1
    assert owned.token(taken) is None
    assert await owned.acquire(taken) is None


async def test_idle_leases_are_released_unless_kept(ownership: tuple[Ownership, list[str]],
                                                    leases: RedisLeaseStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    owned, lost = ownership
    busy, idle = new_group(), new_group()
    owned.keep = lambda key: key == busy
    assert await owned.acquire(busy) == 1
    assert await owned.acquire(idle) == 1
    monkeypatch.setattr(ownership_module, "IDLE_RELEASE_S", 0.1)
    await asyncio.sleep(0.2)
    await owned.renew_once()
    assert await leases.holders([keys.group_membership(busy), keys.group_membership(idle)]) == \
        [ONE.node_id, None]
    assert owned.token(busy) == 1
    assert owned.token(idle) is None
    assert lost == []


async def test_a_clean_stop_releases_every_lease_and_takes_no_more(ownership: tuple[Ownership, list[str]],
                                                                   leases: RedisLeaseStore) -> None:
    owned, _ = ownership
    group = new_group()
    assert await owned.acquire(group) == 1
    await owned.stop()
    assert await leases.holders([keys.group_membership(group)]) == [None]
    assert owned.token(group) is None
    # Writes already under way keep their token: they land unless another took the group.
    assert owned.fence_token(group) == 1
    assert await owned.acquire(new_group()) is None
