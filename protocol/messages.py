"""Request and response codecs built on kio's generated message entities.

kio generates one frozen dataclass per API, version and direction from
Kafka's own JSON message definitions, with a native (compiled) reader. This
module adds only what the entities do not cover: the request header (whose
version follows from the body's flexibility), and the response header.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

from kio.index import KioIndexError, load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer
from kio.serial.readers import (
    read_nullable_legacy_string,
    read_unsigned_varint,
)

from .prescan import check_body

_HEADER_PREFIX = struct.Struct(">hhi")


class MalformedRequest(Exception):
    """The request bytes do not parse; Kafka closes such connections."""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def peek_header(frame: bytes) -> tuple[int, int, int]:
    """API key, API version and correlation ID: the header's fixed prefix."""
    if len(frame) < _HEADER_PREFIX.size:
        raise MalformedRequest("frame shorter than a request header")
    api_key, api_version, correlation_id = _HEADER_PREFIX.unpack_from(frame)
    return api_key, api_version, correlation_id


@cache
def request_schema(api_key: int, api_version: int) -> type[Any] | None:
    """The kio request entity for a key and version, or None if kio has none."""
    try:
        return load_request_schema(api_key, api_version)
    except (KioIndexError, ImportError, AttributeError, ValueError):
        return None


@cache
def response_schema(api_key: int, api_version: int) -> type[Any]:
    return load_response_schema(api_key, api_version)


def _skip_tagged_fields(frame: bytes, offset: int) -> int:
    count, size = read_unsigned_varint(frame, offset)
    offset += size
    for _ in range(count):
        _tag, size = read_unsigned_varint(frame, offset)
        offset += size
        length, size = read_unsigned_varint(frame, offset)
        offset += size + length
    if offset > len(frame):
        raise MalformedRequest("tagged fields run past the frame")
    return offset


def decode_request(frame: bytes, schema: type[Any]) -> tuple[RequestHeader, Any]:
    """Parse header and body of a request whose schema is known.

    Header v1 is key, version, correlation ID and a nullable int16-length
    client ID; header v2 (used with flexible bodies) adds tagged fields. The
    client ID stays a legacy string in both, for compatibility with brokers
    that read it before knowing the version.
    """
    api_key, api_version, correlation_id = peek_header(frame)
    try:
        client_id, size = read_nullable_legacy_string(frame, _HEADER_PREFIX.size)
        offset = _HEADER_PREFIX.size + size
        if schema.__flexible__:
            offset = _skip_tagged_fields(frame, offset)
        check_body(frame, offset, schema)  # before kio's reader allocates by counts
        body, _ = entity_reader(schema)(frame, offset)
    except MalformedRequest:
        raise
    except Exception as exc:  # kio raises several types for bad bytes; ShapeError
        raise MalformedRequest(f"cannot decode api {api_key} v{api_version}: {exc}") from exc
    return RequestHeader(api_key, api_version, correlation_id, client_id), body


def encode_response(correlation_id: int, body: Any) -> bytes:
    """Serialise header and body (without the size prefix).

    The response header version comes with the body's schema: v1 (with tagged
    fields) for flexible responses, except ApiVersions, which Kafka always
    answers with header v0 so that a client can read it before negotiating.
    """
    buffer = io.BytesIO()
    buffer.write(struct.pack(">i", correlation_id))
    if body.__header_schema__.__flexible__:
        buffer.write(b"\x00")
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()


def encode_request(header: RequestHeader, body: Any) -> bytes:
    """Serialise a request; used by tests that speak the protocol directly."""
    buffer = io.BytesIO()
    buffer.write(_HEADER_PREFIX.pack(header.api_key, header.api_version, header.correlation_id))
    client_id = None if header.client_id is None else header.client_id.encode()
    if client_id is None:
        buffer.write(struct.pack(">h", -1))
    else:
        buffer.write(struct.pack(">h", len(client_id)) + client_id)
    if body.__flexible__:
        buffer.write(b"\x00")
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()
