"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's ScramSaslServer speaks them.

The server side needs only the stored credential (salt, iterations,
StoredKey, ServerKey): a client proves it knows the password without
sending it, and the server proves it holds the credential. Channel binding
is not supported (as in Kafka); the ``tokenauth`` extension is refused
(no delegation tokens).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ..storage.credentials import ScramCredential

# Kafka's ScramMechanism: the iteration counts it accepts for a credential.
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
# AlterUserScramCredentials' mechanism numbers (ScramMechanism.type()).
MECHANISM_TYPES = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
TYPE_OF_MECHANISM = {name: number for number, name in MECHANISM_TYPES.items()}


class ScramError(Exception):
    """The exchange fails: SASL_AUTHENTICATION_FAILED with this message."""


def _hmac(hash_name: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hash_name).digest()


def credential_from_salted_password(mechanism: str, salted_password: bytes, salt: bytes,
                                    iterations: int) -> ScramCredential:
    """StoredKey and ServerKey from SaltedPassword (what AlterUserScramCredentials sends)."""
    hash_name = HASHES[mechanism]
    client_key = _hmac(hash_name, salted_password, b"Client Key")
    stored_key = hashlib.new(hash_name, client_key).digest()
    server_key = _hmac(hash_name, salted_password, b"Server Key")
    return ScramCredential(salt, stored_key, server_key, iterations)


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """PBKDF2 of the password: CPU-heavy by design, call it off the event loop."""
    return hashlib.pbkdf2_hmac(HASHES[mechanism], password.encode(), salt, iterations)


def password_matches(mechanism: str, credential: ScramCredential, password: str) -> bool:
    """Whether the password is the one the credential was made from (for PLAIN; CPU-heavy)."""
    derived = credential_from_salted_password(
        mechanism, salted_password(mechanism, password, credential.salt, credential.iterations),
        credential.salt, credential.iterations)
    return hmac.compare_digest(derived.stored_key, credential.stored_key)


def _attributes(message: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for item in message.split(","):
        name, sep, value = item.partition("=")
        if not sep or len(name) != 1:
            raise ScramError(f"Invalid SCRAM message attribute {item!r}")
        attributes.setdefault(name, value)
    return attributes


def _saslname(text: str) -> str:
    # RFC 5802: "," and "=" are sent as =2C and =3D; any other "=" is invalid.
    if "=" in text.replace("=2C", "").replace("=3D", ""):
        raise ScramError("Invalid user name encoding")
    return text.replace("=2C", ",").replace("=3D", "=")


@dataclass(frozen=True, slots=True)
class ClientFirst:
    user: str
    nonce: str
    bare: str
    gs2_header: str


def parse_client_first(token: bytes) -> ClientFirst:
    try:
        message = token.decode()
    except UnicodeDecodeError:
        raise ScramError("Invalid SCRAM client first message") from None
    parts = message.split(",", 2)
    if len(parts) != 3 or parts[0] not in ("n", "y"):
        # "p=..." asks for channel binding, which Kafka does not support either.
        raise ScramError("Invalid SCRAM client first message (channel binding is not supported)")
    gs2_header = f"{parts[0]},{parts[1]},"
    bare = parts[2]
    attributes = _attributes(bare)
    if "n" not in attributes or "r" not in attributes or not attributes["r"]:
        raise ScramError("Invalid SCRAM client first message")
    if "m" in attributes:
        raise ScramError("SCRAM extensions are not supported")
    if set(attributes) - {"n", "r"}:
        raise ScramError("SCRAM extensions (delegation tokens) are not supported")
    return ClientFirst(_saslname(attributes["n"]), attributes["r"], bare, gs2_header)


class ScramExchange:
    """One server side of a SCRAM exchange: client-first -> server-first, client-final -> server-final."""

    def __init__(self, mechanism: str, first: ClientFirst, credential: ScramCredential,
                 server_nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self.user = first.user
        self._first = first
        self._credential = credential
        # Given only by tests replaying RFC 7677's example.
        self._nonce = first.nonce + (server_nonce or secrets.token_urlsafe(24))
        salt = base64.b64encode(credential.salt).decode()
        self.server_first = f"r={self._nonce},s={salt},i={credential.iterations}"

    def final(self, token: bytes) -> bytes:
        """The server-final message if the client's proof is right; ScramError if not."""
        hash_name = HASHES[self.mechanism]
        try:
            message = token.decode()
        except UnicodeDecodeError:
            raise ScramError("Invalid SCRAM client final message") from None
        without_proof, sep, proof_text = message.rpartition(",p=")
        if not sep:
            raise ScramError("Invalid SCRAM client final message")
        attributes = _attributes(without_proof)
        # Kafka accepts a nonce that ends with the server's (librdkafka before
        # 1.x's fix sends the client nonce twice), and so does the gateway.
        if not attributes.get("r", "").endswith(self._nonce):
            raise ScramError("Invalid client nonce in the final client message")
        if attributes.get("c") != base64.b64encode(self._first.gs2_header.encode()).decode():
            raise ScramError("Invalid SCRAM channel binding")
        try:
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError:
            raise ScramError("Invalid SCRAM client proof") from None
        auth_message = f"{self._first.bare},{self.server_first},{without_proof}".encode()
        signature = _hmac(hash_name, self._credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("Invalid SCRAM client proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(hash_name, client_key).digest(),
                                   self._credential.stored_key):
            raise ScramError("Invalid user credentials")
        server_signature = _hmac(hash_name, self._credential.server_key, auth_message)
        return f"v={base64.b64encode(server_signature).decode()}".encode()
