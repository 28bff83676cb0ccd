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
    first = await reader.read(1)
    if not first:
        return None
    try:
        async with asyncio.timeout(timeout):
            return await _rest_of_frame(reader, first, max_size)
    except TimeoutError as exc:
        raise FrameTimeout(f"frame not complete within {timeout:g} s of its first byte") from exc


async def _rest_of_frame(reader: asyncio.StreamReader, first: bytes, max_size: int) -> bytes:
    try:
        prefix = first + await reader.readexactly(3)
    except asyncio.IncompleteReadError as exc:
        raise FrameError("connection closed inside a frame size") from exc
    (size,) = _SIZE.unpack(prefix)
    if size < 0 or size > max_size:
        raise FrameError(f"frame size {size} outside 0..{max_size}")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise FrameError("connection closed inside a frame") from exc


def frame(payload: bytes) -> bytes:
    """Prefix a payload with its size."""
    return _SIZE.pack(len(payload)) + payload
