"""The node's one LevelDB: opening it (lock and schema version checks) and atomic batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import msgspec
import plyvel

from node.store.codec import RecordCodec
from node.store.errors import SchemaVersionError, StoreError, StoreLockedError
from node.store.keys import INDEXES, META, KeySpace

if TYPE_CHECKING:
    # plyvel exports its WriteBatch class only from the extension module.
    from plyvel._plyvel import WriteBatch

SCHEMA_VERSION = 1
SCHEMA_KEY = META.prefix + b"schema"


class SchemaMeta(msgspec.Struct, frozen=True):
    """The value under `meta/schema`: the layout version of the keys and records in the store."""

    version: int


_META = RecordCodec(SchemaMeta)


class Batch:
    """Writes to any tables that commit together or not at all (one LevelDB WriteBatch).

    Reads through the batch see its own pending writes, so a record put twice in one batch
    still has its first version's index entries removed. Do not hold a batch across an
    `await`: another task's write to the same record in between would not be seen.
    """

    def __init__(self, db: plyvel.DB, writes: WriteBatch) -> None:
        self._db = db
        self._writes = writes
        self._pending: dict[bytes, bytes | None] = {}
        self.open = True  # False once the `with store.batch()` block has ended

    def get(self, key: bytes) -> bytes | None:
        """The value at `key` as it will be once the batch commits."""
        if key in self._pending:
            return self._pending[key]
        return self._db.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        """Write `value` at `key` when the batch commits."""
        self._check_open()
        self._writes.put(key, value)
        self._pending[key] = value

    def delete(self, key: bytes) -> None:
        """Delete `key` when the batch commits."""
        self._check_open()
        self._writes.delete(key)
        self._pending[key] = None

    def _check_open(self) -> None:
        # A write after the `with` block would go into a WriteBatch already written, and be lost.
        if not self.open:
            raise RuntimeError("this store batch has already been committed or discarded")


class Store:
    """One LevelDB per node, opened once per process (with `Store.open`); tables (`Table`) live
    in its key spaces."""

    def __init__(self, db: plyvel.DB, path: Path) -> None:
        self.db = db
        self.path = path
        # Two tables in overlapping spaces (or two Table objects with different indexes over
        # one space) would read each other's keys or leave stale index entries.
        self._claimed: list[KeySpace] = [INDEXES, META]

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating if needed) the store at `path`.

        Raises StoreLockedError if another handle holds it, SchemaVersionError if it was written
        with another schema version or is not a triggerx-node store, StoreError otherwise.
        """
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            db = plyvel.DB(str(path), create_if_missing=True)
        except plyvel.Error as error:
            raise _open_error(path, error) from None
        except OSError as error:
            raise StoreError(f"cannot open the store at {path}: {error}") from None
        try:
            _check_schema(db, path)
        except BaseException:
            db.close()
            raise
        return cls(db, path)

    def close(self) -> None:
        """Release the handle and its lock (closing twice is harmless)."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """A batch that commits when the block ends, or writes nothing if it raises.

        LevelDB applies a WriteBatch atomically, also across a crash. Writes are not fsynced:
        a killed process loses nothing, a power cut may lose the last batches but never half of one.
        """
        with self.db.write_batch(transaction=True) as writes:
            batch = Batch(self.db, writes)
            try:
                yield batch
            finally:
                batch.open = False

    def claim(self, space: KeySpace) -> None:
        """Reserve `space` for one table; a space overlapping one already in use is a ValueError."""
        for taken in self._claimed:
            if taken.overlaps(space):
                raise ValueError(f"key space {space.name}/ overlaps {taken.name}/, which is already in use")
        self._claimed.append(space)


def _open_error(path: Path, error: plyvel.Error) -> StoreError:
    message = error.args[0].decode(errors="replace") if error.args else str(error)
    if "LOCK" not in message:
        return StoreError(f"cannot open the store at {path}: {message}")
    if "already held by process" in message:
        return StoreLockedError(
            f"the store at {path} is already open in this process (one handle per process)"
        )
    return StoreLockedError(f"the store at {path} is locked: another process holds it open")


def _check_schema(db: plyvel.DB, path: Path) -> None:
    stored = db.get(SCHEMA_KEY)
    if stored is None:
        with db.iterator(include_value=False) as keys:
            if next(keys, None) is not None:
                raise SchemaVersionError(
                    f"{path} holds data but no schema version: not a triggerx-node store"
                )
        db.put(SCHEMA_KEY, _META.encode(SchemaMeta(SCHEMA_VERSION)), sync=True)
        return
    version = _META.decode(stored, lambda: f"store {path}, key meta/schema").version
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the store at {path} has schema version {version}, written by a newer triggerx-node; "
            f"this one reads version {SCHEMA_VERSION}"
        )
    if version < SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the store at {path} has schema version {version}; this triggerx-node reads version "
            f"{SCHEMA_VERSION} and has no migration from it"
        )
