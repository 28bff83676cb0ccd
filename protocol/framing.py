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


async def read_frame(reader: asyncio.StreamReader, max_size: int) -> bytes | None:
    """Read one frame; None at a clean end of stream between frames."""
    try:
        prefix = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
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
