"""Share-group partition assignment, as Kafka's SimpleAssignor (KIP-932, Kafka 4.x).

Partitions spread over the members subscribed to their topic; a partition is
shared by several members only when its topic has more subscribers than
partitions (each then gets ceil(subscribers / partitions) members). Every
member gets at most its fair share, and keeps what it had before where that
fits, so a rebalance moves as little as it can.

A pure function of the membership, the topics' partition counts and the
previous assignment, all read from Redis: every gateway computes the same.
Work is O(members + partitions) per topic; the total of assigned pairs is at
most max(members, partitions) + partitions per topic, whatever is asked.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

TopicPartition = tuple[str, int]


def assign(members: Mapping[str, Sequence[str]], partition_counts: Mapping[str, int],
           previous: Mapping[str, Sequence[TopicPartition]],
           ) -> dict[str, list[TopicPartition]]:
    """Each member's partitions (sorted), topic by topic in name order."""
    result: dict[str, list[TopicPartition]] = {member: [] for member in members}
    for topic in sorted({topic for topics in members.values() for topic in topics}):
        count = partition_counts.get(topic, 0)
        subscribers = sorted(member for member, topics in members.items() if topic in topics)
        if count <= 0 or not subscribers:
            continue  # a topic that does not exist (yet) assigns nothing, as Kafka's metadata would
        kept = {member: [p for t, p in previous.get(member, ()) if t == topic] for member in subscribers}
        for member, partitions in _assign_topic(subscribers, count, kept).items():
            result[member].extend((topic, partition) for partition in partitions)
    return {member: sorted(partitions) for member, partitions in result.items()}


def _assign_topic(subscribers: Sequence[str], count: int,
                  previous: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    # Members per partition: one, or more when there are more members than partitions.
    sharing = max(1, -(-len(subscribers) // count))
    # The most partitions one member takes, so that every slot has a taker.
    quota = -(-count * sharing // len(subscribers))
    holders: list[list[str]] = [[] for _ in range(count)]
    taken: dict[str, list[int]] = {member: [] for member in subscribers}
    for member in subscribers:  # stickiness: keep what was held, within both limits
        for partition in sorted(set(previous.get(member, ()))):
            if 0 <= partition < count and len(holders[partition]) < sharing and len(taken[member]) < quota:
                holders[partition].append(member)
                taken[member].append(partition)
    loads = [(len(taken[member]), member) for member in subscribers]
    heapq.heapify(loads)
    for partition in range(count):  # fill the free slots, least-loaded member first
        skipped = []
        while len(holders[partition]) < sharing and loads:
            load, member = heapq.heappop(loads)
            if member in holders[partition]:
                skipped.append((load, member))
                continue
            holders[partition].append(member)
            taken[member].append(partition)
            heapq.heappush(loads, (load + 1, member))
        for entry in skipped:
            heapq.heappush(loads, entry)
    return taken
