"""Connection limits and timeouts: a misbehaving client costs only its own connection.

Each test starts a gateway of its own with one small limit (flags, as an
operator would set them), misbehaves on one raw connection and checks that
the gateway closes it, says why in its log and its metrics, and keeps
serving everyone else meanwhile.
"""

from __future__ import annotations

import os
import re
import resource
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from kafka_redis_gateway.gateway.embedded import free_port
from kio.schema.errors import ErrorCode

from tests.integration.operations_support import scrape, value, wait_for_log
from tests.integration.test_groups_protocol import stable_member
from tests.integration.test_protocol import (
    API_VERSIONS,
    FETCH,
    PRODUCE,
    Wire,
    api_versions,
    batch,
    create_topic,
    fetch,
    fetched,
    partition_errors,
    produce,
)
from tests.servers import GatewayProcess, RedisServer, module_redis


@dataclass
class Limited:
    process: GatewayProcess
    log: Path
    metrics_port: int

    @property
    def bootstrap(self) -> str:
        return self.process.bootstrap

    def timed_out(self, reason: str) -> float:
        return value(scrape(self.metrics_port), "krg_connections_timed_out_total", reason=reason)


# A Redis of this module's own: on the session one, each limited gateway
# would be one of a cluster with the session gateway, which would then
# coordinate some of the groups these tests join there.
redis_server = module_redis()


@contextmanager
def limited_gateway(redis_server: RedisServer, tmp_path: Path, *flags: str) -> Iterator[Limited]:
    log = tmp_path / "gateway.log"
    metrics_port = free_port()
    process = GatewayProcess(redis_server.url, log_path=log,
                             extra_args=[*flags, "--metrics-listen", f"127.0.0.1:{metrics_port}"])
    process.start()
    try:
        yield Limited(process, log, metrics_port)
    finally:
        process.stop()


def produce_and_read_back(bootstrap: str, topic: str, values: list[bytes]) -> list[bytes]:
    """Produce with confluent-kafka, then read the partition from the start."""
    errors: list[object] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for payload in values:
        producer.produce(topic, payload, partition=0,
                         on_delivery=lambda error, _message: error and errors.append(error))
    assert producer.flush(30) == 0, "records still undelivered"
    assert errors == []
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "limits-reader",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    read: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(read) < len(values) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                read.append(message.value())
    finally:
        consumer.close()
    return read


def raw_socket(bootstrap: str, receive_buffer: int | None = None) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(30)
    sock.connect((host, int(port)))
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 60) -> tuple[int, bool]:
    """Read and discard until the server closes; (bytes read, whether it closed)."""
    sock.settimeout(timeout)
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        return received, True
    except TimeoutError:
        return received, False
    return received, True


# -- half a frame ----------------------------------------------------------------


@pytest.mark.parametrize("partial", [
    b"\x00\x00",  # half a size prefix
    struct.pack(">i", 64) + b"\x00\x12\x00\x03",  # a size prefix and 4 of its 64 bytes
], ids=["half-size-prefix", "part-of-body"])
def test_half_a_frame_is_timed_out_while_others_produce_and_consume(
        redis_server: RedisServer, tmp_path: Path, topic_name: str, partial: bytes) -> None:
    with limited_gateway(redis_server, tmp_path, "--request-read-timeout-ms", "1000") as gateway, \
            closing(Wire(gateway.bootstrap)) as offender:
        offender.sock.sendall(partial)
        values = [f"record-{i}".encode() for i in range(300)]
        assert produce_and_read_back(gateway.bootstrap, topic_name, values) == values
        assert offender.closed_by_server(timeout=30), "the half frame kept its connection open"
        assert "frame not complete within 1 s" in wait_for_log(gateway.log, "closing connection")
        assert gateway.timed_out("request_read") == 1
        assert gateway.timed_out("idle") == 0


# -- a client that stops reading -----------------------------------------------------


def test_a_client_that_stops_reading_is_timed_out_while_others_are_served(
        redis_server: RedisServer, tmp_path: Path, topic_name: str) -> None:
    with limited_gateway(redis_server, tmp_path, "--response-write-timeout-ms", "1000") as gateway:
        with closing(Wire(gateway.bootstrap)) as setup:
            create_topic(setup, topic_name)
            response = setup.call(produce(topic_name, {0: batch(os.urandom(200_000))}))
            assert partition_errors(response) == {0: ErrorCode.none}
        # 100 fetches of a 200 kB record: 20 MB of responses, far more than
        # the socket buffers between the gateway and a client that reads none.
        offender = raw_socket(gateway.bootstrap, receive_buffer=4096)
        with closing(Wire(gateway.bootstrap)) as bystander:
            offender.sendall(b"".join(bystander.encode(fetch(12, 0, topic=topic_name), correlation_id)[1]
                                      for correlation_id in range(100)))
            assert bystander.call(api_versions(3)).error_code == ErrorCode.none
            assert fetched(bystander.call(fetch(12, 0, topic=topic_name))).error_code == ErrorCode.none
            line = wait_for_log(gateway.log, "client not reading")
            assert "response not taken within 1 s" in line
            received, closed = read_until_closed(offender)
            assert closed, "the gateway kept the connection of a client that stopped reading"
            assert received < 100 * 200_000, "every response was delivered: the client was not slow"
            assert bystander.call(api_versions(3)).error_code == ErrorCode.none
        offender.close()
        assert gateway.timed_out("response_write") == 1


