"""Calldata from a function signature and JSON arguments, with errors a developer can act on.

    encode_calldata("transfer(address,uint256)", ["0xabc...", "1000000000000000000"])

JSON has no 256-bit integers or bytes: integers may be given as decimal or 0x strings,
bytes as 0x-hex strings.
"""

from __future__ import annotations

import re
from typing import Any

import eth_abi
from eth_abi.exceptions import EncodingError
from eth_utils import is_address, keccak, to_checksum_address

_SIGNATURE = re.compile(r"^([A-Za-z_$][A-Za-z0-9_$]*)\((.*)\)$")


class CalldataError(ValueError):
    """The function signature or an argument is not valid; the message says which."""


def split_types(inner: str) -> list[str]:
    """The top-level comma-separated types of `inner` (tuples stay whole)."""
    types, depth, current = [], 0, ""
    for char in inner:
        if char == "," and depth == 0:
            types.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    if current:
        types.append(current)
    return [t.strip() for t in types]


def parse_signature(signature: str) -> tuple[str, list[str]]:
    """`name(type,...)` → (name, types); CalldataError if it is not one."""
    match = _SIGNATURE.match(signature.replace(" ", ""))
    if match is None:
        raise CalldataError(
            f"function {signature!r}: expected name(type,...), e.g. transfer(address,uint256)"
        )
    name, types = match.group(1), split_types(match.group(2))
    for kind in types:
        if not eth_abi.is_encodable_type(kind):
            raise CalldataError(f"function {signature!r}: {kind!r} is not an ABI type")
    return name, types


def _convert(kind: str, value: Any, where: str) -> Any:
    """A JSON value → what eth-abi encodes for `kind`."""
    if kind.endswith("]"):
        if not isinstance(value, list):
            raise CalldataError(f"{where}: expected a list for {kind}")
        element = kind[: kind.rindex("[")]
        return [_convert(element, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind.startswith("("):
        members = split_types(kind[1:-1])
        if not isinstance(value, list) or len(value) != len(members):
            raise CalldataError(f"{where}: expected a list of {len(members)} values for {kind}")
        return tuple(
            _convert(m, v, f"{where}[{i}]") for i, (m, v) in enumerate(zip(members, value, strict=True))
        )
    if kind.startswith(("uint", "int")):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise CalldataError(
                f"{where}: expected an integer, or one as a decimal or 0x string, got {value!r}"
            )
        try:
            return int(value, 0) if isinstance(value, str) else value
        except ValueError:
            raise CalldataError(f"{where}: {value!r} is not an integer") from None
    if kind == "address":
        if not isinstance(value, str) or not is_address(value):
            raise CalldataError(f"{where}: {value!r} is not an address")
        return to_checksum_address(value)
    if kind.startswith("bytes"):
        if not isinstance(value, str) or not re.fullmatch(r"0x([0-9a-fA-F]{2})*", value):
            raise CalldataError(f"{where}: expected 0x-hex bytes, got {value!r}")
        return bytes.fromhex(value[2:])
    return value


def encode_calldata(signature: str, args: list[Any]) -> bytes:
    """Selector + ABI-encoded `args` for `signature`; CalldataError names the bad argument."""
    name, types = parse_signature(signature)
    if len(args) != len(types):
        raise CalldataError(f"function {signature!r} takes {len(types)} arguments, got {len(args)}")
    values = [
        _convert(kind, value, f"args[{i}]") for i, (kind, value) in enumerate(zip(types, args, strict=True))
    ]
    try:
        encoded = eth_abi.encode(types, values)
    except (EncodingError, TypeError, ValueError) as error:
        raise CalldataError(f"arguments of {signature!r}: {error}") from None
    return keccak(text=f"{name}({','.join(types)})")[:4] + encoded
