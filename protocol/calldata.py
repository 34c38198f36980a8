"""Calldata from a function signature and JSON arguments, with errors a developer can act on.

    encode_calldata("transfer(address,uint256)", ["0xabc...", "1000000000000000000"])

JSON has no 256-bit integers or bytes: integers may be given as decimal or 0x strings,
bytes as 0x-hex strings.

The signature comes from an unauthenticated request, so it is parsed here by a small
bounded parser and never by eth_abi's grammar: eth_abi's parser recurses once per nesting
level, and with the recursion limit py_ecc raises (to 100,000) a 2 KB string of nested
parentheses kept it busy for 39 s on the trio thread. Every loop below is bounded by
MAX_SIGNATURE_LENGTH and every recursion by MAX_TUPLE_DEPTH; eth_abi only encodes values
for the canonical types this parser produced. Argument values are bounded too (how many,
how many bytes), so encoding a request costs milliseconds at most.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import eth_abi
from eth_abi.exceptions import EncodingError
from eth_utils import is_address, keccak, to_checksum_address

MAX_SIGNATURE_LENGTH = 512
MAX_TUPLE_DEPTH = 4  # tuples inside tuples; the parameter list itself is not counted
MAX_ARRAY_DIMENSIONS = 4  # T[][][][] at most, per type
MAX_PARAMETERS = 32  # per parameter list and per tuple
MAX_FIXED_ARRAY_LENGTH = 1024  # k in T[k]
MAX_VALUES = 1024  # every value in the arguments, scalars and lists alike
MAX_VALUE_BYTES = 32 * 1024  # all string and bytes arguments together
MAX_INTEGER_TEXT = 80  # characters of an integer given as a string (2**256 has 78 digits)

_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_WORD = re.compile(r"[a-z]+[0-9]*")
_DIMENSION = re.compile(r"\[([0-9]{0,6})\]")
_HEX_BYTES = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_ALIASES = {"uint": "uint256", "int": "int256"}


class CalldataError(ValueError):
    """The function signature or an argument is not valid; the message says which.

    `field` is "function" for a problem with the signature, or the argument's path
    ("args", "args[1]", "args[1][0]") for a problem with a value.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class AbiType:
    """One parsed ABI type: an elementary type or a tuple, with array dimensions.

    `dimensions` are in written order, so `uint8[2][]` is (2, None): a dynamic array of
    uint8[2]; None is a dynamic dimension.
    """

    base: str  # canonical elementary name; "" for a tuple
    components: tuple[AbiType, ...] = ()
    dimensions: tuple[int | None, ...] = ()

    @property
    def canonical(self) -> str:
        """The type as the selector spells it: uint256 for uint, tuples as (a,b)."""
        inner = self.base or "(" + ",".join(c.canonical for c in self.components) + ")"
        return inner + "".join(f"[{'' if d is None else d}]" for d in self.dimensions)

    @property
    def element(self) -> AbiType:
        """The type of one element of this array type."""
        return AbiType(self.base, self.components, self.dimensions[:-1])

    @property
    def fewest_values(self) -> int:
        """How many values (scalars and lists, as `_convert` counts them) the smallest argument
        of this type holds: a dynamic array may be empty, a fixed one is full."""
        if not self.dimensions:
            return 1 + sum(c.fewest_values for c in self.components)
        length = self.dimensions[-1]
        return 1 if length is None else 1 + length * self.element.fewest_values


