"""A structural pass over a request body before kio's reader sees it.

kio 0.6.5's compiled reader reserves memory for an array from the count it
reads before reading any element, and aborts the whole process (a Rust
allocation failure, not an exception) when that count is near 2^32: a
27-byte Produce request was enough to kill the gateway. Kafka's own
generated readers refuse "a collection of size N, but there are only M
bytes remaining" before allocating; this pass applies the same rule, walking
the body by the entity's schema and refusing any array count or string or
bytes length larger than what is left of the frame, and a null where the
schema does not allow one (kio's reader turns a -1 array length into None
even for arrays that are not nullable, which handlers then iterate).

It reads only lengths and counts, so it costs little next to the decode
itself; the plan for each entity class is built once.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from typing import Any

_FIXED_SIZES = {
    "bool": 1, "int8": 1, "int16": 2, "uint16": 2, "error_code": 2, "int32": 4,
    "timedelta_i32": 4, "int64": 8, "datetime_i64": 8, "timedelta_i64": 8, "float64": 8, "uuid": 16,
}
_LENGTH_PREFIXED = {"string", "bytes", "records"}


class ShapeError(Exception):
    """The body cannot be what its schema describes."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    nullable: bool
    is_array: bool
    # One of _FIXED_SIZES or _LENGTH_PREFIXED, or None for an entity.
    kafka_type: str | None
    entity: Any  # an entity class or None (Any: mypy finds type[Any] unhashable)


@dataclass(frozen=True, slots=True)
class _Plan:
    flexible: bool
    # The regular fields in order; a run of fixed-size fields is one int,
    # their total size, since nothing in them needs reading.
    steps: tuple[int | _Field, ...]
    tagged: dict[int, _Field]


def check_body(frame: bytes, offset: int, schema: type[Any]) -> None:
    """Raise ShapeError unless every count and length in the body fits the frame."""
    _Walker(frame).entity(offset, len(frame), schema)


@cache
def _plan(cls: type[Any]) -> _Plan:
    regular: list[_Field] = []
    tagged: dict[int, _Field] = {}
    for item in fields(cls):
        nullable, inner = _unwrap_optional(item.type)
        is_array = typing.get_origin(inner) is tuple
        element = typing.get_args(inner)[0] if is_array else inner
        if is_array:
            _, element = _unwrap_optional(element)  # nullable strings: their length says so
        entity = element if isinstance(element, type) and is_dataclass(element) else None
        kafka_type = None if entity is not None else item.metadata.get("kafka_type")
        described = _Field(item.name, nullable, is_array, kafka_type, entity)
        if "tag" in item.metadata:
            tagged[int(item.metadata["tag"])] = described
        else:
            regular.append(described)
    return _Plan(bool(getattr(cls, "__flexible__", False)), _coalesce(regular), tagged)


@cache
def _fixed_size(cls: Any) -> int | None:  # Any: mypy finds type[Any] unhashable
    """The encoded size of an entity made only of fixed-size fields (legacy
    versions; flexible ones end with tagged fields), else None."""
    plan = _plan(cls)
    if plan.flexible or len(plan.steps) != 1 or not isinstance(plan.steps[0], int):
        return None
    return plan.steps[0]


def _coalesce(regular: list[_Field]) -> tuple[int | _Field, ...]:
    steps: list[int | _Field] = []
    for item in regular:
        size = None if item.is_array else _FIXED_SIZES.get(item.kafka_type or "")
        if size is None:
            steps.append(item)
        elif steps and isinstance(steps[-1], int):
            steps[-1] += size
        else:
            steps.append(size)
    return tuple(steps)


def _unwrap_optional(annotation: Any) -> tuple[bool, Any]:
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return True, args[0]
    return False, annotation


