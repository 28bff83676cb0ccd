"""A group's coordinator as a lease with a fencing token, across gateways (issue #13).

Three gateway processes on a Redis of this module's own, driven over the
wire: FindCoordinator names the lease holder from every gateway, ownership
sticks to its holder, a clean stop hands the group over at once, and a
coordinator paused (SIGSTOP) past its lease cannot write the group after
another gateway took it over. The SIGKILL of a coordinator under a real
consumer group is test_cluster.py's
test_a_group_continues_on_another_gateway_when_its_coordinator_is_killed.
The Redis side of leases and tokens is test_coordinator_leases.py.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis
from kio.schema.errors import ErrorCode

from tests.integration.test_cluster import create_topic, wait_for_brokers
from tests.integration.test_groups_protocol import (
    FIND_COORDINATOR,
    commit_errors,
    describe,
    heartbeat,
    join,
    offset_commit,
    sync,
)
from tests.integration.test_protocol import Wire, build, request_types
from tests.servers import GatewayProcess, RedisServer, module_redis

LEASE_MS = 1500
# Kafka's smallest session timeout (group.min.session.timeout.ms).
SESSION_MS = 6000


own_redis = module_redis("own_redis")


@pytest.fixture
def gateways(own_redis: RedisServer, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    own_redis.client().flushall()
    started = [GatewayProcess(own_redis.url, log_path=tmp_path / f"gateway-{n}.log",
                              extra_args=["--broker-lease-ms", str(LEASE_MS)]).start()
               for n in range(3)]
    for gateway in started:
        wait_for_brokers(gateway.bootstrap, {gateway.bootstrap for gateway in started})
    yield started
    for gateway in started:
        if gateway.process is not None and gateway.process.poll() is None:
            os.kill(gateway.process.pid, signal.SIGCONT)  # a test that failed while it was paused
        gateway.stop()


def coordinator_port(bootstrap: str, group: str) -> int:
    with closing(Wire(bootstrap)) as wire:
        answer = wire.call(build(request_types(FIND_COORDINATOR, 3).FindCoordinatorRequest,
                                 key=group, key_type=0))
    assert answer.error_code == ErrorCode.none, answer
    return int(answer.port)


def answers_everywhere(gateways: list[GatewayProcess], group: str) -> set[int]:
    return {coordinator_port(gateway.bootstrap, group) for gateway in gateways}


def one_answer(gateways: list[GatewayProcess], group: str) -> set[int]:
    """Every gateway's FindCoordinator answer, once they agree.

    Without a lease the answer is computed from each gateway's view, and on
    a loaded machine a late renewal can drop a live gateway from another's
    view for a moment (test_cluster.py saw it), so agreement is waited for.
    """
    until(lambda: len(answers_everywhere(gateways, group)) == 1, 15, "every gateway to agree")
    return answers_everywhere(gateways, group)


def stable_member(wire: Wire, group: str) -> tuple[str, int]:
    """A member alone in a new group, with the shortest session Kafka allows: (member ID, generation)."""
    first = wire.call(join(group, session=SESSION_MS))
    assert first.error_code == ErrorCode.member_id_required
    joined = wire.call(join(group, first.member_id, session=SESSION_MS))
    assert joined.error_code == ErrorCode.none
    synced = wire.call(sync(group, joined.member_id, joined.generation_id, {joined.member_id: b"A"}))
    assert synced.error_code == ErrorCode.none
    return joined.member_id, joined.generation_id


def lease(client: redis.Redis, group: str) -> tuple[int, int]:
    """The group's lease in Redis: (holder's node ID, fencing token)."""
    node, token = client.hmget(f"kafka:group:{group}", "lease:node", "lease:token")
    return int(node or -1), int(token or 0)


def stored_generation(client: redis.Redis, group: str) -> tuple[int, list[str]]:
    state: Any = client.hget(f"kafka:group:{group}", "state")
    stored = json.loads(state)
    return int(stored["generation"]), [member["id"] for member in stored["members"]]


def committed(client: redis.Redis, topic: str, partition: int, group: str) -> int:
    value: Any = client.hget(f"kafka:{{{topic}:{partition}}}:commits", group)
    return int(value.split(b":", 1)[0])


def node_of(gateway: GatewayProcess, bootstrap: str) -> int:
    from tests.integration.test_cluster import cluster_metadata
    metadata = cluster_metadata(bootstrap)
    (node,) = [b.id for b in metadata.brokers.values() if b.port == gateway.port]
    return int(node)


def until(check: Callable[[], bool], timeout: float, what: str,
          every: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        every()
        time.sleep(0.2)


def test_find_coordinator_names_the_lease_holder_everywhere_and_ownership_sticks(
        gateways: list[GatewayProcess], own_redis: RedisServer) -> None:
    group = "sticky"
    client = own_redis.client()
    # No lease yet: every gateway names the same preferred gateway.
    (preferred,) = one_answer(gateways, group)
    # A member that reaches another gateway first makes it the owner (no
    # other gateway's lease runs), and every gateway names it from then on.
    holder = next(g for g in gateways if g.port != preferred)
    with closing(Wire(holder.bootstrap)) as wire:
        member_id, generation = stable_member(wire, group)
    assert answers_everywhere(gateways, group) == {holder.port}
    assert lease(client, group) == (node_of(holder, gateways[0].bootstrap), 1)
    with closing(Wire(next(g for g in gateways if g.port == preferred).bootstrap)) as other:
        assert other.call(heartbeat(group, member_id, generation)).error_code == ErrorCode.not_coordinator
        # Described only by its coordinator, as Kafka's brokers do.
        (elsewhere,) = other.call(describe(group)).groups
        assert elsewhere.error_code == ErrorCode.not_coordinator
    with closing(Wire(holder.bootstrap)) as wire:
        (described,) = wire.call(describe(group)).groups
        assert (described.error_code, described.group_state) == (ErrorCode.none, "Stable")
    # A clean stop releases the lease: the group moves at once, in its generation.
    gateways.remove(holder)
    holder.stop(signal.SIGTERM)
    assert lease(client, group)[0] == -1
    remaining = {g.bootstrap for g in gateways}
    for gateway in gateways:
        wait_for_brokers(gateway.bootstrap, remaining)
    (successor,) = one_answer(gateways, group)
    with closing(Wire(next(g for g in gateways if g.port == successor).bootstrap)) as wire:
        assert wire.call(heartbeat(group, member_id, generation)).error_code == ErrorCode.none
    assert lease(client, group)[1] == 2


def test_a_paused_coordinator_cannot_write_the_group_after_losing_its_lease(
        gateways: list[GatewayProcess], own_redis: RedisServer) -> None:
    group, topic = "paused", "paused-topic"
    client = own_redis.client()
    create_topic(gateways[0].bootstrap, topic)
    (port,) = one_answer(gateways, group)
    (paused,) = [g for g in gateways if g.port == port]
    others = [g for g in gateways if g is not paused]
    assert paused.process is not None
    with closing(Wire(paused.bootstrap)) as at_paused:
        member_id, generation = stable_member(at_paused, group)
        commit = offset_commit(group, topic, {0: 1}, generation=generation, member_id=member_id)
        assert commit_errors(at_paused.call(commit)) == [ErrorCode.none]
        # Paused right after the member's last word to it: when it resumes,
        # the member's session there (6 s) has ended, so it removes the member
        # and stores the group Empty, unless Redis refuses its stale token.
        os.kill(paused.process.pid, signal.SIGSTOP)
        paused_at = time.monotonic()
        try:
            remaining = {g.bootstrap for g in others}
            for gateway in others:
                wait_for_brokers(gateway.bootstrap, remaining)
            # Every live gateway names the same new coordinator ...
            (successor_port,) = one_answer(others, group)
            (successor,) = [g for g in others if g.port == successor_port]
            with closing(Wire(successor.bootstrap)) as at_successor:
                # ... which takes the group over once the paused one's lease ends,
                # with the member in its generation (loaded from Redis).
                until(lambda: at_successor.call(heartbeat(group, member_id, generation)).error_code
                      == ErrorCode.none, 15, "the successor to take the group")
                assert lease(client, group)[1] == 2
                commit = offset_commit(group, topic, {0: 2}, generation=generation, member_id=member_id)
                assert commit_errors(at_successor.call(commit)) == [ErrorCode.none]

                def keep_alive() -> None:
                    assert at_successor.call(heartbeat(group, member_id, generation)).error_code == \
                        ErrorCode.none

                until(lambda: time.monotonic() - paused_at > SESSION_MS / 1000 + 2, 30,
                      "the member's session at the paused gateway to pass", keep_alive)
                os.kill(paused.process.pid, signal.SIGCONT)
                # It resumes with overdue timers; give it time to act on them.
                resumed = time.monotonic()
                until(lambda: time.monotonic() - resumed > 3, 10, "the resumed gateway", keep_alive)
                # Its clients are told it no longer coordinates the group ...
                assert at_paused.call(heartbeat(group, member_id, generation)).error_code == \
                    ErrorCode.not_coordinator
                commit = offset_commit(group, topic, {0: 9}, generation=generation, member_id=member_id)
                assert commit_errors(at_paused.call(commit)) == [ErrorCode.not_coordinator]
                keep_alive()
        finally:
            os.kill(paused.process.pid, signal.SIGCONT)
    # ... and what it tried to write did not land: the group is as its successor keeps it.
    assert stored_generation(client, group) == (generation, [member_id])
    assert committed(client, topic, 0, group) == 2
    assert lease(client, group) == (node_of(successor, others[0].bootstrap), 2)
    # Once back in the cluster, it names the holder too: ownership stays put.
    everyone = {g.bootstrap for g in gateways}
    wait_for_brokers(paused.bootstrap, everyone)
    assert answers_everywhere(gateways, group) == {successor.port}
