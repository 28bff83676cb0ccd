"""One worker of ``--workers N`` (gateway/workers.py): a gateway whose settings come from its parent.

The parent writes ``(index, Config)`` pickled to this process's standard
input and closes it; nothing else is read from there.
"""

from __future__ import annotations

import pickle
import sys

from .cli import serve
from .config import Config


def main() -> int:
    index, config = pickle.load(sys.stdin.buffer)
    if not isinstance(index, int) or not isinstance(config, Config):
        print("kafka-redis-gateway worker: expected its settings from the parent on stdin",
              file=sys.stderr)
        return 2
    return serve(config, f"worker {index} ")


if __name__ == "__main__":
    sys.exit(main())
