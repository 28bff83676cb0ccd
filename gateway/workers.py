"""``--workers N``: one gateway process per core on one host, each a broker of its own.

One Python process runs on one core, so a host with N cores runs N
gateways. Clients address brokers by host and port, so worker i is a
broker of its own: every listen, advertised and metrics port is the given
one plus i, and a fixed ``--node-id`` is the given one plus i (without it
each worker gets one from Redis, as any gateway does). The workers share
one Redis: ``--redis-url``, or else one embedded server that this parent
starts and owns (its data directory's lock included), so the workers form
one Kafka cluster through the broker registry like any gateways on one Redis.

The parent only supervises: it passes each worker its settings (pickled,
on the worker's standard input, so the embedded server's password never
shows on a command line), forwards SIGTERM, SIGINT and SIGHUP to the
workers, waits for them to stop, then stops the embedded server and exits.
A worker that exits while the parent is not stopping is restarted, after
1 s, doubling up to 30 s while it keeps exiting within a minute of its
start: the other workers go on serving meanwhile, and clients follow the
restarted one through Metadata as they follow any gateway that comes back.
A worker whose first start fails (it exits with an error status within a
minute: a port in use, an unreadable certificate, a Redis CA that does not
match) would fail the same way again, so the parent stops the others and
exits with that status instead. Workers run in their own process group (a terminal's Ctrl-C reaches only the
parent, which stops them in order) and get SIGTERM if the parent dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import pickle
import signal
import sys

from .address import HostPort
from .config import RESERVED_BROKER_MAX_ID, Config
from .data_dir import die_with_parent
from .embedded import EmbeddedRedis
from .security.listeners import Endpoint

log = logging.getLogger(__name__)

FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# A worker that ran this long before exiting is restarted after the first delay again.
STEADY_RUN = 60.0
# How long stopped workers get beyond their own shutdown grace before SIGKILL.
STOP_MARGIN = 20.0


def worker_config(config: Config, index: int, redis_url: str) -> Config:
    """Worker ``index``'s settings: every port plus ``index``, a fixed node ID plus ``index``."""
    return dataclasses.replace(
        config,
        workers=1,
        redis_url=redis_url,
        listen=_shifted(config.listen, index),
        advertised_listener=_shifted_or_none(config.advertised_listener, index),
        listeners=tuple(_shifted_endpoint(endpoint, index) for endpoint in config.listeners),
        advertised_listeners=tuple(_shifted_endpoint(endpoint, index)
                                   for endpoint in config.advertised_listeners),
        metrics_listen=_shifted_or_none(config.metrics_listen, index),
        node_id=None if config.node_id is None else config.node_id + index,
    )


def check_workers(config: Config) -> None:
    """ValueError when the last worker's ports or node ID would be out of range."""
    last = config.workers - 1
    ports = [config.listen, *(e.address for e in (*config.listeners, *config.advertised_listeners))]
    ports += [address for address in (config.advertised_listener, config.metrics_listen) if address]
    for address in ports:
        if address.port and address.port + last > 65535:
            raise ValueError(f"--workers {config.workers}: port {address.port} + {last} is above 65535")
    if config.node_id is not None and config.node_id + last > RESERVED_BROKER_MAX_ID:
        raise ValueError(f"--workers {config.workers}: --node-id {config.node_id} + {last} is above "
                         f"{RESERVED_BROKER_MAX_ID}")


def _shifted(address: HostPort, index: int) -> HostPort:
    # Port 0 (any free port) stays 0: each worker gets a free port of its own.
    return HostPort(address.host, address.port + index if address.port else 0)


def _shifted_or_none(address: HostPort | None, index: int) -> HostPort | None:
    return None if address is None else _shifted(address, index)


def _shifted_endpoint(endpoint: Endpoint, index: int) -> Endpoint:
    return Endpoint(endpoint.name, _shifted(endpoint.address, index))


class Worker:
    """One gateway child process, restarted when it exits on its own."""

    def __init__(self, index: int, config: Config, stopping: asyncio.Event) -> None:
        self.index = index
        self.config = config
        self.stopping = stopping
        self.process: asyncio.subprocess.Process | None = None
        # The exit status of a first start that failed; the supervisor exits with it.
        self.failed: int | None = None

    async def run(self) -> None:
        """Keep the worker running until the supervisor stops."""
        delay = FIRST_RESTART_DELAY
        first = True
        while not self.stopping.is_set():
            loop = asyncio.get_running_loop()
            started = loop.time()
            code = await self._run_once()
            if self.stopping.is_set():
                return
            ran = loop.time() - started
            if first and code > 0 and ran < STEADY_RUN:
                log.error("worker %d could not start (exit status %d); stopping every worker",
                          self.index, code)
                self.failed = code
                self.stopping.set()
                return
            first = False
            delay = FIRST_RESTART_DELAY if ran >= STEADY_RUN else delay
            log.warning("worker %d exited with status %s; restarting it in %.0f s",
                        self.index, code, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)

    async def _run_once(self) -> int:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __package__ + ".worker",
            stdin=asyncio.subprocess.PIPE,
            # Its own process group: a terminal's Ctrl-C goes to the parent
            # alone, which stops the workers itself (and does not restart them).
            process_group=0,
            # The parent-death signal follows the forking thread: this is the
            # main thread, which lives as long as the parent.
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
        log.info("worker %d started, pid %d", self.index, self.process.pid)
        assert self.process.stdin is not None
        self.process.stdin.write(pickle.dumps((self.index, self.config)))
        self.process.stdin.close()
        return await self.process.wait()

    def terminate(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)

    async def wait_stopped(self, timeout: float) -> None:
        """Wait for the worker to exit after terminate(); SIGKILL it past ``timeout``."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            log.warning("worker %d did not stop within %.0f s of SIGTERM; killing it", self.index, timeout)
            process.kill()
            await process.wait()


async def supervise(config: Config) -> int:
    """Start ``config.workers`` gateways, keep them running, stop them on a signal."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stopping.set)
    embedded = None
    redis_url = config.redis_url
    try:
        if redis_url is None:
            embedded = EmbeddedRedis(config.data_dir)
            await embedded.start(f"kafka-redis-gateway --workers {config.workers}, pid {os.getpid()}")
            redis_url = embedded.url
        workers = [Worker(i, worker_config(config, i, redis_url), stopping) for i in range(config.workers)]
        running = [asyncio.create_task(worker.run()) for worker in workers]
        await stopping.wait()
        log.info("stopping %d workers", len(workers))
        for worker in workers:
            worker.terminate()
        await asyncio.gather(*(worker.wait_stopped(config.shutdown_grace + STOP_MARGIN)
                               for worker in workers))
        await asyncio.gather(*running)
    finally:
        if embedded is not None:
            await embedded.stop()
    log.info("all workers stopped")
    return next((worker.failed for worker in workers if worker.failed is not None), 0)

