"""InitProducerId (key 22), v0-v5: producer IDs for idempotent producers.

IDs come from a counter in Redis, so they are unique across gateway restarts
and across gateways sharing one Redis. From v3 a returning producer names its
ID and epoch; if this Redis issued that ID, the gateway bumps the epoch
(KIP-360), which fences the producer's older batches in every partition
(the append script refuses lower epochs). Transactions are not served: a
request with a transactional ID gets INVALID_REQUEST.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from ..context import RequestContext
from ..dispatch import Route
from ..storage import StorageUnavailable
from ._build import NO_THROTTLE, make, response_types

API_KEY = 22


async def handle(context: RequestContext, request: Any) -> Any:
    types = response_types(context)

    def response(code: ErrorCode, producer_id: int = -1, epoch: int = -1) -> Any:
        return make(types.InitProducerIdResponse, throttle_time=NO_THROTTLE, error_code=code,
                    producer_id=producer_id, producer_epoch=epoch)

    if request.transactional_id is not None:
        return response(ErrorCode.invalid_request)
    try:
        producer_id, epoch = await context.storage.init_producer(
            getattr(request, "producer_id", -1), getattr(request, "producer_epoch", -1))
    except StorageUnavailable:
        return response(ErrorCode.coordinator_not_available)
    return response(ErrorCode.none, producer_id, epoch)


ROUTES = (Route(API_KEY, 0, 5, handle),)
