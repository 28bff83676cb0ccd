"""A quixstreams stateful application with default settings: a running count per key.

Reads the input topic from its start, counts the records of each key in
its state store (RocksDB, backed by a compacted changelog topic the
application creates), and emits ``{"count": n}`` per record to the output
topic under the same key. Run by tests/integration/test_stream_apps.py:

    python quix_count.py BROKER INPUT OUTPUT GROUP STATE_DIR
"""

from __future__ import annotations

import sys

from quixstreams import Application, State


def count(_value: object, state: State) -> dict[str, int]:
    total = int(state.get("count", 0)) + 1
    state.set("count", total)
    return {"count": total}


def main() -> None:
    broker, source, sink, group, state_dir = sys.argv[1:6]
    # Defaults everywhere but where the test needs a place: the input from
    # its start, and a state directory the test can wipe.
    app = Application(broker_address=broker, consumer_group=group, auto_offset_reset="earliest",
                      state_dir=state_dir)
    frame = app.dataframe(app.topic(source, key_deserializer="str", value_deserializer="str"))
    frame = frame.apply(count, stateful=True)
    frame.to_topic(app.topic(sink, key_serializer="str", value_serializer="json"))
    app.run()


if __name__ == "__main__":
    main()
