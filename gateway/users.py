"""Users: the addresses that own jobs here or registered (`POST /api/users`), their email (set
with a signed `SetEmail`, gateway.actions; stored, never shown: the API says only whether one
is set) and their counts and points (kept by gateway.points).

A user is created when registered, when their email is set, when they create a job (the intake
calls `ensure`) or, at the latest, when gateway.points first credits one of their tasks. Records
are keyed by the lower-case address, so that a leaderboard search can go by address prefix.

Registering needs no signature, so anyone can register any address: at most MAX_REGISTERED
addresses are registered that way, which bounds what such requests can make the gateway store.
Beyond, an address becomes a user with its first job or its signed email.
"""

from __future__ import annotations

import re

import msgspec
from eth_utils import keccak

from node.store import USERS, Batch, Index, Store, Table

MAX_REGISTERED = 100_000
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")
EMAIL_PATTERN = f"^{_EMAIL.pattern}$"
"""An email address as the gateway takes it: ASCII, a local part of at most 64 of the characters
RFC 5322 allows unquoted, `@`, and a domain of two or more DNS labels (no quoted local parts,
comments, IP literals or internationalised names)."""
ZERO_HASH = bytes(32)


class UserRecord(msgspec.Struct, rename="camel", kw_only=True):
    """A user: `address` (checksummed), when first seen, the email (never shown publicly) and the
    nonce of the `SetEmail` that last changed it, and the counts gateway.points keeps.
    `registered`: created by a registration (counted against MAX_REGISTERED)."""

    address: str
    created_at: float
    registered: bool = False
    email: str | None = None
    email_nonce: int | None = None
    email_updated_at: float | None = None
    jobs_run: int = 0  # jobs of theirs that completed a task
    tasks_completed: int = 0
    points: int = 0


def email_problem(email: str) -> str | None:
    """Why `email` is not an address the gateway takes, or None."""
    if len(email) > MAX_EMAIL_LENGTH:
        return f"an email address has at most {MAX_EMAIL_LENGTH} characters"
    # fullmatch, not EMAIL_PATTERN's `$`, which lets a trailing newline through (a header injection).
    if _EMAIL.fullmatch(email) is None:
        return "not an email address (ASCII local@domain.tld)"
    return None


def email_hash(email: str | None) -> bytes:
    """What `SetEmail.emailHash` is for `email`: keccak256 of its UTF-8, or zero for none."""
    return ZERO_HASH if email is None else keccak(email.encode())


class RegistrationsFullError(Exception):
    """MAX_REGISTERED addresses are registered already."""


class Users:
    """Every user, in `store`'s `user/` space; at most `max_registered` created by registration."""

    def __init__(self, store: Store, max_registered: int = MAX_REGISTERED) -> None:
        self.table = Table(
            store,
            UserRecord,
            USERS,
            key=lambda u: u.address.lower(),
            indexes=[Index("registered", lambda u: 1 if u.registered else None)],
        )
        self.max_registered = max_registered
        self._registered = sum(1 for _ in self.table.index_entries("registered"))

    def get(self, address: str) -> UserRecord | None:
        """The user `address` (any case), if known."""
        return self.table.get(address.lower())

    def register(self, address: str, now: float) -> tuple[UserRecord, bool]:
        """The user `address` (checksummed), registered at `now` if new; whether it was.
        RegistrationsFullError if it is new and `max_registered` are registered already."""
        existing = self.get(address)
        if existing is not None:
            return existing, False
        if self._registered >= self.max_registered:
            raise RegistrationsFullError(f"{self.max_registered} addresses are registered already")
        record = UserRecord(address=address, created_at=now, registered=True)
        self.table.put(record)
        self._registered += 1
        return record, True

    def ensure(self, address: str, now: float) -> UserRecord:
        """The user `address` (checksummed), created at `now` if new (a job's owner, from the intake)."""
        existing = self.get(address)
        if existing is not None:
            return existing
        record = UserRecord(address=address, created_at=now)
        self.table.put(record)
        return record

    def set_email(self, address: str, email: str | None, nonce: int, now: float, batch: Batch) -> UserRecord:
        """Set (None: remove) `address`'s email in `batch`, as its `SetEmail` with `nonce` asks;
        the user is created if new."""
        user = self.get(address) or UserRecord(address=address, created_at=now)
        updated = msgspec.structs.replace(user, email=email, email_nonce=nonce, email_updated_at=now)
        self.table.put(updated, batch=batch)
        return updated