# -- connection limit ----------------------------------------------------------------


def accepted_connection(bootstrap: str, timeout: float = 15) -> Wire:
    """A connection that has been answered, retried while the gateway refuses.

    The gateway frees a connection's slot when it reads the end of its
    stream, a moment after the client closed it (the start-up probe's too).
    """
    deadline = time.monotonic() + timeout
    while True:
        wire = Wire(bootstrap)
        try:
            assert wire.call(api_versions(3)).error_code == ErrorCode.none
            return wire
        except ConnectionError:
            wire.close()
            assert time.monotonic() < deadline, "no connection accepted"
            time.sleep(0.1)


def test_connections_over_the_limit_are_closed_at_once(redis_server: RedisServer, tmp_path: Path) -> None:
    with limited_gateway(redis_server, tmp_path, "--max-connections", "2") as gateway:
        first = accepted_connection(gateway.bootstrap)
        second = accepted_connection(gateway.bootstrap)
        try:
            with closing(Wire(gateway.bootstrap)) as third:
                assert third.closed_by_server(timeout=10), "a third connection was kept"
            assert "2 connections open" in wait_for_log(gateway.log, "refusing connection")
            assert second.call(api_versions(3)).error_code == ErrorCode.none
            first.close()
            accepted_connection(gateway.bootstrap).close()
            assert value(scrape(gateway.metrics_port), "krg_connections_refused_total") >= 1
        finally:
            first.close()
            second.close()


# -- idle connections ----------------------------------------------------------------


def test_idle_connections_are_closed_but_not_while_a_request_waits(
        redis_server: RedisServer, tmp_path: Path, topic_name: str) -> None:
    with limited_gateway(redis_server, tmp_path, "--connections-max-idle-ms", "1000") as gateway:
        with closing(Wire(gateway.bootstrap)) as waiting:
            create_topic(waiting, topic_name)
            started = time.monotonic()
            # A long poll on an empty partition, three times the idle timeout:
            # in flight, so not idle.
            response = waiting.call(fetch(12, 0, topic=topic_name, max_wait_ms=3000))
            assert time.monotonic() - started > 1.0, "precondition: the fetch did not wait"
            assert fetched(response).error_code == ErrorCode.none
        with closing(Wire(gateway.bootstrap)) as idle:
            assert idle.call(api_versions(3)).error_code == ErrorCode.none
            assert idle.closed_by_server(timeout=30), "the idle connection was kept"
        assert "idle for 1 s" in wait_for_log(gateway.log, "idle for")
        assert gateway.timed_out("idle") >= 1


# -- read-ahead queue ----------------------------------------------------------------


def test_pipelined_requests_beyond_the_queue_are_all_answered_in_order(
        redis_server: RedisServer, tmp_path: Path, topic_name: str) -> None:
    with limited_gateway(redis_server, tmp_path, "--max-queued-requests", "2") as gateway, \
            closing(Wire(gateway.bootstrap)) as wire:
        create_topic(wire, topic_name)
        bodies = [produce(topic_name, {0: batch(b"v%d" % i)}) if i % 5 == 0 else api_versions(3)
                  for i in range(500)]
        correlation_ids = [10_000 + 7 * i for i in range(len(bodies))]
        data = b"".join(wire.encode(body, cid)[1] for body, cid in zip(bodies, correlation_ids, strict=True))
        # Sent from a thread: the gateway stops reading while its queue is
        # full, so sending everything before reading could wait on us.
        sender = threading.Thread(target=wire.sock.sendall, args=(data,))
        sender.start()
        answered, base_offsets = [], []
        for body in bodies:
            correlation_id, response = wire.receive(body.__api_key__, body.__version__)
            answered.append(correlation_id)
            if body.__api_key__ == PRODUCE:
                base_offsets.append(response.responses[0].partition_responses[0].base_offset)
            else:
                assert body.__api_key__ == API_VERSIONS and response.error_code == ErrorCode.none
        sender.join(timeout=30)
        assert answered == correlation_ids
        assert base_offsets == list(range(100))


