"""TLS for SSL and SASL_SSL listeners: a server context from PEM files, reloaded when they change.

Certificates are re-read when a file's modification time or size changes
(checked in a worker thread every few seconds), for connections accepted
after that; open connections keep the certificate they were made with, as
with Kafka's dynamic keystore update. A changed file that does not load
(half-written, a key that does not match) is logged and the previous
context stays in use.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

log = logging.getLogger(__name__)

# How often the files are checked for a change.
RELOAD_CHECK_INTERVAL = 2.0


class ClientAuth(Enum):
    """Kafka's ssl.client.auth."""

    NONE = "none"
    REQUESTED = "requested"
    REQUIRED = "required"

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        return {ClientAuth.NONE: ssl.CERT_NONE, ClientAuth.REQUESTED: ssl.CERT_OPTIONAL,
                ClientAuth.REQUIRED: ssl.CERT_REQUIRED}[self]


def parse_client_auth(text: str) -> ClientAuth:
    try:
        return ClientAuth(text.lower())
    except ValueError:
        raise ValueError(f"expected none, requested or required, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class TlsFiles:
    certfile: Path
    keyfile: Path
    cafile: Path | None
    client_auth: ClientAuth

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.certfile, self.keyfile) + ((self.cafile,) if self.cafile else ())


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context from the files (blocking: file reads); ssl.SSLError or OSError if they do not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Kafka's default ssl.enabled.protocols: TLSv1.2 and TLSv1.3.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certfile, files.keyfile)
    context.verify_mode = files.client_auth.verify_mode
    if files.cafile is not None:
        context.load_verify_locations(cafile=files.cafile)
    return context


def _stamps(paths: Iterable[Path]) -> tuple[tuple[int, int], ...]:
    stamps = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            stamps.append((-1, -1))
        else:
            stamps.append((stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


class ReloadingContext:
    """The current server context; watch() replaces it when the files change."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._stamps = _stamps(files.paths)
        # Loaded at start (blocking once, before serving): a bad file stops the start.
        self.current = server_context(files)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_CHECK_INTERVAL)
            await self.reload_if_changed()

    async def reload_if_changed(self) -> bool:
        stamps = await asyncio.to_thread(_stamps, self.files.paths)
        if stamps == self._stamps:
            return False
        try:
            context = await asyncio.to_thread(server_context, self.files)
        except (OSError, ssl.SSLError) as exc:
            # Maybe a file is half-written: the stamps stay old, so the next check retries.
            log.error("TLS certificate files changed but do not load, keeping the previous ones: %s", exc)
            return False
        self._stamps = stamps
        self.current = context
        log.info("TLS certificate reloaded from %s", self.files.certfile)
        return True


# RFC 2253's attribute keywords, as Java's X500Principal.getName() writes them.
_KEYWORDS = {"commonName": "CN", "localityName": "L", "stateOrProvinceName": "ST",
             "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
             "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID"}


def principal(peer_certificate: dict[str, object] | None) -> str:
    """Kafka's default principal for a TLS client: User:<subject as RFC 2253>, or User:ANONYMOUS."""
    subject = (peer_certificate or {}).get("subject")
    if not isinstance(subject, tuple) or not subject:
        return "User:ANONYMOUS"
    # RFC 2253 lists the RDNs last-first; attributes of a multi-valued RDN join with "+".
    rdns = ["+".join(f"{_KEYWORDS.get(name, name)}={_escape(value)}" for name, value in rdn)
            for rdn in reversed(subject)]
    return "User:" + ",".join(rdns)


def _escape(value: str) -> str:
    escaped = "".join(f"\\{char}" if char in ',+"\\<>;' else char for char in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped
