"""ABI values as an owner writes them in a trigger spec, and back: `0x…` addresses and bytes,
decimal or 0x-hex integers, `true` / `false`."""

from __future__ import annotations

import re
from typing import Any

from node.chain import checksum_address

STATIC_TYPE = re.compile(r"address|bool|bytes([1-9]|[12][0-9]|3[0-2])|u?int(8|[1-9][0-9]*)?")
"""The static elementary types (`uint` and `int` are 256-bit); intN needs N in 8..256, N % 8 == 0."""


def canonical_static_type(text: str) -> str | None:
    """`text` as a canonical static elementary type (`uint` is `uint256`), or None."""
    if not STATIC_TYPE.fullmatch(text):
        return None
    bits = re.fullmatch(r"u?int([0-9]+)", text)
    if bits and (int(bits.group(1)) % 8 or not 8 <= int(bits.group(1)) <= 256):
        return None
    return text + "256" if text in ("uint", "int") else text


def typed_value(kind: str, text: str) -> Any:
    """`text` as a value of ABI type `kind` (elementary; `string` is the text itself);
    ValueError says why it cannot be."""
    if kind == "address":
        try:
            return checksum_address(text)
        except (ValueError, TypeError):
            raise ValueError(f"{text!r} is not an address") from None
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text == "true"
    if kind == "string":
        return text
    if kind.startswith("bytes"):
        data = hex_bytes(text)
        size = kind.removeprefix("bytes")
        if size and len(data) != int(size):
            raise ValueError(f"{text!r} is not {size} bytes")
        return data
    bits = int(re.sub(r"^u?int", "", kind))
    try:
        number = int(text, 0) if len(text) <= 80 else None
    except ValueError:
        number = None
    low, high = (0, 2**bits - 1) if kind.startswith("uint") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if number is None or not low <= number <= high:
        raise ValueError(f"{text!r} is not a {kind} (decimal or 0x-hex)")
    return number


def hex_bytes(text: str) -> bytes:
    """`0x…` as bytes; ValueError otherwise."""
    if not text.startswith("0x"):
        raise ValueError(f"{text!r} is not 0x-hex")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise ValueError(f"{text!r} is not 0x-hex") from None


def show_value(value: Any) -> str:
    """A value as its canonical text: `true`/`false`, lower-case 0x-hex bytes, decimal integers,
    checksummed addresses (as they are held)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
