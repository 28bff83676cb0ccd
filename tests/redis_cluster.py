"""A real Redis Cluster for the tests: three valkey-server primaries on loopback ports.

Slots are assigned with CLUSTER ADDSLOTSRANGE and the nodes introduced
with CLUSTER MEET (no valkey-cli needed); the fixture waits until every node
reports ``cluster_state:ok`` and knows the whole slot map.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.servers import RedisServer
from tests.tls_support import Certificates

SLOTS = 16384
CLUSTER_ARGS = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "3000"]
TLS_CLUSTER_ARGS = ["--tls-cluster", "yes", "--tls-replication", "yes"]


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) exists and is free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisClusterServers:
    def __init__(self, data_dir: Path, primaries: int = 3, replicas: bool = False,
                 tls: Certificates | None = None) -> None:
        # With TLS, clients, the cluster bus and replication all speak it.
        args = CLUSTER_ARGS if tls is None else [*CLUSTER_ARGS, *TLS_CLUSTER_ARGS]
        self.nodes = [RedisServer(data_dir / f"node{i}", port=cluster_port(), extra_args=args, tls=tls)
                      for i in range(primaries)]
        # One replica per primary (replicas[i] follows nodes[i]) when asked for.
        self.replicas = [RedisServer(data_dir / f"replica{i}", port=cluster_port(), extra_args=args, tls=tls)
                         for i in range(primaries if replicas else 0)]

    @property
    def url(self) -> str:
        """The URL of one node: the gateway finds the others from it."""
        return self.nodes[0].url

    def start(self) -> RedisClusterServers:
        for node in [*self.nodes, *self.replicas]:
            node.start()
        clients = [node.client() for node in self.nodes]
        share = SLOTS // len(self.nodes)
        for i, client in enumerate(clients):
            last = SLOTS - 1 if i == len(clients) - 1 else (i + 1) * share - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        for node in [*self.nodes[1:], *self.replicas]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        replica_clients = [replica.client() for replica in self.replicas]
        self._wait_until_ok(clients + replica_clients)
        for primary, replica in zip(self.nodes, replica_clients, strict=False):
            replica.execute_command("CLUSTER", "REPLICATE", node_id(primary))
        self._wait_for_replicas(clients)
        for client in clients + replica_clients:
            client.close()
        return self

    def _wait_for_replicas(self, clients: list[redis.Redis], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.replicas and time.monotonic() < deadline:
            if all(int(client.info("replication").get("connected_slaves", 0)) == 1
                   and client.info("replication").get("slave0", {}).get("state") == "online"
                   for client in clients):
                return
            time.sleep(0.05)
        if self.replicas:
            raise RuntimeError("the replicas did not come online")

    @staticmethod
    def _wait_until_ok(clients: list[redis.Redis], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [client.execute_command("CLUSTER", "INFO") for client in clients]
            texts = [info.decode() if isinstance(info, bytes) else str(info) for info in infos]
            if all("cluster_state:ok" in text and f"cluster_known_nodes:{len(clients)}" in text
                   for text in texts):
                return
            time.sleep(0.05)
        raise RuntimeError("the Redis Cluster did not come up")

    def node_of(self, key: str) -> RedisServer:
        """The primary serving ``key``'s slot, as the first live primary's slot map says."""
        client = next(node for node in self.nodes if node.process is not None).client()
        try:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    port = int(primary[1])
                    return next(node for node in [*self.nodes, *self.replicas] if node.port == port)
        finally:
            client.close()
        raise LookupError(key)

    def stop(self) -> None:
        for node in [*self.nodes, *self.replicas]:
            node.stop()


def node_id(node: RedisServer) -> str:
    client = node.client()
    try:
        return str(client.execute_command("CLUSTER", "MYID").decode())
    finally:
        client.close()


def migrate_slot(cluster: RedisClusterServers, slot: int, source: RedisServer, target: RedisServer,
                 between_keys: float = 0.0) -> int:
    """Move a slot as valkey-cli --cluster reshard does; returns the keys moved.

    IMPORTING on the target, MIGRATING on the source, MIGRATE key by key
    (``between_keys`` seconds apart, so that clients meet the slot half
    moved), then SETSLOT NODE on every node.
    """
    source_client, target_client = source.client(), target.client()
    moved = 0
    try:
        target_client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(source))
        source_client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))
        while True:
            batch = source_client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1)
            if not batch:
                break
            source_client.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                          "KEYS", *batch)
            moved += len(batch)
            time.sleep(between_keys)
        owner = node_id(target)
        for node in cluster.nodes:
            client = node.client()
            try:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner)
            finally:
                client.close()
    finally:
        source_client.close()
        target_client.close()
    return moved


def module_redis_cluster(name: str, *, replicas: bool = False) -> Any:
    """A module-scoped fixture ``name``: a Redis Cluster of the module's own, stopped after its tests."""
    @pytest.fixture(scope="module", name=name)
    def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
        cluster = RedisClusterServers(tmp_path_factory.mktemp(name), replicas=replicas).start()
        try:
            yield cluster
        finally:
            cluster.stop()

    return own_cluster
