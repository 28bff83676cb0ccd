"""Redis key names.

Every key of a partition carries the same hash tag, ``{<topic>:<partition>}``,
so the stream, its offset index and its metadata share one Redis Cluster slot
(one script touches them all) while different partitions spread over slots.
Kafka topic names are limited to ``[a-zA-Z0-9._-]``, so they never contain
the braces or colons that would confuse the tag.

An adopted stream (a key that native code already writes, mapped to a topic
partition with the topic config ``redis.stream.keys``) keeps its own name;
its auxiliary keys take the stream's hash tag, so they share its slot too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TOPICS = "kafka:topics"
CLUSTER = "kafka:cluster"
PRODUCER_IDS = "kafka:producer-ids"


def partition_tag(topic: str, partition: int) -> str:
    return f"{{{topic}:{partition}}}"


def stream(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}"


def offset_index(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:idx"


def partition_meta(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:meta"


def producer_state(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:producers"


def latest_by_key(topic: str, partition: int) -> str:
    """Compacted topics: record key -> ID of its latest entry compaction has seen."""
    return f"kafka:{partition_tag(topic, partition)}:keys"


def tombstones(topic: str, partition: int) -> str:
    """Compacted topics: tombstone entry ID scored by when compaction reached it (ms)."""
    return f"kafka:{partition_tag(topic, partition)}:tombstones"


def partition_keys(topic: str, partition: int) -> list[str]:
    """Every key of a partition, in the order the append script takes them."""
    return [
        stream(topic, partition),
        offset_index(topic, partition),
        partition_meta(topic, partition),
        producer_state(topic, partition),
    ]


# Consumer groups (gateway/storage/groups.py). A group's committed offset on a
# partition is the Redis consumer group of the same name on the partition's
# stream; the commit metadata shares the partition's slot.
GROUPS = "kafka:groups"


def partition_commits(topic: str, partition: int) -> str:
    return f"kafka:{partition_tag(topic, partition)}:commits"


def partition_fences(topic: str, partition: int) -> str:
    """Per group, the highest coordinator fencing token that committed on the partition."""
    return f"kafka:{partition_tag(topic, partition)}:fences"


def group_partitions(group: str) -> str:
    """The set of "<topic>:<partition>" a group committed on."""
    return f"kafka:groups:{group}"


def group_membership(group: str) -> str:
    """The group's last stored generation and members (a hash: generation, state),
    and its coordinator's lease (fields lease:*, gateway/storage/leases.py):
    one key, so the membership write checks the lease's fencing token in the
    same Redis Cluster slot whatever the group ID's braces.

    "kafka:group:" never prefixes a "kafka:groups:" key, whatever the group ID.
    """
    return f"kafka:group:{group}"


# -- transactions ----------------------------------------------------------------


# Every transactional ID with state (a hash: ID -> 1), for the timeout sweep
# and ListTransactions; written beside the ID's own scripts (another slot).
TRANSACTIONS = "kafka:txns"


def transaction(transactional_id: str) -> str:
    """A transactional ID's state (a hash; storage/transactions.py), its coordinator's lease beside it.

    "kafka:txn:" prefixes no other key of the gateway's (not "kafka:txns"), whatever the ID.
    """
    return f"kafka:txn:{transactional_id}"


# -- the broker registry ---------------------------------------------------------

# One hash tag for the registry's keys, so its scripts stay in one Cluster
# slot; "{brokers}" has no ":<partition>", so no topic's keys carry it.
BROKERS = "kafka:{brokers}"
# node ID -> the registration (JSON: host, port, rack, instance).
BROKER_REGISTRATIONS = BROKERS
# node ID -> when its lease ends (ms, Redis's clock).
BROKER_LEASES = f"{BROKERS}:leases"
# The counter behind node IDs assigned to gateways started without --node-id.
BROKER_ID_COUNTER = f"{BROKERS}:next-id"


# -- adopted streams ------------------------------------------------------------

# The topic config that maps partitions 0..n-1 onto existing streams, in
# partition order, comma-separated. Partitions past the list (CreatePartitions
# on an adopted topic) get the gateway's own keys.
STREAM_KEYS_CONFIG = "redis.stream.keys"
# Adopting keys in the gateway's namespace would let two topics share keys.
RESERVED_PREFIX = "kafka:"


@dataclass(frozen=True, slots=True)
class PartitionKeys:
    """The Redis keys of one partition; all in one Cluster slot."""

    stream: str
    index: str
    meta: str
    producers: str
    commits: str
    latest: str  # compacted topics: key -> latest entry ID (compact.lua)
    tombstones: str  # compacted topics: tombstones compaction reached
    fences: str  # per group, the highest coordinator fencing token that committed here

    @property
    def for_append(self) -> list[str]:
        """The keys in the order the append script takes them."""
        return [self.stream, self.index, self.meta, self.producers]

    @property
    def auxiliary(self) -> list[str]:
        """Every key but the stream: what the gateway alone writes."""
        return [self.index, self.meta, self.producers, self.commits, self.latest, self.tombstones,
                self.fences]

    @property
    def for_compaction(self) -> list[str]:
        """The keys in the order the compaction script takes them."""
        return [self.stream, self.meta, self.latest, self.tombstones]


def own_partition_keys(topic: str, partition: int) -> PartitionKeys:
    return PartitionKeys(stream(topic, partition), offset_index(topic, partition),
                         partition_meta(topic, partition), producer_state(topic, partition),
                         partition_commits(topic, partition), latest_by_key(topic, partition),
                         tombstones(topic, partition), partition_fences(topic, partition))


def hash_tag(key: str) -> str | None:
    """What Redis Cluster hashes of ``key`` when it has a non-empty ``{tag}``."""
    start = key.find("{")
    if start == -1:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1:end]


def adopted_partition_keys(stream_key: str) -> PartitionKeys:
    # A key without a tag hashes whole, so "{<key>}" puts the auxiliary keys
    # in its slot; a tagged key lends its tag. The stream key itself follows
    # the tag so two adopted streams with one tag never share auxiliary keys.
    base = f"kafka:{{{hash_tag(stream_key) or stream_key}}}:adopted:{stream_key}"
    return PartitionKeys(stream_key, f"{base}:idx", f"{base}:meta", f"{base}:producers",
                         f"{base}:commits", f"{base}:keys", f"{base}:tombstones", f"{base}:fences")


def adopted_streams(configs: Mapping[str, str]) -> tuple[str, ...]:
    """The stream keys a topic's configs adopt, in partition order."""
    value = configs.get(STREAM_KEYS_CONFIG, "")
    return tuple(key.strip() for key in value.split(",")) if value.strip() else ()


