"""The Redis to talk to, for subcommands that work on Redis directly (inspect, adopt)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .config import default_data_dir, parse_redis_url
from .embedded import running_url


def add_redis_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default=os.environ.get("KRG_REDIS_URL"),
                        help="redis://HOST:PORT/DB [env KRG_REDIS_URL]; default: the embedded "
                             "server of a gateway running with --data-dir")
    parser.add_argument("--data-dir", default=os.environ.get("KRG_DATA_DIR", str(default_data_dir())),
                        help="the data directory of a gateway running its embedded server "
                             "[env KRG_DATA_DIR]")


def redis_url(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    if args.redis_url:
        try:
            return parse_redis_url(args.redis_url)
        except ValueError as exc:
            parser.error(f"--redis-url (or KRG_REDIS_URL): {exc}")
    url = running_url(Path(args.data_dir))
    if not url:
        parser.error(f"no --redis-url, and no embedded server is running with data dir {args.data_dir}")
    return url
