"""The Lua in ``lua/`` as one Redis Functions library, called with FCALL in pipelines.

Why functions rather than EVALSHA: scripts live in Redis's script cache,
which a restart, a failover or SCRIPT FLUSH empties. Every call then failed
with NOSCRIPT and was re-sent after loading, and a re-sent append landed
after appends that later requests had already sent: records out of order
(#12). A function library is data: Redis keeps it in its RDB and AOF and
replicates it, so it survives a restart or failover of a persistent Redis.

Each ``lua/*.lua`` file but the prelude is the body of one function, called
with (KEYS, ARGV) as EVAL called it; the prelude's local functions sit once
at the library's top level, shared by all. The library's and functions'
names carry a version, a hash of every source, so gateways of different
versions on one Redis each call their own and never replace each other's
(FUNCTION LOAD without REPLACE; a library of the same name is the same code).

When the library is missing all the same (FUNCTION FLUSH, a Redis without
persistence restarted), FCALL fails with "Function not found" and runs
nothing. The library is then loaded again; calls that may be repeated are
re-sent, appends are not: a re-sent append could land after appends sent
later, so their callers answer a retriable error meaning "not written".
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from .errors import is_missing_function
from .multiplex import MultiplexedConnection
from .redis_cluster import ClusterConnection

# Any of these runs function calls: the multiplexed connection for the hot
# path, redis-py for everything that may block a connection (WAITAOF), and
# on a Redis Cluster the connection that routes each call to its slot's node.
Client = aioredis.Redis | MultiplexedConnection | ClusterConnection

# Functions several bodies share, at the library's top level.
PRELUDE = "stream_info.lua"
# Functions that only read, flagged no-writes: Redis lets them run on
# replicas and while it is out of memory.
READ_ONLY = frozenset({"cursor.lua", "epochs.lua", "offsets.lua", "offset_for_time.lua",
                       "committed_offset.lua"})


@dataclass(frozen=True, slots=True)
class LuaFunction:
    """One function of the library, named after its file (``append.lua``: ``krg_<version>_append``)."""

    file: str

    @property
    def name(self) -> str:
        return library().function_names[self.file]


@dataclass(frozen=True, slots=True)
class Library:
    name: str
    source: str
    function_names: dict[str, str]


@dataclass(frozen=True, slots=True)
class ScriptCall:
    script: LuaFunction
    keys: Sequence[str]
    args: Sequence[Any]

    def command(self) -> tuple[Any, ...]:
        return ("FCALL", self.script.name, len(self.keys), *self.keys, *self.args)


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text()


def _bodies() -> dict[str, str]:
    directory = resources.files(__package__).joinpath("lua")
    return {entry.name: entry.read_text() for entry in sorted(directory.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".lua") and entry.name != PRELUDE}


@functools.cache
def library() -> Library:
    """The library built from every file in ``lua/``, named by their hash."""
    prelude, bodies = _read(PRELUDE), _bodies()
    digest = hashlib.sha1(prelude.encode())
    for file, body in bodies.items():
        digest.update(f"\0{file}\0{file in READ_ONLY}\0".encode() + body.encode())
    name = f"krg_{digest.hexdigest()[:16]}"
    function_names = {file: f"{name}_{file.removesuffix('.lua')}" for file in bodies}
    parts = [f"#!lua name={name}", prelude]
    for file, body in bodies.items():
        flags = ", flags={'no-writes'}" if file in READ_ONLY else ""
        parts.append(f"redis.register_function{{function_name='{function_names[file]}', "
                     f"callback=function(KEYS, ARGV)\n{body}\nend{flags}}}")
    return Library(name, "\n".join(parts), function_names)


def function(file: str) -> LuaFunction:
    """The function whose body is ``lua/<file>``."""
    if file not in library().function_names:
        raise KeyError(f"no function from {file}")
    return LuaFunction(file)


async def load_library(client: Client) -> None:
    """FUNCTION LOAD the library, unless this version is loaded already."""
    command = ("FUNCTION", "LOAD", library().source)
    if not isinstance(client, aioredis.Redis):
        (reply,) = await client.execute([command])
    else:
        try:
            reply = await client.execute_command(*command)  # type: ignore[no-untyped-call]
        except redis_errors.ResponseError as exc:
            reply = exc
    if isinstance(reply, Exception) and "already exists" not in str(reply):
        raise reply


async def run_calls(
    client: Client, calls: Sequence[ScriptCall], trailer: Sequence[Any] = (),
    on_written: Callable[[], None] | None = None, *, resend_missing: bool = True,
    replay: bool = False,
) -> list[Any]:
    """Run function calls in one pipeline; replies (or exceptions) in order.

    ``trailer`` is one more command for the end of the same pipeline, hence
    the same connection: WAITAOF and WAIT wait for the writes made before
    them on their own connection. Its reply comes last. ``on_written``: see
    MultiplexedConnection.execute (redis-py's pipelines never call it).
    Calls that found their function missing reload the library; with
    ``resend_missing`` they are sent again, otherwise their replies stay
    the "Function not found" errors (see the module's docstring).
    ``replay``: see MultiplexedConnection.execute (redis-py's pipelines ignore it).
    """
    replies = await _pipeline(client, calls, trailer, on_written, replay)
    missing = [i for i, reply in enumerate(replies[: len(calls)]) if is_missing_function(reply)]
    if missing:
        await load_library(client)
        if resend_missing:
            retried = await _pipeline(client, [calls[i] for i in missing], trailer, replay=replay)
            for i, reply in zip(missing, retried, strict=False):
                replies[i] = reply
            if trailer:
                replies[-1] = retried[-1]
    return replies


async def _pipeline(
    client: Client, calls: Sequence[ScriptCall], trailer: Sequence[Any],
    on_written: Callable[[], None] | None = None, replay: bool = False,
) -> list[Any]:
    commands = [call.command() for call in calls]
    if trailer:
        commands.append(tuple(trailer))
    if not isinstance(client, aioredis.Redis):
        return await client.execute(commands, on_written=on_written, replay=replay)
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return list(await pipe.execute(raise_on_error=False))