# -- shutdown --------------------------------------------------------------------------


def test_shutdown_answers_the_request_in_flight_and_closes_idle_connections(
        redis_server: RedisServer, tmp_path: Path, topic_name: str) -> None:
    with limited_gateway(redis_server, tmp_path) as gateway, \
            closing(Wire(gateway.bootstrap)) as idle, closing(Wire(gateway.bootstrap)) as waiting:
        assert idle.call(api_versions(3)).error_code == ErrorCode.none
        create_topic(waiting, topic_name)
        correlation_id = waiting.send(fetch(12, 0, topic=topic_name, max_wait_ms=3000))
        deadline = time.monotonic() + 10
        while value(scrape(gateway.metrics_port), "krg_in_flight_requests") < 1:
            assert time.monotonic() < deadline, "the long poll never showed as in flight"
            time.sleep(0.05)
        assert gateway.process.stop() == 0  # SIGTERM, then wait for the exit
        answered, response = waiting.receive(FETCH, 12)
        assert answered == correlation_id and fetched(response).error_code == ErrorCode.none
        assert idle.closed_by_server(timeout=5)


# -- what clients cause in the log ---------------------------------------------------


def test_malformed_request_warnings_are_rate_limited_with_a_count(
        redis_server: RedisServer, tmp_path: Path) -> None:
    malformed = struct.pack(">i", 8) + struct.pack(">hhi", 999, 0, 7)  # an API key nobody serves
    with limited_gateway(redis_server, tmp_path, "--warning-interval-ms", "1000") as gateway:
        started = time.monotonic()
        for _ in range(200):
            with closing(Wire(gateway.bootstrap)) as offender:
                offender.sock.sendall(malformed)
                assert offender.closed_by_server(timeout=10)
        elapsed = time.monotonic() - started
        time.sleep(1.1)  # past the interval: the next warning is logged, with the count
        with closing(Wire(gateway.bootstrap)) as offender:
            offender.sock.sendall(malformed)
            assert offender.closed_by_server(timeout=10)
        wait_for_log(gateway.log, "more like it since the last one logged")
        lines = [line for line in gateway.log.read_text().splitlines()
                 if "unsupported API key 999" in line]
        # One line per interval at most, and every warning is in a line or a count.
        assert len(lines) <= 2 + elapsed / 1.0
        counted = sum(int(found) for line in lines
                      for found in re.findall(r"\((\d+) more like it", line))
        assert len(lines) + counted == 201


def test_client_supplied_strings_are_logged_escaped(redis_server: RedisServer, tmp_path: Path) -> None:
    forged = "g\n2026-01-01 00:00:00,000 ERROR forged line\x1b[31m"
    with limited_gateway(redis_server, tmp_path) as gateway, closing(Wire(gateway.bootstrap)) as wire:
        stable_member(wire, forged)
        line = wait_for_log(gateway.log, "generation 1 with 1 member(s)")
        assert "group g\\n2026-01-01 00:00:00,000 ERROR forged line\\x1b[31m: generation" in line
        text = gateway.log.read_text()
        assert "\x1b" not in text
        assert not any(line.startswith("2026-01-01 00:00:00,000 ERROR forged line")
                       for line in text.splitlines())


# -- out of file descriptors -----------------------------------------------------------


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_running_out_of_file_descriptors_is_logged_once_and_accepting_resumes(
        redis_server: RedisServer, tmp_path: Path) -> None:
    with limited_gateway(redis_server, tmp_path) as gateway:
        assert gateway.process.process is not None
        pid = gateway.process.process.pid
        spare = 20
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_files(pid) + spare,) * 2)
        started = time.monotonic()
        # Far more connections than descriptors: the kernel queues them in the
        # listen backlog, the gateway cannot accept them all.
        crowd = [Wire(gateway.bootstrap) for _ in range(10 * spare)]
        try:
            wait_for_log(gateway.log, "cannot accept connections")
            time.sleep(1)  # accepting is retried meanwhile, several times
            elapsed = time.monotonic() - started
            lines = [line for line in gateway.log.read_text().splitlines()
                     if "cannot accept connections" in line]
            assert "Too many open files" in lines[0]
            assert len(lines) <= 1 + elapsed / 10  # --warning-interval-ms, 10 s by default
        finally:
            for wire in crowd:
                wire.close()
        # Descriptors free again: accepting resumes by itself.
        accepted_connection(gateway.bootstrap, timeout=30).close()


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_of_closed_connections_goes_back_to_the_system(
        redis_server: RedisServer, tmp_path: Path) -> None:
    with limited_gateway(redis_server, tmp_path, "--max-connections", "10000") as gateway:
        assert gateway.process.process is not None
        pid = gateway.process.process.pid
        accepted_connection(gateway.bootstrap).close()
        before = resident_kib(pid)
        crowd = [Wire(gateway.bootstrap) for _ in range(8000)]
        for wire in crowd:
            wire.send(api_versions(3))
        for wire in crowd:
            wire.receive_frame()
        crowded = resident_kib(pid)
        for wire in crowd:
            wire.close()
        deadline = time.monotonic() + 30
        while value(scrape(gateway.metrics_port), "krg_open_connections") > 0:
            assert time.monotonic() < deadline, "connections still open"
            time.sleep(0.2)
        # Measured with 9,000 connections: 66 -> 233 MiB, and 177 MiB after
        # they closed without malloc_trim, 119 MiB with it (a moment later).
        while (after := resident_kib(pid)) - before >= (crowded - before) / 2:
            assert time.monotonic() < deadline, f"RSS {before} -> {crowded} -> {after} KiB"
            time.sleep(0.2)


