"""Stored values: one version byte, then the record as JSON (a msgspec Struct).

JSON because records hold uint256 values (fees, job ids) that msgpack cannot carry (it stops
at 64 bits); msgspec's JSON round-trips integers of any size. The version byte names the value
encoding (1 was msgpack), so a later encoding can be told apart from this one record by
record instead of rewriting the whole store at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec

from node.store.errors import CorruptRecordError

VALUE_VERSION = 2

S = TypeVar("S", bound=msgspec.Struct)

_encoder = msgspec.json.Encoder()


class RecordCodec(Generic[S]):
    """Turns records of one Struct type into stored values and back."""

    def __init__(self, kind: type[S]) -> None:
        self.kind = kind
        self._decoder = msgspec.json.Decoder(kind)

    def encode(self, record: S) -> bytes:
        """The stored value of `record`."""
        return bytes((VALUE_VERSION,)) + _encoder.encode(record)

    def decode(self, value: bytes, where: Callable[[], str]) -> S:
        """The record in `value`; CorruptRecordError naming `where()` (table and key: worked
        out only then) if unreadable."""
        if not value or value[0] != VALUE_VERSION:
            version = value[0] if value else "missing"
            problem = f"value version {version}, this code reads version {VALUE_VERSION}"
        else:
            try:
                return self._decoder.decode(memoryview(value)[1:])
            except msgspec.DecodeError as error:
                problem = str(error)
        raise CorruptRecordError(f"{where()}: cannot read the value as {self.kind.__name__}: {problem}")
