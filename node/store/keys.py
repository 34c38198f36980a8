"""Key spaces, and the order-preserving encoding of the key parts that follow them.

Every key starts with its space's prefix (`job/`, `idx/task/job/`, ...), then one or more
encoded parts. A part is an int, a str or bytes:

    int    b"i" + 8 bytes big-endian of n + 2**63   (signed 64-bit; the offset sorts negatives first)
    str    b"s" + UTF-8, each 0x00 escaped as 0x00 0xFF, then a 0x00 terminator
    bytes  b"b" + the bytes, escaped and terminated the same way

Byte order of encoded parts is value order (2 sorts before 10, "a" before "ab"), and no
encoding is a prefix of another, so parts can be concatenated and read back one by one.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

KeyPart = int | str | bytes

_INT, _STR, _BYTES = b"i", b"s", b"b"
_INT_OFFSET = 1 << 63
MAX_INT_KEY = _INT_OFFSET - 1
"""The largest int a key part can hold (record ids are 1 to this)."""
_END = b"\x00"
_ESCAPED_ZERO = b"\x00\xff"


@dataclass(frozen=True)
class KeySpace:
    """A named range of keys: every key in it starts with `<name>/`."""

    name: str

    @property
    def prefix(self) -> bytes:
        """The bytes every key in this space starts with."""
        return self.name.encode() + b"/"

    def child(self, name: str) -> KeySpace:
        """The space `<self.name>/<name>/`, nested inside this one."""
        return KeySpace(f"{self.name}/{name}")

    def overlaps(self, other: KeySpace) -> bool:
        """Whether some key could belong to both spaces (they are equal or one is inside the other)."""
        return self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)


JOBS = KeySpace("job")
TASKS = KeySpace("task")
USERS = KeySpace("user")
KEEPERS = KeySpace("keeper")
API_KEYS = KeySpace("apikey")
INDEXES = KeySpace("idx")
SCHEDULES = KeySpace("sched")
CHECKPOINTS = KeySpace("chk")
META = KeySpace("meta")
SCRIPTS = KeySpace("script")
FAUCET = KeySpace("faucet")
POINTS = KeySpace("points")


def encode_part(part: KeyPart) -> bytes:
    """One key part, encoded as described in the module docstring."""
    if isinstance(part, int):
        if not -_INT_OFFSET <= part < _INT_OFFSET:
            raise ValueError(f"key part {part} is outside the signed 64-bit range")
        return _INT + (part + _INT_OFFSET).to_bytes(8, "big")
    if isinstance(part, str):
        return _STR + part.encode().replace(_END, _ESCAPED_ZERO) + _END
    if isinstance(part, bytes):
        return _BYTES + part.replace(_END, _ESCAPED_ZERO) + _END
    raise TypeError(f"a key part is an int, str or bytes, not {type(part).__name__}")


def encode_prefix(prefix: str | bytes) -> bytes:
    """What the encodings of all str (or bytes) parts starting with `prefix` start with."""
    tag, raw = (_STR, prefix.encode()) if isinstance(prefix, str) else (_BYTES, prefix)
    return tag + raw.replace(_END, _ESCAPED_ZERO)


def decode_part(data: bytes, offset: int = 0) -> tuple[KeyPart, int]:
    """The part encoded at `data[offset:]`, and the offset just past it."""
    tag = data[offset : offset + 1]
    if tag == _INT and len(data) >= offset + 9:
        return int.from_bytes(data[offset + 1 : offset + 9], "big") - _INT_OFFSET, offset + 9
    if tag not in (_STR, _BYTES):
        raise ValueError(f"no key part at offset {offset} of {data!r}")
    raw, start = bytearray(), offset + 1
    while (end := data.find(_END, start)) != -1:
        raw += data[start:end]
        if data[end + 1 : end + 2] != b"\xff":
            return (raw.decode() if tag == _STR else bytes(raw)), end + 1
        raw += _END
        start = end + 2
    raise ValueError(f"unterminated key part at offset {offset} of {data!r}")


def encode_cursor(rest: bytes) -> str:
    """A page cursor: the key bytes after the query's base, URL-safe so an API can pass it on."""
    return base64.urlsafe_b64encode(rest).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> bytes:
    """The key bytes a cursor from `encode_cursor` stands for; ValueError unless they are
    whole key parts, encoded as `encode_cursor` encodes them (a garbled or made-up cursor
    would otherwise start some page no query gave out, or the first one)."""
    try:
        # validate=True: the lenient default drops characters outside the alphabet.
        rest = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        offset = 0
        while offset < len(rest):
            _, offset = decode_part(rest, offset)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        rest = b""
    if not rest or encode_cursor(rest) != cursor:
        raise ValueError(f"malformed page cursor {cursor[:40]!r}")
    return rest
