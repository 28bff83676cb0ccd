"""The topics in a consumer's subscription (Kafka's ConsumerProtocolSubscription).

The coordinator treats member metadata as opaque bytes, except that
OffsetDelete must refuse partitions of topics an active consumer group
subscribes to (GROUP_SUBSCRIBED_TO_TOPIC). Every version of the subscription
starts with the same prefix, which is all this reads: version (int16), then
the topics as an array (int32 count) of strings (int16 length + UTF-8).
"""

from __future__ import annotations

import struct

CONSUMER_PROTOCOL_TYPE = "consumer"


class MalformedSubscription(ValueError):
    pass


def subscribed_topics(metadata: bytes) -> set[str]:
    try:
        (count,) = struct.unpack_from(">i", metadata, 2)
        position, topics = 6, set()
        for _ in range(max(count, 0)):
            (length,) = struct.unpack_from(">h", metadata, position)
            position += 2
            name = metadata[position:position + length]
            if len(name) != length:
                raise MalformedSubscription("topic name runs past the end")
            topics.add(name.decode())
            position += length
        return topics
    except (struct.error, UnicodeDecodeError) as exc:
        raise MalformedSubscription(str(exc)) from exc
