"""What can go wrong with the store; each message names the path, table or key concerned."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be opened or read."""


class StoreLockedError(StoreError):
    """Another handle (in this process or another one) holds the store's LevelDB lock."""


class SchemaVersionError(StoreError):
    """The store was written with a schema version this code does not read."""


class CorruptRecordError(StoreError):
    """A stored value cannot be decoded, or an index entry points at a missing record."""