def _excerpt(text: str, limit: int = 60) -> str:
    """`text` quoted, shortened so an error never echoes a whole hostile string."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _show(value: Any) -> str:
    """A JSON value for an error message, in bounded time and length (no repr of a huge list)."""
    if isinstance(value, str):
        return _excerpt(value)
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 260:
        return f"an integer of {value.bit_length()} bits"
    shown = repr(value)  # a number, true/false or null: short
    return shown if len(shown) <= 60 else shown[:60] + "…"


def _elementary(word: str) -> str:
    """The canonical name of the elementary type `word`; CalldataError saying why if it is none."""
    word = _ALIASES.get(word, word)
    if word in ("address", "bool", "string", "bytes"):
        return word
    for prefix, low, high, step, unit in (
        ("uint", 8, 256, 8, "bits"),
        ("int", 8, 256, 8, "bits"),
        ("bytes", 1, 32, 1, "bytes"),
    ):
        size = word.removeprefix(prefix)
        if word.startswith(prefix) and size.isdigit():
            if size[0] != "0" and low <= int(size) <= high and int(size) % step == 0:
                return word
            steps = f" in steps of {step}" if step > 1 else ""
            raise CalldataError(
                "function", f"{word!r} is not an ABI type: {prefix} sizes are {low} to {high} {unit}{steps}"
            )
    if word.startswith(("fixed", "ufixed")):
        raise CalldataError("function", f"{word!r}: fixed-point types are not supported")
    raise CalldataError(
        "function",
        f"{_excerpt(word)} is not an ABI type (expected uint8..uint256, int8..int256, address, bool, "
        "bytes1..bytes32, bytes, string, a tuple (...) or an array of one)",
    )


class _Parser:
    """Recursive descent over a signature already known to be at most MAX_SIGNATURE_LENGTH long."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def fail(self, problem: str) -> CalldataError:
        return CalldataError("function", f"{problem} at position {self.at} of {_excerpt(self.text)}")

    def parameters(self, depth: int) -> tuple[AbiType, ...]:
        """`(type,...)` at the cursor: a parameter list (depth 0) or a tuple's components."""
        self.at += 1  # the "("
        types: list[AbiType] = []
        if self.text.startswith(")", self.at):
            if depth > 0:
                raise self.fail("an empty tuple () is not an ABI type")
            self.at += 1
            return ()
        while True:
            if len(types) == MAX_PARAMETERS:
                where = "a tuple" if depth else "a function"
                raise self.fail(f"more than {MAX_PARAMETERS} parameters in {where}")
            types.append(self.type(depth))
            if self.text.startswith(",", self.at):
                self.at += 1
            elif self.text.startswith(")", self.at):
                self.at += 1
                return tuple(types)
            else:
                raise self.fail("expected ',' or ')'")

    def type(self, depth: int) -> AbiType:
        """One type at the cursor, with its array dimensions."""
        if self.text.startswith("(", self.at):
            if depth == MAX_TUPLE_DEPTH:
                raise self.fail(f"tuples nested more than {MAX_TUPLE_DEPTH} deep")
            base, components = "", self.parameters(depth + 1)
        else:
            word = _WORD.match(self.text, self.at)
            if word is None:
                raise self.fail("expected a type")
            base, components = _elementary(word.group()), ()
            self.at = word.end()
        dimensions: list[int | None] = []
        while self.text.startswith("[", self.at):
            if len(dimensions) == MAX_ARRAY_DIMENSIONS:
                raise self.fail(f"more than {MAX_ARRAY_DIMENSIONS} array dimensions")
            match = _DIMENSION.match(self.text, self.at)
            if match is None:
                raise self.fail("expected [] or [length] with a length of at most 6 digits")
            length = int(match.group(1)) if match.group(1) else None
            if length is not None and not 1 <= length <= MAX_FIXED_ARRAY_LENGTH:
                raise self.fail(f"a fixed array length must be 1 to {MAX_FIXED_ARRAY_LENGTH}, not {length}")
            dimensions.append(length)
            self.at = match.end()
        return AbiType(base, components, tuple(dimensions))


def parse_types(signature: str) -> tuple[str, tuple[AbiType, ...]]:
    """`name(type,...)` → (name, parsed types); CalldataError naming the problem if it is not one."""
    if not isinstance(signature, str):
        raise CalldataError("function", "expected a string such as transfer(address,uint256)")
    # Checked before anything else looks at the text: it bounds every loop that follows.
    if len(signature) > MAX_SIGNATURE_LENGTH:
        raise CalldataError(
            "function", f"signature is {len(signature)} characters long, at most {MAX_SIGNATURE_LENGTH}"
        )
    text = signature.replace(" ", "")
    name = _NAME.match(text)
    if name is None or not text.startswith("(", name.end()):
        raise CalldataError(
            "function", f"{_excerpt(signature)}: expected name(type,...), e.g. transfer(address,uint256)"
        )
    parser = _Parser(text)
    parser.at = name.end()
    types = parser.parameters(0)
    if parser.at != len(text):
        raise parser.fail("unexpected text after the closing ')'")
    needed = sum(t.fewest_values for t in types)
    if needed > MAX_VALUES:
        raise CalldataError("function", f"its arguments would hold {needed} values, at most {MAX_VALUES}")
    return name.group(), types


def parse_signature(signature: str) -> tuple[str, list[str]]:
    """`name(type,...)` → (name, canonical types); CalldataError naming the problem if it is not one."""
    name, types = parse_types(signature)
    return name, [t.canonical for t in types]


def canonical_signature(signature: str) -> str:
    """The signature as its selector is computed: `transfer(address,uint)` → `transfer(address,uint256)`."""
    name, types = parse_signature(signature)
    return f"{name}({','.join(types)})"


class _Budget:
    """What is left of MAX_VALUES and MAX_VALUE_BYTES while converting one call's arguments."""

    def __init__(self) -> None:
        self.values = MAX_VALUES
        self.bytes = MAX_VALUE_BYTES

    def take_values(self, count: int, where: str) -> None:
        self.values -= count
        if self.values < 0:
            raise CalldataError(where, f"the arguments hold more than {MAX_VALUES} values in all")

    def take_bytes(self, count: int, where: str) -> None:
        self.bytes -= count
        if self.bytes < 0:
            raise CalldataError(where, f"strings and bytes arguments exceed {MAX_VALUE_BYTES} bytes in all")