class _Walker:
    def __init__(self, frame: bytes) -> None:
        self.frame = frame

    def entity(self, pos: int, end: int, cls: Any) -> int:  # Any: mypy finds type[Any] unhashable
        plan = _plan(cls)
        for step in plan.steps:
            if isinstance(step, int):
                pos += step
                if pos > end:
                    raise ShapeError(f"{cls.__name__} runs past the end")
            else:
                pos = self.field(pos, end, step, plan.flexible)
        if plan.flexible:
            pos = self.tagged_fields(pos, end, plan)
        return pos

    def tagged_fields(self, pos: int, end: int, plan: _Plan) -> int:
        count, pos = self.uvarint(pos, end)
        for _ in range(count):
            tag, pos = self.uvarint(pos, end)
            size, pos = self.uvarint(pos, end)
            field_end = self.claim(pos, end, size, "tagged field")
            known = plan.tagged.get(tag)
            if known is not None:
                self.field(pos, field_end, known, True)
            pos = field_end
        return pos

    def field(self, pos: int, end: int, item: _Field, flexible: bool) -> int:
        if not item.is_array:
            return self.value(pos, end, item, flexible)
        count, pos = self.count(pos, end, flexible)
        if count < 0:
            if not item.nullable:
                raise ShapeError(f"null array {item.name}, which is not nullable")
            return pos
        if count > end - pos:
            # Kafka's words: "Tried to allocate a collection of size N, but
            # there are only M bytes remaining."
            raise ShapeError(f"array {item.name} of {count} elements in {end - pos} bytes")
        size = _FIXED_SIZES.get(item.kafka_type or "") if item.entity is None else _fixed_size(item.entity)
        if size is not None:
            return self.claim(pos, end, count * size, item.name)
        for _ in range(count):
            pos = self.value(pos, end, item, flexible)
        return pos

    def value(self, pos: int, end: int, item: _Field, flexible: bool) -> int:
        if item.entity is not None:
            if item.nullable and not item.is_array:
                # Kafka writes a nullable struct after a one-byte marker, -1 for null.
                marker, pos = self.fixed(pos, end, 1), pos + 1
                if marker < 0:
                    return pos
            return self.entity(pos, end, item.entity)
        kafka_type = item.kafka_type or ""
        size = _FIXED_SIZES.get(kafka_type)
        if size is not None:
            return self.claim(pos, end, size, item.name)
        if kafka_type not in _LENGTH_PREFIXED:
            raise ShapeError(f"unknown field type {kafka_type!r} of {item.name}")
        if flexible:
            length, pos = self.uvarint(pos, end)
            length -= 1
        elif kafka_type == "string":
            length, pos = self.fixed(pos, end, 2), pos + 2
        else:
            length, pos = self.fixed(pos, end, 4), pos + 4
        if length < 0:
            return pos  # null: kio's reader knows which fields may be
        return self.claim(pos, end, length, item.name)

    def count(self, pos: int, end: int, flexible: bool) -> tuple[int, int]:
        if flexible:
            raw, pos = self.uvarint(pos, end)
            return raw - 1, pos
        return self.fixed(pos, end, 4), pos + 4

    def fixed(self, pos: int, end: int, size: int) -> int:
        self.claim(pos, end, size, "length")
        return int.from_bytes(self.frame[pos:pos + size], "big", signed=True)

    def uvarint(self, pos: int, end: int) -> tuple[int, int]:
        """Kafka's unsigned varint: at most five bytes."""
        if pos < end and self.frame[pos] < 0x80:
            return self.frame[pos], pos + 1  # the usual one-byte length or count
        value = 0
        for shift in range(0, 35, 7):
            if pos >= end:
                raise ShapeError("varint runs past the end")
            byte = self.frame[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value, pos
        raise ShapeError("varint longer than five bytes")

    @staticmethod
    def claim(pos: int, end: int, size: int, what: str) -> int:
        if size > end - pos:
            raise ShapeError(f"{what}: {size} bytes wanted, {end - pos} left")
        return pos + size
