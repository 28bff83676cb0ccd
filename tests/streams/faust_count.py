"""A faust-streaming worker with a Table and default settings: a running count per key.

Counts the records of each key of the input topic in a Table (in memory,
backed by a compacted changelog topic the app creates, which it reads back
at every start) and sends ``{"count": n}`` per record to the output topic
under the same key. Run by tests/integration/test_stream_apps.py:

    python faust_count.py BROKER INPUT OUTPUT APP_ID DATA_DIR TABLE_FILE

Once a second it also writes the table's contents to TABLE_FILE (JSON), so
the test can see the state a restarted worker recovered.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator

import faust


def build(broker: str, source: str, sink: str, app_id: str, data_dir: str, table_file: str) -> faust.App:
    # Defaults but for where it runs: no web server (tests run side by side)
    # and a data directory the test owns.
    app = faust.App(app_id, broker=f"kafka://{broker}", datadir=data_dir, web_enabled=False)
    counts = app.Table("counts", default=int)
    words = app.topic(source, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    out = app.topic(sink, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    @app.agent(words)
    async def count(stream: AsyncIterator[tuple[bytes, bytes]]) -> None:
        async for key, _value in stream.items():  # type: ignore[attr-defined]
            name = key.decode()
            counts[name] += 1
            await out.send(key=key, value=json.dumps({"count": counts[name]}).encode())

    @app.timer(1.0)
    async def dump() -> None:
        with open(table_file + ".tmp", "w") as out:
            json.dump(dict(counts.items()), out)
        os.replace(table_file + ".tmp", table_file)

    return app


def main() -> None:
    broker, source, sink, app_id, data_dir, table_file = sys.argv[1:7]
    app = build(broker, source, sink, app_id, data_dir, table_file)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
