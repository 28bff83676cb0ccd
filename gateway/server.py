"""The gateway server: start-up, accept loop and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal

from . import metrics
from .cluster import Cluster
from .compaction import run as run_compaction
from .config import Config
from .connection import Connection
from .context import Broker
from .coordinator import CoordinatorConfig, GroupCoordinator
from .coordinator.ownership import Ownership
from .coordinator.share import ShareGroups
from .coordinator.transactions import run_timeouts as run_transaction_timeouts
from .dispatch import Router
from .embedded import EmbeddedRedis
from .handlers import ROUTES
from .heap import HeapTrimmer
from .listener import Listener, Tls, fit_file_limit
from .logs import RateLimitedLog
from .producer_expiry import run as run_producer_expiry
from .request_memory import RequestMemory
from .retention import run as run_retention
from .security.acls import Policy
from .security.authorizer import Authorizer
from .security.listeners import ListenerSpec, authenticates, is_loopback, resolve, tls_files
from .security.tls import ReloadingContext
from .storage import RedisStorage, StorageUnavailable, keys
from .storage.acls import RedisAclStore
from .storage.brokers import Endpoint, RedisBrokerRegistry
from .storage.credentials import RedisCredentialStore
from .storage.groups import RedisGroupStorage
from .storage.leases import Holder, RedisLeaseStore
from .storage.redis_cluster import is_cluster
from .storage.redis_tls import RedisTlsFailed, tls_failure
from .storage.shares import RedisShareStorage

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.router = Router(ROUTES)
        self.embedded: EmbeddedRedis | None = None
        self.storage: RedisStorage
        self.coordinator: GroupCoordinator
        self.shares: ShareGroups
        self.ownership: Ownership
        self.transaction_ownership: Ownership
        self.listener_specs = resolve(config)
        # Each listener's broker: what Metadata tells the clients that connected on it.
        self.brokers: dict[str, Broker] = {}
        self.cluster: Cluster
        self._listeners: list[Listener] = []
        self._tls: ReloadingContext | None = None
        self._tls_watch: asyncio.Task[None] | None = None
        self._heap = HeapTrimmer()
        self.request_memory = RequestMemory(config.max_buffered_request_bytes)
        self._connections: dict[Connection, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._retention: asyncio.Task[None] | None = None
        self._compaction: asyncio.Task[None] | None = None
        self._producer_expiry: asyncio.Task[None] | None = None
        self._transaction_timeouts: asyncio.Task[None] | None = None
        self._metrics_server: metrics.MetricsServer | None = None
        # What clients cause, logged without letting them flood the log.
        self.client_log = RateLimitedLog(log, config.warning_interval_ms / 1000)

    async def start(self) -> None:
        redis_url = self.config.redis_url
        if redis_url is None:
            self.embedded = EmbeddedRedis(self.config.data_dir)
            # Named to a second gateway started on the same data directory.
            await self.embedded.start(f"the gateway pid {os.getpid()} listening on {self._bound()}")
            redis_url = self.embedded.url
        # A Redis Cluster is found from the node the URL names (docs/operations.md).
        cluster = await self._is_cluster(redis_url)
        self.storage = RedisStorage(redis_url, timeout=self.config.redis_timeout, cluster=cluster)
        self.credentials = RedisCredentialStore(redis_url, timeout=self.config.redis_timeout,
                                                cluster=cluster)
        self.authorizer = Authorizer(
            Policy(self.config.authorizer, frozenset(self.config.super_users),
                   self.config.allow_everyone_if_no_acl_found),
            RedisAclStore(redis_url, timeout=self.config.redis_timeout, cluster=cluster),
            self.config.acl_refresh_ms)
        cluster_id = await self._cluster_id()
        await self.authorizer.start()
        if self.config.authorizer:
            log.info("ACLs enforced: %d read from Redis, super users %s, everyone allowed where no "
                     "ACL is found: %s", len(self.authorizer.acls.bindings),
                     ", ".join(self.config.super_users) or "none",
                     self.config.allow_everyone_if_no_acl_found)
        # Group coordinators' leases last as long as the gateway's own (started
        # once the cluster is joined, before the first connection is accepted).
        self.ownership = Ownership(RedisLeaseStore(redis_url, timeout=self.config.redis_timeout,
                                                   cluster=cluster),
                                   keys.group_membership, self.config.broker_lease_ms)
        # Transaction coordinators' leases, the same way, over each ID's state hash.
        self.transaction_ownership = Ownership(
            RedisLeaseStore(redis_url, timeout=self.config.redis_timeout, cluster=cluster),
            keys.transaction, self.config.broker_lease_ms)
        self.coordinator = GroupCoordinator(
            RedisGroupStorage(redis_url, timeout=self.config.redis_timeout,
                              partition_keys=self.storage.partition_keys, cluster=cluster),
            CoordinatorConfig(initial_rebalance_delay_ms=self.config.group_initial_rebalance_delay_ms),
            self.ownership,
        )
        self.shares = ShareGroups(
            RedisShareStorage(redis_url, timeout=self.config.redis_timeout,
                              partition_keys=self.storage.partition_keys, cluster=cluster),
            self.config.group_share_record_lock_duration_ms, self.config.group_share_delivery_count_limit)
        log.info("%s", await self.storage.configure_durability(
            self.config.acks_all_fsync, self.config.acks_all_replicas))
        log.info("Redis function library %s loaded", await self.storage.load_functions())
        metrics.GROUPS.add(self._group_states)
        if self.config.metrics_listen is not None:
            listen = self.config.metrics_listen
            self._metrics_server = metrics.MetricsServer(listen.host, listen.port)
        self.cluster = Cluster(RedisBrokerRegistry(redis_url, timeout=self.config.redis_timeout,
                                                   cluster=cluster),
                               self.config.broker_lease_ms)
        node_id = await self.cluster.join(
            self.config.node_id, tuple(Endpoint(spec.name, spec.advertised.host, spec.advertised.port)
                                       for spec in self.listener_specs), self.config.rack)
        self.ownership.start(Holder(node_id, self.cluster.instance))
        self.transaction_ownership.start(Holder(node_id, self.cluster.instance))
        self.brokers = {spec.name: Broker(node_id, spec.advertised.host, spec.advertised.port,
                                          cluster_id, self.config.rack, spec.name)
                        for spec in self.listener_specs}
        self._retention = asyncio.create_task(
            run_retention(self.storage, self.config.retention_check_interval_ms,
                          self.cluster.is_controller))
        self._compaction = asyncio.create_task(
            run_compaction(self.storage, self.config.retention_check_interval_ms,
                           self.cluster.is_controller))
        self._producer_expiry = asyncio.create_task(run_producer_expiry(
            self.storage, self.config.producer_id_expiration_check_interval_ms,
            self.config.producer_id_expiration_ms, self.cluster.is_controller))
        self._transaction_timeouts = asyncio.create_task(run_transaction_timeouts(
            self.storage, self.config.transaction_abort_timed_out_interval_ms, self.transaction_ownership,
            self.cluster, self.config.transactional_id_expiration_ms))
        # Everything alive now (modules, the protocol schemas, the routes)
        # lives as long as the process: freezing it keeps the cyclic GC's
        # full collections, which stop the event loop, from walking it again
        # and again (about 30 ms per collection without this).
        gc.collect()
        gc.freeze()
        file_limit_problem = fit_file_limit(self.config.max_connections)
        if file_limit_problem:
            log.warning("%s", file_limit_problem)
        self._start_tls()
        for spec in self.listener_specs:
            listener = Listener(spec.bind.host, spec.bind.port, functools.partial(self._accept, spec),
                                self.client_log, self._open_connections, self._admit, self._refuse,
                                self._listener_tls(spec))
            self._listeners.append(listener)
            listener.start()
        log.info(
            "listening on %s, node %d of cluster %s, storing in %s",
            ", ".join(f"{spec.name}://{spec.bind} {spec.protocol.value} (advertised as {spec.advertised})"
                      for spec in self.listener_specs),
            node_id, cluster_id, _redacted(redis_url),
        )
        self._warn_unauthenticated()

    def _start_tls(self) -> None:
        files = tls_files(self.config)
        if files is not None:
            self._tls = ReloadingContext(files)
            self._tls_watch = asyncio.create_task(self._tls.watch())

    def _listener_tls(self, spec: ListenerSpec) -> Tls | None:
        if not spec.protocol.tls:
            return None
        tls = self._tls
        assert tls is not None
        # A handshake is bounded as a begun request is.
        return Tls(lambda: tls.current, self.config.request_read_timeout_ms / 1000)

    def _bound(self) -> str:
        return ", ".join(f"{spec.name}://{spec.bind}" for spec in self.listener_specs)

    def _warn_unauthenticated(self) -> None:
        """Say loudly that a listener beyond loopback lets anyone in."""
        for spec in self.listener_specs:
            if authenticates(spec, self.config) or is_loopback(spec.bind.host):
                continue
            log.warning(
                "LISTENER %s ON %s HAS NO AUTHENTICATION: anyone who reaches it can %s. Use SASL_SSL "
                "or SASL_PLAINTEXT listeners (docs/security.md), or bind it to loopback.",
                spec.name, spec.bind, self._anonymous_may())

    def _anonymous_may(self) -> str:
        """What an unauthenticated client (User:ANONYMOUS) may do, for the warning above."""
        config = self.config
        if config.authorizer and "User:ANONYMOUS" not in config.super_users:
            return "do what the ACLs allow User:ANONYMOUS and User:*"
        return "read, write and delete every topic and change configs"

    async def _is_cluster(self, redis_url: str) -> bool:
        # The first question to Redis: wait for it, as for the cluster ID below.
        while True:
            try:
                return await is_cluster(redis_url, timeout=self.config.redis_timeout)
            except StorageUnavailable as exc:
                refused = tls_failure(exc)
                if refused is not None:
                    # Waiting cures an absent Redis, not a certificate nobody trusts.
                    raise RedisTlsFailed(
                        f"TLS with Redis at {_redacted(redis_url)} failed: {refused}. Check the URL's "
                        "ssl_ca_certs (the CA that signed Redis's certificate), ssl_certfile and "
                        "ssl_keyfile (when Redis has tls-auth-clients), ssl_check_hostname "
                        "(docs/security.md#tls-to-redis)") from exc
                log.warning("waiting for Redis at %s: %s", _redacted(redis_url), exc)
                await asyncio.sleep(1.0)

    async def _cluster_id(self) -> str:
        # The cluster ID lives in Redis so every gateway on it reports the same
        # one; wait for Redis rather than start with a made-up ID.
        while True:
            try:
                return await self.storage.cluster_id()
            except StorageUnavailable as exc:
                log.warning("waiting for Redis at %s: %s", _redacted(self.storage.url), exc)
                await asyncio.sleep(1.0)

    @property
    def port(self) -> int:
        """The first listener's port (the only one with --listen)."""
        return self._listeners[0].port

    def listener_port(self, name: str) -> int:
        for spec, listener in zip(self.listener_specs, self._listeners, strict=True):
            if spec.name == name:
                return listener.port
        raise KeyError(name)

    def _group_states(self) -> list[str]:
        # Called on the metrics server's thread: groups() copies the table in
        # one step, and a group's state is one attribute read.
        return [group.state.value for group in self.coordinator.groups()]

    async def _accept(self, listener: ListenerSpec, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        connection = Connection(self, reader, writer, listener, self.brokers[listener.name])
        task = asyncio.current_task()
        assert task is not None
        self._connections[connection] = task
        self._heap.opened(len(self._connections))
        metrics.OPEN_CONNECTIONS.inc()
        try:
            await connection.serve()
        except asyncio.CancelledError:
            pass  # shutdown cancels idle connections; nothing to report
        finally:
            self._connections.pop(connection, None)
            self._heap.closed(len(self._connections))
            metrics.OPEN_CONNECTIONS.dec()

    def _open_connections(self) -> int:
        """Connections served, and those accepted but still in their TLS handshake."""
        return len(self._connections) + sum(listener.handshaking for listener in self._listeners)

    def _admit(self) -> bool:
        return self._open_connections() < self.config.max_connections

    def _refuse(self, peer: str) -> None:
        """Log a connection over --max-connections (Kafka's max.connections); the listener closes it."""
        metrics.CONNECTIONS_REFUSED.inc()
        self.client_log.warning(
            "refused", "refusing connection from %s: %d connections open, the --max-connections limit",
            peer, self._open_connections())

    def request_stop(self) -> None:
        self._stop.set()

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        # SIGHUP (the terminal closed) is a clean stop too: dying of it would
        # skip stopping the embedded server.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            # A signal must also stop a start-up that is waiting for Redis.
            starting = asyncio.create_task(self.start())
            stopping = asyncio.create_task(self._stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return
            starting.result()  # raise what start-up raised
            await stopping
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish, then close."""
        log.info("shutting down")
        handing_over = hasattr(self, "cluster") and await self.cluster.hand_over()
        if hasattr(self, "coordinator"):
            # Parked JoinGroup/SyncGroup requests answer NOT_COORDINATOR now
            # rather than hold shutdown up for a rebalance timeout.
            self.coordinator.close()
        if hasattr(self, "ownership"):
            # Released, the other gateways take this one's groups at once; the
            # requests still finishing here write only if none took them yet.
            await self.ownership.stop()
        if hasattr(self, "transaction_ownership"):
            await self.transaction_ownership.stop()
        if handing_over:
            # Leave first and keep serving a moment, answering Produce and
            # Fetch NOT_LEADER_OR_FOLLOWER and group requests NOT_COORDINATOR,
            # so clients move to the others before the sockets close (Kafka's
            # controlled shutdown; docs/operations.md#several-gateways).
            log.info("handing over to the other gateways for %d ms", self.cluster.handover_ms)
            await asyncio.sleep(self.cluster.handover_ms / 1000)
        for listener in self._listeners:
            await listener.close()
        self._heap.cancel()
        for task in (self._retention, self._compaction, self._producer_expiry, self._transaction_timeouts,
                     self._tls_watch):
            if task is not None:
                task.cancel()
                # Bounded: a cancellation that meets redis-py's own timeout
                # inside a Redis call can be swallowed, and the task goes on
                # to its next round (cluster.py's lease renewal did that).
                await asyncio.wait({task}, timeout=self.config.shutdown_grace)
        for connection in list(self._connections):
            connection.closing = True
            if not connection.busy:
                self._connections[connection].cancel()
        pending = list(self._connections.values())
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=self.config.shutdown_grace)
            for task in still_running:
                task.cancel()
        if hasattr(self, "coordinator"):
            # An Empty generation stored in the background by a last LeaveGroup.
            await self.coordinator.flush(timeout=self.config.shutdown_grace)
        metrics.GROUPS.remove(self._group_states)
        if self._metrics_server is not None:
            await asyncio.to_thread(self._metrics_server.stop)
        if hasattr(self, "storage"):
            await self.storage.close()
        if hasattr(self, "credentials"):
            await self.credentials.close()
        if hasattr(self, "authorizer"):
            await self.authorizer.stop()
        if hasattr(self, "cluster"):
            await self.cluster.close()
        if hasattr(self, "coordinator"):
            await self.coordinator.storage.close()
        if hasattr(self, "shares"):
            await self.shares.close()
        if hasattr(self, "ownership"):
            await self.ownership.store.close()
        if hasattr(self, "transaction_ownership"):
            await self.transaction_ownership.store.close()
        if self.embedded is not None:
            await self.embedded.stop()
        log.info("stopped")


def _redacted(url: str) -> str:
    # Do not log passwords from redis://user:password@host URLs.
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
