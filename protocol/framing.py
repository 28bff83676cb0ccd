"""Size-prefixed Kafka frames on an asyncio stream.

Every Kafka request and response is a big-endian int32 size followed by that
many bytes. The reader enforces a maximum size (Kafka's
``socket.request.max.bytes``) before allocating anything, so a peer that
announces a huge frame is refused instead of exhausting memory.
"""

from __future__ import annotations

import asyncio
import struct

_SIZE = struct.Struct(">i")


class FrameError(Exception):
    """The peer sent a frame we refuse to read; the connection must close."""


class FrameTimeout(FrameError):
    """A frame was begun and not finished in time (a stalled or hostile peer)."""


async def read_frame(
    reader: asyncio.StreamReader, max_size: int, timeout: float | None = None
) -> bytes | None:
    """Read one frame; None at a clean end of stream between frames.

    Waiting for a frame to begin is unbounded (idleness is the caller's
    business), but once its first byte has arrived the rest must arrive
    within ``timeout`` seconds, so half a frame cannot hold a reader forever.
    """
    begun = await read_frame_size(reader, max_size, timeout)
    if begun is None:
        return None
    size, deadline = begun
    return await read_frame_body(reader, size, deadline, timeout)


async def read_frame_size(
    reader: asyncio.StreamReader, max_size: int, timeout: float | None = None
) -> tuple[int, float | None] | None:
    """Read a frame's size prefix: (size, the loop time by which the body
    must be read, ``timeout`` after the first byte); None at a clean end of
    stream.

    A reader that must find memory for the frame before reading the body
    (the gateway's request budget) does so between this and
    ``read_frame_body``, and gives the client a new deadline if it waited.
    """
    first = await reader.read(1)
    if not first:
        return None
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            prefix = first + await reader.readexactly(3)
    except TimeoutError as exc:
        raise FrameTimeout(f"frame not complete within {timeout:g} s of its first byte") from exc
    except asyncio.IncompleteReadError as exc:
        raise FrameError("connection closed inside a frame size") from exc
    (size,) = _SIZE.unpack(prefix)
    if size < 0 or size > max_size:
        raise FrameError(f"frame size {size} outside 0..{max_size}")
    return int(size), deadline


async def read_frame_body(
    reader: asyncio.StreamReader, size: int, deadline: float | None, timeout: float | None = None
) -> bytes:
    """Read the ``size`` bytes after a size prefix, by ``deadline`` (loop time;
    ``timeout`` is what it was set from, for the error)."""
    try:
        async with asyncio.timeout_at(deadline):
            return await reader.readexactly(size)
    except TimeoutError as exc:
        raise FrameTimeout(f"frame not complete within {timeout:g} s of its first byte") from exc
    except asyncio.IncompleteReadError as exc:
        raise FrameError("connection closed inside a frame") from exc


def frame(payload: bytes) -> bytes:
    """Prefix a payload with its size."""
    return _SIZE.pack(len(payload)) + payload
