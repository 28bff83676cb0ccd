"""One client connection: read frames ahead, start requests in order (produces overlapping), answer in order.

Three tasks share a connection. The reader reads frames into a bounded
queue (``--max-queued-requests``); when the queue is full it stops reading,
and TCP's flow control holds the client back (librdkafka pipelines up to a
million requests, so a full queue must slow it, not close it). The starter
starts each request's handler, in order, and the answerer writes the
responses in request order. A request starts once the one before it has
finished, as on a Kafka broker, with one exception: a produce whose appends
are already written to the Redis connection every later command follows on
releases its successor early (``storage.appends_ordered``), so the next
batch is decoded and sent while Redis works on this one, and appends still
reach each partition in the order sent (idempotent producers rely on it).
Many connections run concurrently on the event loop.

Every wait a client can cause is bounded, so a misbehaving client costs
only its own connection: half a frame (``--request-read-timeout-ms``), a
response the client does not take (``--response-write-timeout-ms``) and
silence (``--connections-max-idle-ms``) close it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from kafka_redis_gateway.protocol.framing import (
    FrameError,
    FrameTimeout,
    frame,
    read_frame_body,
    read_frame_size,
)
from kafka_redis_gateway.protocol.messages import (
    MalformedRequest,
    decode_request,
    encode_response,
    peek_header,
    request_schema,
)

from . import metrics
from .context import Broker, RequestContext
from .dispatch import CloseConnection
from .handlers import api_versions
from .logs import printable
from .request_memory import Grant
from .security.sasl import SaslFailed, Session
from .security.tls import principal
from .storage.base import appends_ordered

if TYPE_CHECKING:
    from .dispatch import Router
    from .security.listeners import ListenerSpec
    from .server import Gateway

log = logging.getLogger(__name__)
_CLOSING = "closing connection from %s: %s"

# What the reader queues: a request frame, the error that ended reading, or
# None for the client's clean end of stream.
Queued = bytes | Exception | None


class Started:
    """A request whose handler runs, and whether its successor may start."""

    __slots__ = ("released", "task")

    def __init__(self, task: asyncio.Task[bytes | None], released: asyncio.Event) -> None:
        self.task = task
        self.released = released


# What the starter hands the answerer: a started request, or how the
# connection ends (None: cleanly, after the answers before it).
Answer = Started | Exception | None


class IdleTimeout(Exception):
    """No request and nothing in flight for connections.max.idle.ms."""


class WriteTimeout(Exception):
    """The client did not take a response in time (it stopped reading)."""


class Connection:
    def __init__(
        self, gateway: Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        listener: ListenerSpec, broker: Broker,
    ) -> None:
        self.gateway = gateway
        self.listener = listener
        # This listener's advertised address: what Metadata tells this client.
        self.broker = broker
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        # Who the client is: its certificate's subject on a TLS listener that
        # asks for one, until SASL authenticates it as a user.
        self.session = Session.start(listener, principal(writer.get_extra_info("peercert")),
                                     gateway.config.connections_max_reauth_ms)
        log.debug("connection from %s on listener %s as %s", self.peer, listener.name,
                  self.session.principal)
        self.closing = False
        config = gateway.config
        self._max_request_size = config.max_request_size
        self._read_timeout = config.request_read_timeout_ms / 1000
        self._write_timeout = config.response_write_timeout_ms / 1000
        self._idle_timeout = config.connections_max_idle_ms / 1000
        self._requests: asyncio.Queue[Queued] = asyncio.Queue(maxsize=config.max_queued_requests)
        # Started and not yet answered: as many as may be read ahead.
        self._started: set[asyncio.Task[bytes | None]] = set()
        self._start_slots = asyncio.Semaphore(config.max_queued_requests)
        # Request memory reserved for each frame read (or being read) and
        # not yet answered, oldest first (--max-buffered-request-bytes).
        self._grants: deque[Grant] = deque()
        # Requests read and not yet answered, for the in-flight gauge.
        self._in_flight = 0
        self._idle_since = asyncio.get_running_loop().time()

    @property
    def busy(self) -> bool:
        """Handling requests now: shutdown lets them finish (server.py)."""
        return bool(self._started)

    async def serve(self) -> None:
        reading = asyncio.create_task(self._read_requests())
        answers: asyncio.Queue[Answer] = asyncio.Queue()
        starting = asyncio.create_task(self._start_requests(answers))
        abort = False
        client_log = self.gateway.client_log
        try:
            await self._write_answers(answers)
        except FrameTimeout as exc:
            metrics.CONNECTIONS_TIMED_OUT.labels("request_read").inc()
            client_log.warning("request_read", _CLOSING, self.peer, exc)
        except WriteTimeout as exc:
            metrics.CONNECTIONS_TIMED_OUT.labels("response_write").inc()
            client_log.warning("response_write", _CLOSING, self.peer, exc)
            abort = True  # a graceful close would wait for the unread responses to flush
        except IdleTimeout as exc:
            metrics.CONNECTIONS_TIMED_OUT.labels("idle").inc()
            client_log.log(logging.INFO, "idle", _CLOSING, self.peer, exc)
        except (FrameError, CloseConnection) as exc:
            client_log.warning("malformed", _CLOSING, self.peer, printable(exc))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.debug("connection from %s closed by the client: %r", self.peer, exc)
        except Exception:
            client_log.log(logging.ERROR, "unexpected",
                           "closing connection from %s after an unexpected error", self.peer,
                           exc_info=True)
        finally:
            for task in (starting, reading, *self._started):
                task.cancel()
            for task in (starting, reading, *self._started):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._started.clear()
            metrics.IN_FLIGHT.dec(self._in_flight)
            self._in_flight = 0
            while self._grants:  # requests read and never answered, and a partial frame
                self.gateway.request_memory.release(self._grants.popleft())
            await self._close(abort)

    # -- reading ----------------------------------------------------------------

    async def _read_requests(self) -> None:
        """Read frames ahead of the processor until the stream ends or breaks."""
        end: Exception | None = None
        try:
            while True:
                request = await self._read_frame()
                if request is None:
                    break
                metrics.BYTES_IN.inc(len(request) + 4)
                metrics.IN_FLIGHT.inc()
                self._in_flight += 1
                await self._requests.put(request)  # waits while the queue is full
        except Exception as exc:  # handed to the processor, which closes after what came before
            end = exc
        await self._requests.put(end)

    async def _read_frame(self) -> bytes | None:
        begun = await read_frame_size(self.reader, self._max_request_size, self._read_timeout)
        if begun is None:
            return None
        size, deadline = begun
        memory = self.gateway.request_memory
        grant = memory.try_acquire(size)
        if grant is None:
            # Stop reading until the bytes are free (TCP holds the client
            # back); the frame's time starts again once they are.
            grant = await memory.acquire(size)
            deadline = asyncio.get_running_loop().time() + self._read_timeout
        self._grants.append(grant)  # given back when answered, or when the connection ends
        return await read_frame_body(self.reader, size, deadline, self._read_timeout)

    # -- processing -------------------------------------------------------------

    async def _start_requests(self, answers: asyncio.Queue[Answer]) -> None:
        """Start each request once its predecessor has released it; hand it to the answerer."""
        previous: Started | None = None
        try:
            while not self.closing:
                queued = await self._next_request()
                if queued is None or isinstance(queued, Exception):
                    answers.put_nowait(queued)
                    return
                if previous is not None:
                    await previous.released.wait()
                await self._start_slots.acquire()
                previous = self._start(queued)
                answers.put_nowait(previous)
        except Exception as exc:  # the idle timeout: closes after the answers before it
            answers.put_nowait(exc)
        else:
            answers.put_nowait(None)

    def _start(self, request: bytes) -> Started:
        released = asyncio.Event()
        task = asyncio.create_task(self._handle_in_order(request, released))
        self._started.add(task)
        return Started(task, released)

    async def _handle_in_order(self, request: bytes, released: asyncio.Event) -> bytes | None:
        # The task runs in a copy of the context: the storage layer finds
        # this request's release there (storage.appends_ordered).
        appends_ordered.set(released.set)
        response = await self.handle(request)
        if self.session.close_after_answer:
            self.closing = True  # a refused login: answer it, then close (as Kafka does)
        # Not on failure: the connection closes, and nothing after the failed
        # request may start (unless its appends had already released it).
        released.set()
        return response

    async def _write_answers(self, answers: asyncio.Queue[Answer]) -> None:
        """Write each started request's response, in request order."""
        while True:
            answer = await answers.get()
            if answer is None:
                return
            if isinstance(answer, Exception):
                raise answer
            try:
                response = await answer.task
                if response is not None:
                    await self._send(response)
            finally:
                self._started.discard(answer.task)
                self._start_slots.release()
                self.gateway.request_memory.release(self._grants.popleft())
                self._in_flight -= 1
                metrics.IN_FLIGHT.dec()
                self._idle_since = asyncio.get_running_loop().time()
            if self.closing and not self._started:
                return

    async def _next_request(self) -> Queued:
        with contextlib.suppress(asyncio.QueueEmpty):
            return self._requests.get_nowait()
        # The idle clock runs from the last answer, and only while nothing
        # is being handled (a long-polling Fetch is not idleness).
        while True:
            loop = asyncio.get_running_loop()
            since = loop.time() if self._started else self._idle_since
            try:
                async with asyncio.timeout_at(since + self._idle_timeout):
                    return await self._requests.get()
            except TimeoutError:
                if not self._started and loop.time() >= self._idle_since + self._idle_timeout:
                    raise IdleTimeout(f"idle for {self._idle_timeout:g} s") from None

    async def _send(self, response: bytes) -> None:
        data = frame(response)
        if self.writer.transport.is_closing():
            # The client is gone (uvloop's write would raise RuntimeError).
            raise ConnectionResetError("client closed the connection")
        self.writer.write(data)
        metrics.BYTES_OUT.inc(len(data))
        try:
            async with asyncio.timeout(self._write_timeout):
                await self.writer.drain()
        except TimeoutError:
            raise WriteTimeout(
                f"response not taken within {self._write_timeout:g} s (client not reading)"
            ) from None

    async def _close(self, abort: bool) -> None:
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()
        try:
            # close() flushes what is buffered first; a client that stopped
            # reading must not keep the socket open for ever.
            async with asyncio.timeout(self._write_timeout):
                await self.writer.wait_closed()
        except TimeoutError:
            self.writer.transport.abort()
        except (ConnectionError, OSError):
            pass

    async def handle(self, request: bytes) -> bytes | None:
        if self.session.expects_raw_token:
            return await self._raw_sasl_token(request)
        started = time.perf_counter()
        try:
            api_key, api_version, correlation_id = peek_header(request)
        except MalformedRequest as exc:
            metrics.api("unknown").errors.inc()
            raise CloseConnection(str(exc)) from exc
        api = _api_metrics(self.gateway.router, api_key)
        api.requests.inc()
        try:
            response = await self._answer(request, api_key, api_version, correlation_id, api)
        except CloseConnection:
            api.errors.inc()
            raise
        api.latency.observe(time.perf_counter() - started)
        return response

    async def _raw_sasl_token(self, token: bytes) -> bytes:
        """A SASL token sent as a bare frame after SaslHandshake v0; the server's token back."""
        try:
            return await self.session.authenticate(token, self.gateway.credentials)
        except SaslFailed as exc:
            raise CloseConnection(str(exc)) from exc  # v0 has no way to say why

    async def _answer(self, request: bytes, api_key: int, api_version: int, correlation_id: int,
                      api: metrics.ApiMetrics) -> bytes | None:
        if not self.session.allows(api_key):
            # Kafka closes the connection too.
            if self.session.expired:
                raise CloseConnection(f"API key {api_key} after the SASL login expired "
                                      "(--connections-max-reauth-ms) without re-authentication")
            raise CloseConnection(f"API key {api_key} before SASL authentication")
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
            broker=self.broker,
            router=self.gateway.router,
            peer=self.peer,
            coordinator=self.gateway.coordinator,
            cluster=self.gateway.cluster,
            session=self.session,
            credentials=self.gateway.credentials,
            authorizer=self.gateway.authorizer,
            shares=self.gateway.shares,
            transactions=self.gateway.transaction_ownership,
        )
        try:
            response = await route.handler(context, body)
        except CloseConnection:
            raise
        except Exception as exc:
            self.gateway.client_log.log(logging.ERROR, "handler", "api %d v%d from %s failed",
                                        api_key, api_version, self.peer, exc_info=True)
            raise CloseConnection(f"internal error: {exc!r}") from exc
        if response is None:
            return None
        # Only the top-level code: walking every partition of every response
        # would cost more than the request on the produce path.
        if getattr(response, "error_code", 0):
            api.errors.inc()
        return encode_response(correlation_id, response)


# API key -> its metrics, labelled with Kafka's name for the API ("Produce").
_API_METRICS: dict[int, metrics.ApiMetrics] = {}


def _api_metrics(router: Router, api_key: int) -> metrics.ApiMetrics:
    found = _API_METRICS.get(api_key)
    if found is None:
        route = router.get(api_key)
        # Unknown keys share one label, so a client cannot mint label values.
        schema = None if route is None else request_schema(api_key, route.max_version)
        name = "unknown" if schema is None else schema.__name__.removesuffix("Request")
        found = metrics.api(name)
        if route is not None:
            _API_METRICS[api_key] = found
    return found