def _integer(kind: str, value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CalldataError(where, f"expected an integer, or a decimal or 0x string, got {_show(value)}")
    if isinstance(value, str):
        if len(value) > MAX_INTEGER_TEXT:
            raise CalldataError(where, f"{_excerpt(value)} is too long for a {kind}")
        try:
            value = int(value, 0)
        except ValueError:
            raise CalldataError(where, f"{value!r} is not an integer") from None  # ≤ 80 characters
    bits = int(kind.removeprefix("u").removeprefix("int"))
    low, high = (0, 2**bits - 1) if kind.startswith("u") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if not low <= value <= high:
        raise CalldataError(where, f"{_show(value)} is outside the range of {kind} ({low} to {high})")
    return value


def _hex_bytes(kind: str, value: Any, where: str, budget: _Budget) -> bytes:
    if not isinstance(value, str):
        raise CalldataError(where, f"expected 0x-hex bytes for {kind}, got {_show(value)}")
    # Length first: the regex and the decoding below are then bounded by the budget.
    budget.take_bytes(max(len(value) - 2, 0) // 2, where)
    if not _HEX_BYTES.fullmatch(value):
        raise CalldataError(where, f"expected 0x-hex bytes for {kind}, got {_excerpt(value)}")
    data = bytes.fromhex(value[2:])
    if kind != "bytes" and len(data) > int(kind.removeprefix("bytes")):
        raise CalldataError(where, f"{len(data)} bytes do not fit in {kind}")
    return data


def _convert(kind: AbiType, value: Any, where: str, budget: _Budget) -> Any:
    """A JSON value → what eth_abi encodes for `kind`; recursion follows the type, not the value."""
    budget.take_values(1, where)
    if kind.dimensions:
        length = kind.dimensions[-1]
        if not isinstance(value, list):
            raise CalldataError(where, f"expected a list for {kind.canonical}")
        if length is not None and len(value) != length:
            raise CalldataError(where, f"expected {length} values for {kind.canonical}, got {len(value)}")
        # Checked before iterating, so a huge list costs nothing.
        if len(value) > budget.values:
            raise CalldataError(where, f"the arguments hold more than {MAX_VALUES} values in all")
        element = kind.element
        return [_convert(element, v, f"{where}[{i}]", budget) for i, v in enumerate(value)]
    if kind.components:
        members = kind.components
        if not isinstance(value, list) or len(value) != len(members):
            raise CalldataError(where, f"expected a list of {len(members)} values for {kind.canonical}")
        pairs = enumerate(zip(members, value, strict=True))
        return tuple(_convert(m, v, f"{where}[{i}]", budget) for i, (m, v) in pairs)
    base = kind.base
    if base.startswith(("uint", "int")):
        return _integer(base, value, where)
    if base == "address":
        if not isinstance(value, str) or len(value) > 42 or not is_address(value):
            raise CalldataError(where, f"{_show(value)} is not an address")
        return to_checksum_address(value)
    if base == "bool":
        if not isinstance(value, bool):
            raise CalldataError(where, f"expected true or false for bool, got {_show(value)}")
        return value
    if base == "string":
        if not isinstance(value, str):
            raise CalldataError(where, f"expected a string, got {_show(value)}")
        budget.take_bytes(len(value), where)  # ≤ the UTF-8 length: cheap first check
        encoded = value.encode("utf-8", errors="surrogatepass")
        budget.take_bytes(len(encoded) - len(value), where)
        return value
    return _hex_bytes(base, value, where, budget)


def encode_calldata(signature: str, args: list[Any]) -> bytes:
    """Selector + ABI-encoded `args` for `signature`; CalldataError names the bad signature or argument."""
    name, types = parse_types(signature)
    if not isinstance(args, list):
        raise CalldataError("args", f"expected a list of arguments, got {_show(args)}")
    if len(args) != len(types):
        plural = "" if len(types) == 1 else "s"
        raise CalldataError("args", f"{name} takes {len(types)} argument{plural}, got {len(args)}")
    budget = _Budget()
    values = [
        _convert(kind, value, f"args[{i}]", budget)
        for i, (kind, value) in enumerate(zip(types, args, strict=True))
    ]
    canonical = [t.canonical for t in types]
    try:
        encoded = eth_abi.encode(canonical, values)
    except (EncodingError, TypeError, ValueError, OverflowError) as error:
        # Not expected after the checks above; still the caller's input, so still a 400.
        raise CalldataError("args", f"cannot be encoded for {name}({','.join(canonical)}): {error}") from None
    return keccak(text=f"{name}({','.join(canonical)})")[:4] + encoded
