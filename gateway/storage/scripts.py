"""Lua scripts from ``lua/``, called by SHA in pipelines.

redis-py's Script objects check SCRIPT EXISTS before every pipeline, which
would cost a round trip per produce request. Here each script's SHA is known
up front and scripts are (re)loaded only when Redis answers NOSCRIPT (after a
restart or SCRIPT FLUSH); only the calls that failed are sent again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from .multiplex import MultiplexedConnection

# Either client runs script calls: the multiplexed connection for the hot
# path, redis-py for everything that may block a connection (WAITAOF).
Client = aioredis.Redis | MultiplexedConnection

# Functions several scripts share; prepended to each script that needs them.
PRELUDE = "stream_info.lua"


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str, *, prelude: bool = False) -> LuaScript:
        source = _read(name)
        if prelude:
            source = _read(PRELUDE) + "\n" + source
        return cls(name, source, hashlib.sha1(source.encode()).hexdigest())


@dataclass(frozen=True, slots=True)
class ScriptCall:
    script: LuaScript
    keys: Sequence[str]
    args: Sequence[Any]


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text()


async def run_calls(
    client: Client, calls: Sequence[ScriptCall], trailer: Sequence[Any] = (),
    on_written: Callable[[], None] | None = None,
) -> list[Any]:
    """Run script calls in one pipeline; replies (or exceptions) in order.

    ``trailer`` is one more command for the end of the same pipeline, hence
    the same connection: WAITAOF and WAIT wait for the writes made before
    them on their own connection. Its reply comes last. ``on_written``: see
    MultiplexedConnection.execute (redis-py's pipelines never call it).
    A NOSCRIPT retry goes out when its reply comes; callers' retries keep
    the order of their first attempts, as their replies come in that order.
    """
    replies = await _pipeline(client, calls, trailer, on_written)
    missing = [i for i, reply in enumerate(replies[: len(calls)])
               if isinstance(reply, redis_errors.NoScriptError)]
    if missing:
        for script in {calls[i].script for i in missing}:
            if isinstance(client, MultiplexedConnection):
                (loaded,) = await client.execute([("SCRIPT", "LOAD", script.source)])
                if isinstance(loaded, Exception):
                    raise loaded
            else:
                await client.script_load(script.source)
        retried = await _pipeline(client, [calls[i] for i in missing], trailer)
        for i, reply in zip(missing, retried, strict=False):
            replies[i] = reply
        if trailer:
            replies[-1] = retried[-1]
    return replies


async def _pipeline(
    client: Client, calls: Sequence[ScriptCall], trailer: Sequence[Any],
    on_written: Callable[[], None] | None = None,
) -> list[Any]:
    if isinstance(client, MultiplexedConnection):
        commands: list[Sequence[Any]] = [
            ("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args) for call in calls]
        if trailer:
            commands.append(trailer)
        return await client.execute(commands, on_written=on_written)
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    if trailer:
        pipe.execute_command(*trailer)
    return list(await pipe.execute(raise_on_error=False))
