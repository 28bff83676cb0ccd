"""compose/compose.yaml publishes ports on the host's loopback unless KRG_PUBLISH_HOST says
otherwise and has a Redis Cluster profile; compose/hardened.yaml publishes only a SASL_SSL
listener, on a TLS-only Redis.

The demo's gateway serves PLAINTEXT without authentication, so publishing on
every interface (Docker's default for "HOST_PORT:CONTAINER_PORT") would hand
the data to the network. Checked on the files' text, since no Docker engine
runs here (tests/integration/test_hardened_example.py runs the hardened one's
Redis command line and gateway environment).
"""

from __future__ import annotations

import re

from tests.compose_support import COMPOSE_DIR, list_under, mapping_under, service_lines

COMPOSE = COMPOSE_DIR / "compose.yaml"


def published_ports() -> list[str]:
    """The entries of every service's `ports:` list."""
    entries, in_ports = [], False
    for line in COMPOSE.read_text().splitlines():
        if re.fullmatch(r"\s+ports:", line):
            in_ports = True
        elif in_ports and (item := re.fullmatch(r"\s+- \"?([^\"]+)\"?", line)):
            entries.append(item[1])
        else:
            in_ports = False
    return entries


def test_every_published_port_is_on_loopback_by_default() -> None:
    ports = published_ports()
    assert len(ports) == 5  # the four gateways' and Kafka's
    for entry in ports:
        assert re.fullmatch(r"\$\{KRG_PUBLISH_HOST:-127\.0\.0\.1\}:\d+:\d+", entry), entry


# -- compose/compose.yaml's Redis Cluster (docs/operations.md#redis-cluster) --------

CLUSTER_NODES = [f"redis-node-{n}" for n in range(1, 7)]


def test_the_redis_cluster_profile_is_three_primaries_with_a_replica_each() -> None:
    text = COMPOSE.read_text()
    shared = text.split("x-redis-cluster-node: &redis-cluster-node\n", 1)[1].split("services:", 1)[0]
    assert '"--cluster-enabled", "yes"' in shared and '"--appendonly", "yes"' in shared
    assert 'profiles: ["redis-cluster"]' in shared
    volumes = text.split("\nvolumes:\n", 1)[1]
    for name in CLUSTER_NODES:
        node = service_lines(COMPOSE, name)
        assert "<<: *redis-cluster-node" in [line.strip() for line in node]
        # Its own data and nodes.conf, on a volume of its own.
        assert list_under(node, "volumes") == [f"{name}:/data"]
        assert re.search(rf"^  {name}:$", volumes, re.MULTILINE)
    init = service_lines(COMPOSE, "redis-cluster-init")
    assert "--cluster-replicas 1" in "\n".join(init) and "for n in 1 2 3 4 5 6" in "\n".join(init)
    assert list_under(init, "depends_on") == CLUSTER_NODES
    gateway = service_lines(COMPOSE, "gateway-redis-cluster")
    environment = mapping_under(gateway, "environment")
    assert environment["KRG_REDIS_URL"] == "redis://redis-node-1:6379/0"
    assert environment["KRG_ACKS_ALL_REPLICAS"] == "1"
    assert "condition: service_completed_successfully" in "\n".join(gateway)
    for name in ["redis-cluster-init", "gateway-redis-cluster"]:
        assert 'profiles: ["redis-cluster"]' in "\n".join(service_lines(COMPOSE, name))


# -- compose/hardened.yaml: the hardened example of docs/security.md -----------------

HARDENED = COMPOSE_DIR / "hardened.yaml"


def hardened_environment() -> dict[str, str]:
    return mapping_under(service_lines(HARDENED, "gateway"), "environment")


def test_the_hardened_example_publishes_only_its_sasl_ssl_listener() -> None:
    environment = hardened_environment()
    protocols = dict(item.split(":") for item in environment["KRG_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    # NAME -> (host, port)
    listeners = {}
    for item in environment["KRG_LISTENERS"].split(","):
        found = re.fullmatch(r"(\w+)://([\d.]+):(\d+)", item)
        assert found, item
        listeners[found[1]] = (found[2], found[3])
    for name, (host, _) in listeners.items():
        # Nothing beyond loopback without TLS and authentication.
        assert host == "127.0.0.1" or protocols[name] == "SASL_SSL", name
    published = list_under(service_lines(HARDENED, "gateway"), "ports")
    assert len(published) == 1
    container_port = published[0].rsplit(":", 1)[1]
    (external,) = [name for name, (_, port) in listeners.items() if port == container_port]
    assert protocols[external] == "SASL_SSL"
    assert "PLAIN" not in environment["KRG_SASL_ENABLED_MECHANISMS"].split(",")  # SCRAM only
    assert environment["KRG_AUTHORIZER"] == "true"
    assert "KRG_ALLOW_EVERYONE_IF_NO_ACL_FOUND" not in environment
    assert environment["KRG_SSL_CERTFILE"] and environment["KRG_SSL_KEYFILE"]


def test_the_hardened_example_reaches_redis_over_tls_as_its_own_user() -> None:
    url = hardened_environment()["KRG_REDIS_URL"]
    assert re.match(r"rediss://krg:\$\{KRG_REDIS_PASSWORD:\?[^}]+\}@redis:6380/0\?", url), url
    query = dict(item.split("=", 1) for item in url.rsplit("?", 1)[1].split("&"))
    assert set(query) == {"ssl_ca_certs", "ssl_certfile", "ssl_keyfile"}


def test_the_hardened_example_redis_speaks_only_tls_to_known_users() -> None:
    redis = service_lines(HARDENED, "redis")
    command = list_under(redis, "command")
    flags = dict(zip(command[1::2], command[2::2], strict=True))
    assert flags["--port"] == "0"  # no plaintext port
    assert flags["--tls-port"] == "6380"
    assert flags["--tls-auth-clients"] == "yes"
    assert flags["--aclfile"].startswith("/secrets/")  # its users: the default one off (docs)
    assert list_under(redis, "ports") == []
