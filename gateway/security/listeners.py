"""Kafka's listener settings: ``listeners``, ``advertised.listeners`` and the security protocol map.

A listener is a name, an address to bind and a security protocol (from the
map, by name, as in Kafka); each has its own advertised address, which is
what Metadata and FindCoordinator tell a client that connected on it. The
old ``--listen``/``--advertised-listener`` pair is the one-listener case:
a PLAINTEXT listener named PLAINTEXT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from ..address import HostPort
from .tls import ClientAuth, TlsFiles

if TYPE_CHECKING:
    from ..config import Config


class SecurityProtocol(Enum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """NAME://HOST:PORT, one item of --listeners or --advertised-listeners."""

    name: str
    address: HostPort

    def __str__(self) -> str:
        host = f"[{self.address.host}]" if ":" in self.address.host else self.address.host
        return f"{self.name}://{host}:{self.address.port}"


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """A listener the gateway serves: where it binds, how it is secured, what it advertises."""

    name: str
    bind: HostPort
    protocol: SecurityProtocol
    advertised: HostPort


# Kafka's default listener.security.protocol.map: each protocol names itself.
DEFAULT_PROTOCOL_MAP: tuple[tuple[str, SecurityProtocol], ...] = tuple(
    (protocol.value, protocol) for protocol in SecurityProtocol)

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_WILDCARDS = ("0.0.0.0", "::", "")


def parse_endpoints(text: str) -> tuple[Endpoint, ...]:
    """NAME://HOST:PORT[,NAME://HOST:PORT...]; an empty HOST binds every interface, as in Kafka."""
    endpoints = []
    for item in (part.strip() for part in text.split(",")):
        name, sep, address = item.partition("://")
        if not sep or not _NAME.fullmatch(name):
            raise ValueError(f"expected NAME://HOST:PORT[,...], got {item!r}")
        endpoints.append(Endpoint(name.upper(), HostPort.parse(address)))
    names = [endpoint.name for endpoint in endpoints]
    if len(set(names)) != len(names):
        raise ValueError(f"each listener name may appear once, got {text!r}")
    return tuple(endpoints)


def parse_protocol_map(text: str) -> tuple[tuple[str, SecurityProtocol], ...]:
    """NAME:PROTOCOL[,NAME:PROTOCOL...] (Kafka's listener.security.protocol.map)."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        name, _, protocol = item.partition(":")
        if not _NAME.fullmatch(name) or protocol.upper() not in SecurityProtocol.__members__:
            choices = ", ".join(SecurityProtocol.__members__)
            raise ValueError(f"expected NAME:PROTOCOL[,...] with PROTOCOL one of {choices}, got {item!r}")
        pairs.append((name.upper(), SecurityProtocol[protocol.upper()]))
    return tuple(pairs)


def resolve(config: Config) -> tuple[ListenerSpec, ...]:
    """The listeners to serve, checked against each other; ValueError says what is inconsistent."""
    endpoints = config.listeners or (Endpoint("PLAINTEXT", config.listen),)
    protocols = dict(config.listener_security_protocol_map)
    advertised = {endpoint.name: endpoint.address for endpoint in config.advertised_listeners}
    if config.advertised_listener is not None:
        if config.listeners:
            raise ValueError("--advertised-listener goes with --listen; with --listeners "
                             "use --advertised-listeners NAME://HOST:PORT,...")
        advertised["PLAINTEXT"] = config.advertised_listener
    unknown = set(advertised) - {endpoint.name for endpoint in endpoints}
    if unknown:
        raise ValueError(f"--advertised-listeners names listeners not in --listeners: "
                         f"{', '.join(sorted(unknown))}")
    specs = []
    for endpoint in endpoints:
        if endpoint.name not in protocols:
            raise ValueError(f"listener {endpoint.name} has no security protocol in "
                             "--listener-security-protocol-map")
        specs.append(ListenerSpec(endpoint.name, endpoint.address, protocols[endpoint.name],
                                  advertised.get(endpoint.name) or _reachable(endpoint.address)))
    ports = [spec.bind.port for spec in specs if spec.bind.port != 0]
    if len(set(ports)) != len(ports):
        raise ValueError("each listener needs a port of its own")
    _check_tls(config, specs)
    return tuple(specs)


def _check_tls(config: Config, specs: list[ListenerSpec]) -> None:
    tls = [spec.name for spec in specs if spec.protocol.tls]
    if tls and (config.ssl_certfile is None or config.ssl_keyfile is None):
        raise ValueError(f"listener {tls[0]} uses TLS: give --ssl-certfile and --ssl-keyfile")
    if tls and config.ssl_client_auth is not ClientAuth.NONE and config.ssl_cafile is None:
        raise ValueError(f"--ssl-client-auth {config.ssl_client_auth.value} needs --ssl-cafile "
                         "to check client certificates against")


def tls_files(config: Config) -> TlsFiles | None:
    """The TLS files, when some listener uses TLS (resolve() has checked they are given)."""
    if not any(spec.protocol.tls for spec in resolve(config)):
        return None
    assert config.ssl_certfile is not None and config.ssl_keyfile is not None
    return TlsFiles(config.ssl_certfile, config.ssl_keyfile, config.ssl_cafile, config.ssl_client_auth)


def authenticates(spec: ListenerSpec, config: Config) -> bool:
    """Whether clients of the listener prove who they are (SASL, or a required client certificate)."""
    return spec.protocol.sasl or (spec.protocol.tls and config.ssl_client_auth is ClientAuth.REQUIRED)


def _reachable(bind: HostPort) -> HostPort:
    # A wildcard bind is no address a client can connect to; loopback is
    # right for the one-command start and --advertised-listeners says more.
    if bind.host in _WILDCARDS:
        return HostPort("127.0.0.1", bind.port)
    return bind


def is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host == "::1"
