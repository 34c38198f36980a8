"""Tables: records of one msgspec Struct type in one key space, with secondary indexes.

A record lives at `<space>/<encoded primary key>`. Each index entry is an empty value at
`idx/<space>/<index>/<encoded index value><encoded primary key>`, so the entries for one
index value are adjacent and ordered by primary key. A record and its index entries are
always written in the same batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import msgspec

from node.store.codec import RecordCodec
from node.store.errors import CorruptRecordError
from node.store.keys import (
    INDEXES,
    KeyPart,
    KeySpace,
    decode_cursor,
    decode_part,
    encode_cursor,
    encode_part,
    encode_prefix,
)
from node.store.store import Batch, Store

if TYPE_CHECKING:
    # plyvel exports its Snapshot class only from the extension module.
    from plyvel._plyvel import Snapshot

T = TypeVar("T", bound=msgspec.Struct)

IndexValues = KeyPart | Iterable[KeyPart] | None


@dataclass(frozen=True)
class Index(Generic[T]):
    """A secondary index: `values(record)` is the value the record is found under, several
    values (any iterable of them), or None for none."""

    name: str
    values: Callable[[T], IndexValues]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a query, in key order; pass `cursor` as `after` to get the next page.

    `cursor` is None on the last page. A cursor continues only the query that produced it.
    """

    items: list[T]
    cursor: str | None


