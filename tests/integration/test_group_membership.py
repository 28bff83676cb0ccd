"""Stored group membership (docs/mapping.md, ``kafka:group:<group>``) on a real Redis.

The wire-level restart test is test_groups_protocol.py; these check the
storage rule that makes background stores safe and the stored format.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis
from kafka_redis_gateway.gateway.coordinator import membership
from kafka_redis_gateway.gateway.coordinator.group import Group
from kafka_redis_gateway.gateway.storage.groups import RedisGroupStorage

from tests.servers import RedisServer
from tests.unit.test_group_membership import stable_group


@pytest.fixture
async def group_storage(redis_server: RedisServer) -> AsyncIterator[RedisGroupStorage]:
    store = RedisGroupStorage(redis_server.url)
    yield store
    await store.close()


async def test_an_older_generation_never_replaces_a_newer_one(group_storage: RedisGroupStorage,
                                                              redis_client: redis.Redis) -> None:
    group_id = f"g-{uuid.uuid4().hex[:8]}"
    newer = membership.encode(stable_group(group_id, 7))
    assert await group_storage.save_membership(group_id, 7, newer)
    older = membership.encode(Group(group_id, generation=6))
    assert not await group_storage.save_membership(group_id, 6, older)
    assert await group_storage.load_membership(group_id) == newer
    assert redis_client.hget(f"kafka:group:{group_id}", "generation") == b"7"
    emptied = membership.encode(Group(group_id, generation=8))
    assert await group_storage.save_membership(group_id, 8, emptied)
    assert await group_storage.load_membership(group_id) == emptied
    await group_storage.delete_group(group_id)
    assert await group_storage.load_membership(group_id) is None
