"""One client connection: read frames, dispatch, answer in order.

Like a Kafka broker, a connection handles one request at a time and writes
its response before taking the next, so responses come back in request order
and one producer's pipelined batches reach a partition in the order sent.
Many connections run concurrently on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from kafka_redis_gateway.protocol.framing import FrameError, frame, read_frame
from kafka_redis_gateway.protocol.messages import (
    MalformedRequest,
    decode_request,
    encode_response,
    peek_header,
    request_schema,
)

from .context import RequestContext
from .handlers import api_versions

if TYPE_CHECKING:
    from .server import Gateway

log = logging.getLogger(__name__)


class CloseConnection(Exception):
    """The request cannot be answered; Kafka closes the connection."""


class Connection:
    def __init__(
        self, gateway: Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.gateway = gateway
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.closing = False
        self.busy = False

    async def serve(self) -> None:
        try:
            while not self.closing:
                request = await read_frame(self.reader, self.gateway.config.max_request_size)
                if request is None:
                    break
                self.busy = True
                response = await self.handle(request)
                if response is not None:
                    self.writer.write(frame(response))
                    await self.writer.drain()
                self.busy = False
        except (FrameError, CloseConnection) as exc:
            log.warning("closing connection from %s: %s", self.peer, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    async def handle(self, request: bytes) -> bytes | None:
        try:
            api_key, api_version, correlation_id = peek_header(request)
        except MalformedRequest as exc:
            raise CloseConnection(str(exc)) from exc
        route = self.gateway.router.get(api_key)
        if route is None:
            raise CloseConnection(f"unsupported API key {api_key}")
        if not route.supports(api_version):
            if api_key == api_versions.API_KEY:
                # KIP-511: answer a too-new ApiVersions in v0 so the client can
                # learn our range and retry.
                return encode_response(correlation_id, api_versions.unsupported_version(route))
            raise CloseConnection(f"unsupported version {api_version} of API key {api_key}")
        schema = request_schema(api_key, api_version)
        assert schema is not None  # the router checked every routed version
        try:
            header, body = decode_request(request, schema)
        except MalformedRequest as exc:
            raise CloseConnection(str(exc)) from exc
        context = RequestContext(
            header=header,
            config=self.gateway.config,
            storage=self.gateway.storage,
            broker=self.gateway.broker,
            router=self.gateway.router,
            peer=self.peer,
            coordinator=self.gateway.coordinator,
        )
        try:
            response = await route.handler(context, body)
        except Exception as exc:
            log.exception("api %d v%d from %s failed", api_key, api_version, self.peer)
            raise CloseConnection(f"internal error: {exc!r}") from exc
        if response is None:
            return None
        return encode_response(correlation_id, response)
