"""API keys: issued by the admin, sent by integrators in `X-Api-Key`, kept only as hashes.

A key is `tgx_<id><secret>`: a 12-hex-digit id that names it (in the admin's listings and
the gateway's logs) and 32 random bytes. The store keeps the id, the SHA-256 of the whole
key, its owner, its rate limit and whether it was revoked: a stolen database gives no key.
Keys are random, so a plain hash is as strong as a slow one, and a check costs one hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import Annotated

import msgspec
from msgspec import Meta

from node.store import API_KEYS, Index, Store, Table

KEY_PREFIX = "tgx_"
_KEY = re.compile(r"tgx_([0-9a-f]{12})[A-Za-z0-9_-]{43}")
OwnerName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@:-]+$")]
"""Whom a key is for: an address, an email or any short name."""
RequestsPerMinute = Annotated[int, Meta(ge=1, le=1_000_000)]


class ApiKeyRecord(msgspec.Struct, rename="camel", kw_only=True):
    """A key as stored: never the key itself."""

    key_id: str
    owner: str
    key_hash: bytes
    requests_per_minute: int
    created_at: float
    revoked_at: float | None = None


class ApiKeyView(msgspec.Struct, rename="camel", kw_only=True):
    """A key as the admin sees it (the secret is shown once, when it is created)."""

    key_id: str
    owner: str
    requests_per_minute: int
    created_at: float
    revoked: bool

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKeyView:
        """The view of `record`."""
        return cls(
            key_id=record.key_id,
            owner=record.owner,
            requests_per_minute=record.requests_per_minute,
            created_at=record.created_at,
            revoked=record.revoked_at is not None,
        )


class KeyRefusedError(Exception):
    """A request's X-Api-Key is not a key of this gateway (401), or was revoked (403)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


def key_id_of(text: str) -> str | None:
    """The id a key (or a bare id) names, or None if `text` is neither."""
    if re.fullmatch(r"[0-9a-f]{12}", text):
        return text
    match = _KEY.fullmatch(text)
    return match.group(1) if match else None


class ApiKeys:
    """The gateway's API keys, in its store."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.table = Table(
            store, ApiKeyRecord, API_KEYS, key=lambda k: k.key_id, indexes=[Index("owner", lambda k: k.owner)]
        )
        self.clock = clock

    def issue(self, owner: str, requests_per_minute: int) -> tuple[str, ApiKeyRecord]:
        """A new key for `owner`: the key (shown once) and its record."""
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}{secrets.token_urlsafe(32)}"
        record = ApiKeyRecord(
            key_id=key_id,
            owner=owner,
            key_hash=hashlib.sha256(key.encode()).digest(),
            requests_per_minute=requests_per_minute,
            created_at=self.clock(),
        )
        self.table.put(record)
        return key, record

    def check(self, key: str) -> ApiKeyRecord:
        """The record of a valid, unrevoked `key`; KeyRefusedError otherwise."""
        match = _KEY.fullmatch(key)
        record = self.table.get(match.group(1)) if match else None
        digest = hashlib.sha256(key.encode()).digest()
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise KeyRefusedError("X-Api-Key is not a key of this gateway", 401)
        if record.revoked_at is not None:
            raise KeyRefusedError(f"API key {record.key_id} was revoked", 403)
        return record

    def of_owner(self, owner: str) -> list[ApiKeyRecord]:
        """`owner`'s keys (at most 1,000), oldest id first."""
        return self.table.by_index("owner", owner, limit=1000).items

    def change(
        self, key_id: str, *, revoke: bool = False, requests_per_minute: int | None = None
    ) -> ApiKeyRecord | None:
        """Revoke a key (for good: a leaked key is issued anew), or change its limit; None if
        there is no such key."""
        record = self.table.get(key_id)
        if record is None:
            return None
        if revoke and record.revoked_at is None:
            record = msgspec.structs.replace(record, revoked_at=self.clock())
        if requests_per_minute is not None:
            record = msgspec.structs.replace(record, requests_per_minute=requests_per_minute)
        self.table.put(record)
        return record
