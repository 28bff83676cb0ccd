"""A connection's security state, and the SASL exchanges (PLAIN, SCRAM-SHA-256/512).

On a SASL listener a connection starts unauthenticated and may send only
ApiVersions, SaslHandshake and SaslAuthenticate; anything else closes it, as
Kafka's SaslServerAuthenticator does. SaslHandshake picks a mechanism,
SaslAuthenticate carries its tokens (or, after a v0 handshake, the tokens
come as bare frames without a request header). A failed exchange answers
SASL_AUTHENTICATION_FAILED and then closes the connection.

With --connections-max-reauth-ms (Kafka's connections.max.reauth.ms) a login
lasts that long: SaslAuthenticate tells the client (KIP-368), the client
re-authenticates with a new SaslHandshake (v1+, same mechanism, same
principal) on the same connection, and a connection past its login's end
that sends anything else is closed, as Kafka does.

PLAIN checks the password against the same SCRAM credentials in Redis
(either mechanism's), so one user store serves both; a PLAIN check runs
PBKDF2 (at most 16384 iterations) in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import Enum

from ..storage.credentials import MECHANISMS as SCRAM_MECHANISMS
from ..storage.credentials import CredentialStore
from .listeners import ListenerSpec
from .scram import ScramError, ScramExchange, parse_client_first, password_matches

log = logging.getLogger(__name__)

MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)
API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
BEFORE_AUTHENTICATION = frozenset({API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE})


class SaslFailed(Exception):
    """SASL_AUTHENTICATION_FAILED with this message; the connection closes after the answer."""


def parse_mechanisms(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(name.strip().upper() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in MECHANISMS]
    if unknown or not names:
        raise ValueError(f"expected some of {', '.join(MECHANISMS)}, got {text!r}")
    return names


class State(Enum):
    HANDSHAKE = "waiting for SaslHandshake"
    AUTHENTICATING = "authenticating"
    AUTHENTICATED = "authenticated"
    FAILED = "failed"


@dataclass(slots=True)
class Session:
    """Who a connection is, and where its SASL exchange stands."""

    listener: ListenerSpec
    principal: str
    state: State = State.AUTHENTICATED
    mechanism: str | None = None
    # SaslHandshake v0: the tokens come as bare frames.
    raw_tokens: bool = False
    scram: ScramExchange | None = field(default=None, repr=False)
    # Set by a failed handshake or exchange: the connection closes once answered.
    close_after_answer: bool = False
    # KIP-368: how long a login lasts (--connections-max-reauth-ms; 0: for ever),
    # when this one ends (time.monotonic()), and who re-authenticates.
    reauth_ms: int = 0
    expires_at: float | None = None
    reauthenticating_as: str | None = None

    @classmethod
    def start(cls, listener: ListenerSpec, principal: str, reauth_ms: int = 0) -> Session:
        state = State.HANDSHAKE if listener.protocol.sasl else State.AUTHENTICATED
        return cls(listener, principal, state, reauth_ms=reauth_ms)

    def allows(self, api_key: int) -> bool:
        if self.state is State.AUTHENTICATED:
            # Past its lifetime a login allows only re-authentication; Kafka
            # closes the connection on any other request.
            return not self.expired or api_key == SASL_HANDSHAKE
        return api_key in BEFORE_AUTHENTICATION

    @property
    def lifetime_ms(self) -> int:
        """What SaslAuthenticate tells the client: the login's lifetime once it is done, else 0."""
        return self.reauth_ms if self.state is State.AUTHENTICATED else 0

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and time.monotonic() >= self.expires_at

    def may_reauthenticate(self, mechanism: str, handshake_version: int) -> bool:
        """Whether a SaslHandshake on an authenticated connection starts a KIP-368 re-authentication."""
        return (self.state is State.AUTHENTICATED and self.listener.protocol.sasl and self.reauth_ms > 0
                and handshake_version >= 1 and mechanism == self.mechanism)

    def reauthenticate(self) -> None:
        self.reauthenticating_as = self.principal
        self.state = State.AUTHENTICATING

    @property
    def expects_raw_token(self) -> bool:
        return self.raw_tokens and self.state is State.AUTHENTICATING

    def choose(self, mechanism: str, raw_tokens: bool) -> None:
        self.mechanism = mechanism
        self.raw_tokens = raw_tokens
        self.state = State.AUTHENTICATING

    def fail(self) -> None:
        self.state = State.FAILED
        self.close_after_answer = True

    async def authenticate(self, token: bytes, credentials: CredentialStore) -> bytes:
        """One client token in, the server's token out; SaslFailed when the client is refused."""
        assert self.mechanism is not None and self.state is State.AUTHENTICATING
        try:
            if self.mechanism == "PLAIN":
                return await self._plain(token, credentials)
            return await self._scram(token, credentials)
        except (SaslFailed, ScramError) as exc:
            self.fail()
            raise SaslFailed(
                f"Authentication failed during authentication due to invalid credentials with SASL "
                f"mechanism {self.mechanism}: {exc}") from exc

    async def _plain(self, token: bytes, credentials: CredentialStore) -> bytes:
        parts = token.split(b"\x00")
        if len(parts) != 3 or not parts[1]:
            raise SaslFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        try:
            authorization_id, user, password = (part.decode() for part in parts)
        except UnicodeDecodeError:
            raise SaslFailed("Invalid SASL/PLAIN response: not UTF-8") from None
        if authorization_id and authorization_id != user:
            raise SaslFailed("Authentication failed: Client requested an authorization id "
                             "that is different from username")
        for mechanism in SCRAM_MECHANISMS:
            credential = await credentials.credential(user, mechanism)
            if credential is not None:
                matches = await asyncio.to_thread(password_matches, mechanism, credential, password)
                if not matches:
                    break
                self._authenticated(user)
                return b""
        raise SaslFailed("Invalid username or password")

    async def _scram(self, token: bytes, credentials: CredentialStore) -> bytes:
        assert self.mechanism is not None
        if self.scram is None:
            first = parse_client_first(token)
            credential = await credentials.credential(first.user, self.mechanism)
            if credential is None:
                raise ScramError("Invalid user credentials")
            self.scram = ScramExchange(self.mechanism, first, credential)
            return self.scram.server_first.encode()
        server_final = self.scram.final(token)
        self._authenticated(self.scram.user)
        return server_final

    def _authenticated(self, user: str) -> None:
        principal = f"User:{user}"
        if self.reauthenticating_as not in (None, principal):
            raise SaslFailed("Cannot change principals during re-authentication")
        if self.reauthenticating_as is not None:
            log.debug("%s re-authenticated with %s", principal, self.mechanism)
        self.principal = principal
        self.state = State.AUTHENTICATED
        self.scram = None
        self.reauthenticating_as = None
        if self.reauth_ms > 0:
            self.expires_at = time.monotonic() + self.reauth_ms / 1000