# -- request memory across connections ------------------------------------------------


MiB = 1024 * 1024


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """sendall in a thread: it blocks while the gateway does not read the socket."""
    def send() -> None:
        with suppress(OSError):  # closed by the test or the gateway
            sock.sendall(data)
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_partial_large_frames_share_one_budget_and_others_are_served(
        redis_server: RedisServer, tmp_path: Path, topic_name: str) -> None:
    """8 connections each announce a 16 MiB frame and send 14 MiB of it: with a
    32 MiB budget only two are read, the rest wait unread, and a producer and
    consumer on other connections are served meanwhile."""
    with limited_gateway(redis_server, tmp_path, "--max-request-size", str(16 * MiB),
                         "--max-buffered-request-bytes", str(32 * MiB),
                         "--request-read-timeout-ms", "60000") as gateway:
        assert gateway.process.process is not None
        pid = gateway.process.process.pid
        accepted_connection(gateway.bootstrap).close()
        before = resident_kib(pid)
        partial = struct.pack(">i", 16 * MiB) + bytes(14 * MiB)
        hostile = [raw_socket(gateway.bootstrap) for _ in range(8)]
        senders = [send_in_background(sock, partial) for sock in hostile]
        try:
            deadline = time.monotonic() + 30
            # Two frames hold the whole budget: 2 x 16 MiB reserved.
            while value(scrape(gateway.metrics_port), "krg_buffered_request_bytes") < 32 * MiB:
                assert time.monotonic() < deadline, "two frames were not admitted"
                time.sleep(0.2)
            values = [f"record-{i}".encode() for i in range(300)]
            assert produce_and_read_back(gateway.bootstrap, topic_name, values) == values
            held = value(scrape(gateway.metrics_port), "krg_buffered_request_bytes")
            assert 32 * MiB <= held <= 32 * MiB + 2 * MiB  # the budget, and small requests' reserve
            # Without the budget this is 8 x 14 MiB of buffered frames.
            assert resident_kib(pid) - before < 64 * 1024
        finally:
            for sock in hostile:
                sock.close()
            for thread in senders:
                thread.join(timeout=30)
        # The budget is given back as the connections close.
        deadline = time.monotonic() + 30
        while value(scrape(gateway.metrics_port), "krg_buffered_request_bytes") > 0:
            assert time.monotonic() < deadline, "request memory not given back"
            time.sleep(0.2)


def test_a_frame_larger_than_what_is_free_waits_and_is_read_later(
        redis_server: RedisServer, tmp_path: Path, topic_name: str) -> None:
    """A request that does not fit waits, unread and not closed, until a
    partial frame's timeout frees the budget; then it is answered."""
    with limited_gateway(redis_server, tmp_path, "--max-request-size", str(2 * MiB),
                         "--max-buffered-request-bytes", str(2 * MiB),
                         "--request-read-timeout-ms", "2000") as gateway, \
            closing(Wire(gateway.bootstrap)) as patient:
        create_topic(patient, topic_name)
        holder = raw_socket(gateway.bootstrap)
        holder.sendall(struct.pack(">i", 2 * MiB) + bytes(100))  # takes the whole budget, then stalls
        deadline = time.monotonic() + 30
        while value(scrape(gateway.metrics_port), "krg_buffered_request_bytes") < 2 * MiB:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # 900 kB: too large for the small requests' reserve, so it waits in line.
        response = patient.call(produce(topic_name, {0: batch(os.urandom(900_000))}))
        assert partition_errors(response) == {0: ErrorCode.none}
        _, closed = read_until_closed(holder, timeout=30)
        assert closed, "the stalled frame was not timed out"
        holder.close()
