"""Building kio response entities without one code path per version.

kio has a class per API version, and a version lacks the fields it does not
carry. :func:`make` fills a class from keyword values and drops the ones that
version does not have, so a handler describes a response once.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import fields
from functools import cache
from types import ModuleType
from typing import Any

from kafka_redis_gateway.protocol.messages import response_schema
from kio.schema.errors import ErrorCode

from ..context import RequestContext

NO_THROTTLE = datetime.timedelta(0)


@cache
def _field_names(cls: Any) -> frozenset[str]:
    return frozenset(field.name for field in fields(cls))


def make(cls: Any, **values: Any) -> Any:
    names = _field_names(cls)
    return cls(**{name: value for name, value in values.items() if name in names})


def response_types(context: RequestContext) -> ModuleType:
    """The kio module holding this request version's response classes."""
    schema = response_schema(context.header.api_key, context.api_version)
    return sys.modules[schema.__module__]


def error(code: int) -> ErrorCode:
    return ErrorCode(code)


def millis_to_datetime(millis: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.UTC)