class Table(Generic[T]):
    """Records of type `kind` in `space`, keyed by `key(record)`, with secondary `indexes`.

    One Table per key space per store: its index definitions are what keeps entries current.
    """

    def __init__(
        self,
        store: Store,
        kind: type[T],
        space: KeySpace,
        key: Callable[[T], KeyPart],
        indexes: Sequence[Index[T]] = (),
    ) -> None:
        for index in indexes:
            if not index.name.isidentifier():
                raise ValueError(f"index name {index.name!r} is not an identifier")
        store.claim(space)
        self.kind = kind
        self.space = space
        self._store = store
        self._key = key
        self._codec = RecordCodec(kind)
        self._indexes = {
            index.name: (index, INDEXES.child(space.name).child(index.name)) for index in indexes
        }

    def get(self, key: KeyPart) -> T | None:
        """The record with primary key `key`, or None."""
        rest = encode_part(key)
        value = self._store.db.get(self.space.prefix + rest)
        return None if value is None else self._decode(value, rest)

    def put(self, record: T, *, batch: Batch | None = None) -> None:
        """Write `record` and its index entries, removing the entries of the version it replaces.

        With `batch`, the writes commit with the batch; without, they commit now.
        """
        if not isinstance(record, self.kind):
            raise TypeError(
                f"table {self.space.name}/ holds {self.kind.__name__}, not {type(record).__name__}"
            )
        if batch is None:
            with self._store.batch() as own:
                self.put(record, batch=own)
            return
        rest = encode_part(self._key(record))
        if not self._indexes:  # nothing to keep current: no need to read the version replaced
            batch.put(self.space.prefix + rest, self._codec.encode(record))
            return
        previous = batch.get(self.space.prefix + rest)
        stale = set() if previous is None else self._entries(self._decode(previous, rest), rest)
        current = self._entries(record, rest)
        for entry in stale - current:
            batch.delete(entry)
        for entry in current - stale:
            batch.put(entry, b"")
        batch.put(self.space.prefix + rest, self._codec.encode(record))

    def delete(self, key: KeyPart, *, batch: Batch | None = None) -> bool:
        """Delete the record with primary key `key` and its index entries; whether it existed."""
        if batch is None:
            with self._store.batch() as own:
                return self.delete(key, batch=own)
        rest = encode_part(key)
        previous = batch.get(self.space.prefix + rest)
        if previous is None:
            return False
        for entry in self._entries(self._decode(previous, rest), rest):
            batch.delete(entry)
        batch.delete(self.space.prefix + rest)
        return True

    def scan(
        self, prefix: str | bytes | None = None, *, limit: int = 100, after: str | None = None
    ) -> Page[T]:
        """Records in primary-key order; with `prefix`, only those whose str/bytes key starts with it."""
        base = self.space.prefix + (b"" if prefix is None else encode_prefix(prefix))
        with self._store.db.snapshot() as snapshot:
            found, cursor = _read_page(snapshot, base, limit, after, keys_from=len(self.space.prefix))
        return Page([self._decode(value, key[len(self.space.prefix) :]) for key, value in found], cursor)

    def by_index(self, name: str, value: KeyPart, *, limit: int = 100, after: str | None = None) -> Page[T]:
        """Records found under `value` in index `name`, in primary-key order."""
        base = self._index_space(name).prefix + encode_part(value)
        records = []
        with self._store.db.snapshot() as snapshot:
            found, cursor = _read_page(snapshot, base, limit, after, keys_from=len(base))
            for entry, _ in found:
                rest = entry[len(base) :]
                stored = snapshot.get(self.space.prefix + rest)
                if stored is None:
                    raise CorruptRecordError(
                        f"index {name} of table {self.space.name}/ has an entry for {value!r} "
                        f"pointing at missing record {self._describe(rest)}"
                    )
                records.append(self._decode(stored, rest))
        return Page(records, cursor)

    def records(self) -> Iterator[T]:
        """Every record in primary-key order, from one snapshot (for reloading state at start)."""
        with self._store.db.snapshot() as snapshot, snapshot.iterator(prefix=self.space.prefix) as items:
            for key, value in items:
                yield self._decode(value, key[len(self.space.prefix) :])

    def index_entries(self, name: str) -> Iterator[tuple[KeyPart, KeyPart]]:
        """(index value, primary key) of every entry of index `name`, to inspect or check it."""
        prefix = self._index_space(name).prefix
        with (
            self._store.db.snapshot() as snapshot,
            snapshot.iterator(prefix=prefix, include_value=False) as keys,
        ):
            for entry in keys:
                value, end = decode_part(entry, len(prefix))
                key, _ = decode_part(entry, end)
                yield value, key

    def _index_space(self, name: str) -> KeySpace:
        if name not in self._indexes:
            raise ValueError(f"table {self.space.name}/ has no index {name!r}")
        return self._indexes[name][1]

    def _entries(self, record: T, rest: bytes) -> set[bytes]:
        entries = set()
        for index, space in self._indexes.values():
            values = index.values(record)
            if values is None:
                continue
            # str and bytes are iterable too, but each is a single index value.
            for value in [values] if isinstance(values, int | str | bytes) else values:
                entries.add(space.prefix + encode_part(value) + rest)
        return entries

    def _decode(self, value: bytes, rest: bytes) -> T:
        return self._codec.decode(value, lambda: f"table {self.space.name}/, key {self._describe(rest)}")

    def _describe(self, rest: bytes) -> str:
        try:
            key, _ = decode_part(rest)
        except ValueError:
            return self.space.name + "/" + rest.hex()
        return f"{self.space.name}/{key!r}"


def _read_page(
    reader: Snapshot, base: bytes, limit: int, after: str | None, keys_from: int
) -> tuple[list[tuple[bytes, bytes]], str | None]:
    """Up to `limit` (key, value) pairs under `base` after the cursor, and the next cursor.

    A cursor is a key's bytes from `keys_from` on (whole key parts: see `decode_cursor`);
    ValueError if it names a key outside `base` (a cursor of another query).
    """
    if limit < 1:
        raise ValueError(f"page limit must be at least 1, not {limit}")
    start = None if after is None else base[:keys_from] + decode_cursor(after)
    if start is not None and not start.startswith(base):
        raise ValueError(f"page cursor {after[:40]!r} is not one of this query")
    found: list[tuple[bytes, bytes]] = []
    with reader.iterator(prefix=base) as items:
        if start is not None:
            items.seek(start)
        for key, value in items:
            if key == start:
                continue
            if len(found) == limit:
                return found, encode_cursor(found[-1][0][keys_from:])
            found.append((key, value))
    return found, None
