"""Appends whose reply is lost: Redis ran them, the gateway never heard.

A TCP proxy between the gateway and a real Valkey forwards an append and
then cuts that connection before Redis's reply can pass (#19). The gateway
must not say such an append did not happen: an idempotent producer's
appends are settled by running them again (append.lua answers a repeat with
the original offset), and every record ends up stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import confluent_kafka
import pytest
from kafka_redis_gateway.gateway.embedded import free_port
from kafka_redis_gateway.gateway.storage import RedisStorage
from kafka_redis_gateway.gateway.storage.base import (
    AppendBatch,
    AppendRequest,
    AppendResult,
    OutcomeUnknown,
    ReadRequest,
    ReadResult,
)
from kafka_redis_gateway.gateway.storage.multiplex import MultiplexedConnection
from kafka_redis_gateway.protocol.records import Record
from redis import exceptions as redis_errors

from tests.integration.test_redis_restart import (
    ProducerRun,
    create_topic,
    produce_until_stopped,
    read_topic,
    wait_until,
)
from tests.servers import GatewayProcess, RedisServer

# Every append is an FCALL of the library's append function.
APPEND_MARKER = b"_append\r\n"


class ReplyDroppingProxy:
    """A TCP proxy to Redis that, when armed, cuts the connection carrying the next append.

    The command goes through to Redis; the connection is cut once Redis has
    had time to run it, and nothing Redis sent back on it after the command
    left is passed on.
    """

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.armed = threading.Event()
        self.cuts = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ReplyDroppingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop).result(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut_next_append(self, timeout: float = 30) -> None:
        cuts = self.cuts
        self.armed.set()
        wait_until(lambda: self.cuts > cuts, timeout, "an append to pass the proxy")

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        cut = asyncio.Event()

        async def replies() -> None:
            while data := await server_reader.read(65536):
                if cut.is_set():
                    continue  # the reply to the cut append, and anything after it, is lost
                client_writer.write(data)
                await client_writer.drain()

        async def commands() -> None:
            while data := await client_reader.read(65536):
                if self.armed.is_set() and APPEND_MARKER in data:
                    self.armed.clear()
                    cut.set()  # before the command leaves: its reply must not pass
                    server_writer.write(data)
                    await server_writer.drain()
                    await asyncio.sleep(0.3)  # Redis runs it (and fsyncs, appendfsync always)
                    self.cuts += 1
                    return
                server_writer.write(data)
                await server_writer.drain()

        tasks = [asyncio.ensure_future(replies()), asyncio.ensure_future(commands())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        client_writer.transport.abort()
        server_writer.transport.abort()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendfsync="always",
                         extra_args=["--enable-debug-command", "yes"]).start()
    yield server
    server.stop()


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[ReplyDroppingProxy]:
    running = ReplyDroppingProxy(redis_server.port).start()
    yield running
    running.stop()


def wait_for_more_deliveries(run: ProducerRun, more: int = 500) -> None:
    target = run.delivered_count() + more
    wait_until(lambda: run.delivered_count() >= target, 60, f"{more} more records delivered")


# acks=all waits for the AOF fsync on redis-py's pool (WAITAOF); with
# --acks-all-fsync false it waits for nothing more, and idempotent appends
# take the multiplexed connection. Both paths lose replies here.
@pytest.mark.parametrize("fsync", ["true", "false"], ids=["waitaof-pool", "multiplexed"])
def test_idempotent_appends_with_lost_replies_are_stored_once(
        proxy: ReplyDroppingProxy, tmp_path: Path, topic_name: str, fsync: str) -> None:
    gateway = GatewayProcess(proxy.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--redis-timeout", "2", "--acks-all-fsync", fsync]).start()
    try:
        create_topic(gateway.bootstrap, topic_name, 2)
        run = ProducerRun()
        with ThreadPoolExecutor(1) as pool:
            producing = pool.submit(produce_until_stopped, gateway.bootstrap, topic_name, run, True)
            try:
                for _ in range(5):
                    wait_for_more_deliveries(run)
                    proxy.cut_next_append()
                wait_for_more_deliveries(run)
            finally:
                run.stop.set()
            producing.result(timeout=180)
        records = read_topic(gateway.bootstrap, topic_name, 2)
    finally:
        gateway.stop()

    assert proxy.cuts == 5
    assert not run.failed, f"{len(run.failed)} records failed, e.g. {run.failed[:3]}"
    # The gateway settled each lost reply itself: the producer was never told
    # to send again (KAFKA_STORAGE_ERROR, "not written", would make it).
    assert run.transmitted == run.sent, f"{run.transmitted - run.sent} records sent again"
    assert not [e for e in run.client_errors if e.fatal()], run.client_errors
    assert len(run.delivered) == run.sent
    copies = Counter(value for _, _, value in records)
    duplicated = sorted(value for value, n in copies.items() if n > 1)
    assert not duplicated, f"{len(duplicated)} records stored more than once, e.g. {duplicated[:3]}"
    assert set(copies) == set(run.delivered)
    stored = {(partition, offset): value for partition, offset, value in records}
    assert all(stored.get(at) == value for value, at in run.delivered.items()), \
        "an acknowledged record is not at the offset acknowledged"


def test_a_plain_producer_is_told_its_append_may_have_been_written(
        proxy: ReplyDroppingProxy, tmp_path: Path, topic_name: str) -> None:
    """Not idempotent, so not repeated: REQUEST_TIMED_OUT ("possibly written"), and it was."""
    gateway = GatewayProcess(proxy.url, log_path=tmp_path / "gateway.log",
                             extra_args=["--redis-timeout", "2"]).start()
    try:
        create_topic(gateway.bootstrap, topic_name, 1)
        producer = confluent_kafka.Producer({"bootstrap.servers": gateway.bootstrap, "acks": 1,
                                             "enable.idempotence": False, "retries": 0})
        told: dict[bytes, str | None] = {}

        def on_delivery(error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
            told[message.value()] = None if error is None else error.name()

        for n in range(3):
            proxy.armed.set()
            producer.produce(topic_name, value=b"cut-%d" % n, on_delivery=on_delivery)
            assert producer.flush(30) == 0
            assert not proxy.armed.is_set()
        records = read_topic(gateway.bootstrap, topic_name, 1)
    finally:
        gateway.stop()
    assert told == dict.fromkeys([b"cut-0", b"cut-1", b"cut-2"], "REQUEST_TIMED_OUT")
    assert sorted(value for _, _, value in records) == sorted(told)


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
async def test_an_append_slower_than_the_timeout(redis_server: RedisServer, topic_name: str,
                                                 idempotent: bool) -> None:
    """Redis busy past the timeout, then runs the append: settled when it may be repeated."""
    storage = RedisStorage(redis_server.url, timeout=2.0)
    try:
        await storage.create_topic(topic_name, 1, {})
        await storage.load_functions()
        records = [Record(1_700_000_000_000, None, b"slow-%d" % n, ()) for n in range(3)]
        producer = ({"producer_id": 4242, "producer_epoch": 0, "first_sequence": 0, "last_sequence": 2}
                    if idempotent else {})
        request = AppendRequest(topic_name, 0, [AppendBatch.of_records(records)], **producer)
        # Sent first on the same connection: Redis sleeps 2.5 s, past the 2 s timeout, and only
        # then runs the append, whose reply comes after the caller's timeout (and well within
        # the one more timeout an idempotent append is given).
        fast = storage._fast
        assert isinstance(fast, MultiplexedConnection)
        await fast.execute([("PING",)])  # connected, so the sleep is written when its task runs
        sleeping = asyncio.ensure_future(fast.execute([("DEBUG", "SLEEP", 2.5)], extra_time=10))
        await asyncio.sleep(0)
        (result,) = await storage.append([request])
        with contextlib.suppress(redis_errors.RedisError):
            await sleeping
        if idempotent:
            assert isinstance(result, AppendResult), result
            assert result.base_offset == 0
        else:
            assert isinstance(result, OutcomeUnknown), result
        stored = await storage.read([ReadRequest(topic_name, 0, 0, 1 << 20)])
        assert [(r.record_count, r.high_watermark) for r in stored if isinstance(r, ReadResult)] == [(3, 3)]
    finally:
        await storage.close()


async def test_an_acks_all_append_waits_for_redis_to_come_back(redis_server: RedisServer,
                                                               topic_name: str) -> None:
    """Redis killed under an idempotent acks=all append (WAITAOF, redis-py's pool) and restarted."""
    storage = RedisStorage(redis_server.url, timeout=10.0)
    try:
        await storage.create_topic(topic_name, 1, {})
        await storage.load_functions()
        await storage.configure_durability(True, 0)
        records = [Record(1_700_000_000_000, None, b"back-%d" % n, ()) for n in range(3)]
        request = AppendRequest(topic_name, 0, [AppendBatch.of_records(records)],
                                producer_id=4343, producer_epoch=0, first_sequence=0, last_sequence=2)
        redis_server.stop(signal.SIGKILL)
        restarting = asyncio.get_running_loop().run_in_executor(None, redis_server.start)
        (result,) = await storage.append([request], durable_within_ms=10_000)
        await restarting
        assert isinstance(result, AppendResult), result
        assert result.base_offset == 0
    finally:
        await storage.close()