def adoption_problem(stream_keys: Sequence[str]) -> str | None:
    """Why these keys cannot be adopted (before asking Redis), or None."""
    if not stream_keys:
        return f"{STREAM_KEYS_CONFIG} names no stream"
    if len(set(stream_keys)) != len(stream_keys):
        return f"{STREAM_KEYS_CONFIG} names a stream twice"
    for key in stream_keys:
        if not key:
            return f"{STREAM_KEYS_CONFIG} has an empty stream key"
        if key.startswith(RESERVED_PREFIX):
            return f"stream key {key!r} is in the gateway's own namespace {RESERVED_PREFIX!r}"
        if hash_tag(key) is None and ("{" in key or "}" in key):
            # Its auxiliary keys could not be given the key's slot.
            return f"stream key {key!r} has braces but no hash tag"
    return None


def is_compacted(configs: Mapping[str, str]) -> bool:
    """Whether a topic's cleanup.policy includes compact."""
    return "compact" in configs.get("cleanup.policy", "delete").split(",")


class StreamKeyMap:
    """Which topics live (partly) in adopted streams, as of the last registry read.

    The storage layer feeds it every topic it decodes from the registry;
    handlers look a topic up before touching its partitions, so the map is
    as fresh as the lookup that preceded the operation.
    """

    def __init__(self) -> None:
        self._adopted: dict[str, tuple[str, ...]] = {}
        self._compacted: set[str] = set()

    def learn(self, topic: str, configs: Mapping[str, str]) -> None:
        if is_compacted(configs):
            self._compacted.add(topic)
        else:
            self._compacted.discard(topic)
        adopted = adopted_streams(configs)
        if adopted:
            self._adopted[topic] = adopted
        else:
            self._adopted.pop(topic, None)

    def forget(self, topic: str) -> None:
        self._adopted.pop(topic, None)
        self._compacted.discard(topic)

    def compacted(self, topic: str) -> bool:
        """Whether the topic's cleanup.policy compacts, as of the last registry read."""
        return topic in self._compacted

    def adopted(self) -> Mapping[str, tuple[str, ...]]:
        return self._adopted

    def partition(self, topic: str, partition: int) -> PartitionKeys:
        adopted = self._adopted.get(topic)
        if adopted is not None and partition < len(adopted):
            return adopted_partition_keys(adopted[partition])
        return own_partition_keys(topic, partition)

    def stream(self, topic: str, partition: int) -> str:
        adopted = self._adopted.get(topic)
        if adopted is not None and partition < len(adopted):
            return adopted[partition]
        return stream(topic, partition)


# -- share groups (gateway/storage/shares.py) ------------------------------------


def share_held(topic: str, partition: int, group: str) -> str:
    """What a share group's Kafka members hold on a partition (share_acquire.lua); in its slot."""
    return f"kafka:{partition_tag(topic, partition)}:share:{group}"


def share_group(group: str) -> str:
    """A share group's members and epoch (share_heartbeat.lua) and configs, in a slot of its own."""
    return f"kafka:share-group:{{{group}}}"


# Every share group that ever had a member (ListGroups, DeleteGroups).
SHARE_GROUPS = "kafka:share-groups"


def share_group_partitions(group: str) -> str:
    """The "<topic>:<partition>" a share group fetched from (DeleteGroups removes its state there)."""
    return f"{share_group(group)}:partitions"
