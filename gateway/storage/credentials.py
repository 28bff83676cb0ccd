"""SCRAM credentials in Redis, so every gateway on the Redis sees the same users.

One hash per mechanism, ``kafka:{scram}:SCRAM-SHA-256`` and
``kafka:{scram}:SCRAM-SHA-512`` (one hash tag: a change to both is one
MULTI in Redis Cluster too), field = user name, value = the credential in
Kafka's own text form, ``salt=<b64>,stored_key=<b64>,server_key=<b64>,iterations=N``.
Only salted hashes are stored, never a password (RFC 5802's StoredKey and
ServerKey). A request naming many users is read and written in steps of
MAX_USERS_PER_CALL users (one HMGET per hash, one MULTI), so it never holds
Redis long; one user's changes are always in one MULTI.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import call_once
from .redis_cluster import redis_client

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# "Describe all users" reads at most this many (one request must stay bounded).
MAX_LISTED_USERS = 10_000
# Users one Redis command or MULTI touches: a request naming many is several.
MAX_USERS_PER_CALL = 1000
_SCAN_COUNT = 1000


def credentials_key(mechanism: str) -> str:
    return f"kafka:{{scram}}:{mechanism}"


@dataclass(frozen=True, slots=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def encode(self) -> str:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()
        return (f"salt={b64(self.salt)},stored_key={b64(self.stored_key)},"
                f"server_key={b64(self.server_key)},iterations={self.iterations}")

    @classmethod
    def decode(cls, text: str | bytes) -> ScramCredential:
        if isinstance(text, bytes):
            text = text.decode()
        fields = dict(item.split("=", 1) for item in text.split(","))
        return cls(base64.b64decode(fields["salt"]), base64.b64decode(fields["stored_key"]),
                   base64.b64decode(fields["server_key"]), int(fields["iterations"]))


@dataclass(frozen=True, slots=True)
class CredentialChange:
    """Set (credential given) or delete (None) one user's credential of one mechanism."""

    user: str
    mechanism: str
    credential: ScramCredential | None


class CredentialStore(Protocol):
    async def credential(self, user: str, mechanism: str) -> ScramCredential | None: ...

    async def mechanisms_of(self, users: Sequence[str]) -> dict[str, dict[str, int]]:
        """Each named user -> its mechanisms -> iterations (absent users are left out)."""
        ...

    async def all_users(self) -> dict[str, dict[str, int]]: ...

    async def existing(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (user, mechanism) pairs have a credential."""
        ...

    async def apply(self, changes: Sequence[CredentialChange]) -> None: ...

    async def close(self) -> None: ...


class RedisCredentialStore:
    """Implements :class:`CredentialStore`, on a small connection pool of its own."""

    def __init__(self, url: str, *, timeout: float = 5.0, max_connections: int = 4,
                 cluster: bool = False) -> None:
        # On a Redis Cluster, redis-py's cluster client: the keys share one hash tag.
        self._redis = redis_client(url, cluster=cluster, max_connections=max_connections,
                                   timeout=timeout)

    async def close(self) -> None:
        await self._redis.aclose()

    async def credential(self, user: str, mechanism: str) -> ScramCredential | None:
        raw = await call_once(lambda: self._redis.hget(credentials_key(mechanism), user))  # type: ignore[misc]
        return None if raw is None else ScramCredential.decode(raw)

    async def mechanisms_of(self, users: Sequence[str]) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for start in range(0, len(users), MAX_USERS_PER_CALL):
            chunk = list(users[start:start + MAX_USERS_PER_CALL])
            async def read() -> list[list[bytes | None]]:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for mechanism in MECHANISMS:
                        pipe.hmget(credentials_key(mechanism), chunk)  # noqa: B023 (awaited at once)
                    return await pipe.execute()  # type: ignore[no-any-return]
            replies = await call_once(read)
            for mechanism, values in zip(MECHANISMS, replies, strict=True):
                for user, raw in zip(chunk, values, strict=True):
                    if raw is not None:
                        found.setdefault(user, {})[mechanism] = ScramCredential.decode(raw).iterations
        return found

    async def all_users(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for mechanism in MECHANISMS:
            for user, raw in (await self._scan(credentials_key(mechanism))).items():
                found.setdefault(user, {})[mechanism] = ScramCredential.decode(raw).iterations
        return found

    async def _scan(self, key: str) -> Mapping[str, bytes]:
        entries: dict[str, bytes] = {}
        cursor = 0
        while len(entries) < MAX_LISTED_USERS:
            reply: Any = await call_once(
                lambda: self._redis.hscan(key, cursor, count=_SCAN_COUNT))  # noqa: B023 (awaited at once)
            cursor, page = reply
            entries.update((name.decode(), value) for name, value in page.items())
            if cursor == 0:
                break
        return entries

    async def existing(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        wanted = list(pairs)
        if not wanted:
            return set()
        async def read() -> list[bool]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user, mechanism in wanted:
                    pipe.hexists(credentials_key(mechanism), user)
                return await pipe.execute()  # type: ignore[no-any-return]
        replies = await call_once(read)
        return {pair for pair, exists in zip(wanted, replies, strict=True) if exists}

    async def apply(self, changes: Sequence[CredentialChange]) -> None:
        for batch in _batches_by_user(changes, MAX_USERS_PER_CALL):
            async def write() -> None:
                # A user's changes all or none: MULTI (one hash tag, one slot).
                async with self._redis.pipeline(transaction=True) as pipe:
                    for change in batch:  # noqa: B023 (awaited at once)
                        key = credentials_key(change.mechanism)
                        if change.credential is None:
                            pipe.hdel(key, change.user)
                        else:
                            pipe.hset(key, change.user, change.credential.encode())
                    await pipe.execute()
            await call_once(write)


def _batches_by_user(changes: Sequence[CredentialChange], size: int) -> list[list[CredentialChange]]:
    """The changes in batches of about ``size`` (one MULTI each, so Redis is never held long),
    never splitting one user's changes (at most four: two mechanisms, set or delete)."""
    by_user: dict[str, list[CredentialChange]] = {}
    for change in changes:
        by_user.setdefault(change.user, []).append(change)
    batches: list[list[CredentialChange]] = []
    for user_changes in by_user.values():
        if not batches or len(batches[-1]) + len(user_changes) > size:
            batches.append([])
        batches[-1].extend(user_changes)
    return batches
