"""Where a condition job's values come from: one line of its spec's `values` each.

    price = feed 0x5FbDB2315678afecb367f032d93F642f64180aa3
    whale = balance 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
    held = erc20 0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
    reserve = call 0x9fE4…a6e0 getReserves() returns (uint112, uint112, uint32)[1]
    owed = call 0x9fE4…a6e0 debtOf(address 0x7099…79C8) returns (uint256) decimals 6
    eth = http https://prices.example/eth $.data.price decimals 8

- `balance`: the native balance, in ether (18 decimals).
- `erc20`: the token's `balanceOf(holder)`, with the token's `decimals()`.
- `feed`: a Chainlink-style feed's `latestRoundData()` answer, with the feed's `decimals()`;
  older than the job's `maxFeedAge` at the block read, it has no value.
- `call`: any view function: arguments typed as in Solidity (static types), results a list of
  static types, `[i]` picks result i (default 0), which must be an integer or a bool (1 or 0);
  `decimals n` (default 0) says how many of its digits are a fraction.
- `http`: the number at a JSON path of a document (a JSON number or a string holding a
  decimal), truncated to `decimals n` fraction digits (default 18).

On-chain values are read at one block, with the calls of every job's sources in one
JSON-RPC batch. The canonical line (what the owner signs) is `name = kind args` with
checksummed addresses, canonical types, decimal arguments, `[i]` and `decimals n` always
written (`http` has its decimals; `balance`, `erc20` and `feed` have none to write).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import eth_abi
from eth_utils import keccak

from node.chain import Call, RevertError, RpcError, checksum_address
from node.web import JsonPath, parse_json_path
from protocol.triggers.abi_text import canonical_static_type, show_value, typed_value
from protocol.triggers.base import TriggerSpecError

MAX_DECIMALS = 77
_LINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([a-z0-9]+)\s+(.*?)\s*")
_ADDRESS = r"0x[0-9a-fA-F]{40}"
_CALL = re.compile(
    rf"({_ADDRESS})\s+([A-Za-z_][A-Za-z0-9_]*)\s*\((.*?)\)\s*returns\s*\((.*?)\)"
    r"\s*(?:\[([0-9]{1,2})\])?\s*(?:decimals\s+([0-9]{1,2}))?"
)
_HTTP = re.compile(r"(\S+)\s+(\$\S*)\s*(?:decimals\s+([0-9]{1,2}))?")
_BALANCE_OF = keccak(text="balanceOf(address)")[:4]
_DECIMALS = keccak(text="decimals()")[:4]
_LATEST_ROUND = keccak(text="latestRoundData()")[:4]


class SourceError(Exception):
    """A source has no value now (a reverted call, a stale feed, an unreachable URL): the
    message is shown on the job."""


class NodeError(SourceError):
    """The node could not answer (a pruned state, a rate limit): the value may well exist, and
    an attester abstains rather than say it does not."""


@dataclass(frozen=True)
class Reading:
    """A value read: `raw`, of which the last `decimals` digits are a fraction; `updated_at`:
    when a feed last changed (None for other sources)."""

    raw: int
    decimals: int
    updated_at: int | None = None


class ChainSource(ABC):
    """A value read from the chain (see the module docstring)."""

    call_count: int = 1  # how many calls `calls` makes

    @property
    @abstractmethod
    def canonical(self) -> str:
        """`kind args`, as the owner signs it."""

    @property
    def signed(self) -> bool:
        """Whether its raw values may be negative."""
        return False

    @abstractmethod
    def calls(self, block: str) -> list[Call]:
        """The JSON-RPC calls that read it at `block` (hex)."""

    @abstractmethod
    def read(self, results: Sequence[Any]) -> Reading:
        """Its value from the `results` of `calls` (each a result or a ChainError);
        SourceError when there is none."""


CALL_GAS = 1_000_000
"""Gas one read may burn (a view the owner names runs on every node at every block)."""


def _eth_call(to: str, data: bytes, block: str) -> Call:
    return ("eth_call", [{"to": to, "data": "0x" + data.hex(), "gas": hex(CALL_GAS)}, block])


def _answer(result: Any, what: str) -> bytes:
    """The bytes of an eth_call `result`; SourceError if the call reverted, NodeError if the
    node failed to answer."""
    if isinstance(result, RevertError) or _execution_failed(result):
        raise SourceError(f"{what} failed: {result}")
    if isinstance(result, Exception):
        raise NodeError(f"{what}: the node did not answer: {result}")
    if not isinstance(result, str) or not result.startswith("0x"):
        raise SourceError(f"{what}: the node's answer is not hex")
    return bytes.fromhex(result[2:])


def _execution_failed(result: Any) -> bool:
    """Whether `result` is the node saying the call itself failed (out of gas, an invalid
    opcode): an answer about the block, like a revert, not a failure to answer."""
    text = str(result).lower()
    return isinstance(result, RpcError) and any(
        word in text for word in ("out of gas", "outofgas", "evm error")
    )


def _decoded(types: list[str], result: Any, what: str) -> tuple[Any, ...]:
    data = _answer(result, what)
    try:
        return eth_abi.decode(types, data)
    except Exception:  # a contract answers what it likes
        raise SourceError(f"{what} returned {len(data)} bytes, not ({','.join(types)})") from None


def _token_decimals(result: Any, contract: str) -> int:
    (decimals,) = _decoded(["uint8"], result, f"{contract}.decimals()")
    if decimals > MAX_DECIMALS:
        raise SourceError(f"{contract}.decimals() is {decimals}, more than {MAX_DECIMALS}")
    return decimals


@dataclass(frozen=True)
class Balance(ChainSource):
    """The native balance of `holder`."""

    holder: str

    @property
    def canonical(self) -> str:
        return f"balance {self.holder}"

    def calls(self, block: str) -> list[Call]:
        return [("eth_getBalance", [self.holder, block])]

    def read(self, results: Sequence[Any]) -> Reading:
        (result,) = results
        if isinstance(result, Exception):
            raise NodeError(f"the balance of {self.holder} could not be read: {result}")
        if not isinstance(result, str) or not result.startswith("0x"):
            raise SourceError(f"the balance of {self.holder}: the node's answer is not hex")
        return Reading(int(result, 16), 18)


@dataclass(frozen=True)
class TokenBalance(ChainSource):
    """`token.balanceOf(holder)`, with the token's decimals."""

    token: str
    holder: str
    call_count = 2

    @property
    def canonical(self) -> str:
        return f"erc20 {self.token} {self.holder}"

    def calls(self, block: str) -> list[Call]:
        holder = eth_abi.encode(["address"], [self.holder])
        return [_eth_call(self.token, _BALANCE_OF + holder, block), _eth_call(self.token, _DECIMALS, block)]

    def read(self, results: Sequence[Any]) -> Reading:
        balance, decimals = results
        (value,) = _decoded(["uint256"], balance, f"{self.token}.balanceOf({self.holder})")
        return Reading(value, _token_decimals(decimals, self.token))


@dataclass(frozen=True)
class PriceFeed(ChainSource):
    """A Chainlink-style feed's latest answer, with the feed's decimals and its update time."""

    feed: str
    call_count = 2

    @property
    def signed(self) -> bool:
        return True

    @property
    def canonical(self) -> str:
        return f"feed {self.feed}"

    def calls(self, block: str) -> list[Call]:
        return [_eth_call(self.feed, _LATEST_ROUND, block), _eth_call(self.feed, _DECIMALS, block)]

    def read(self, results: Sequence[Any]) -> Reading:
        latest, decimals = results
        types = ["uint80", "int256", "uint256", "uint256", "uint80"]
        _, answer, _, updated_at, _ = _decoded(types, latest, f"{self.feed}.latestRoundData()")
        if updated_at == 0:
            raise SourceError(f"the feed {self.feed} has no complete round")
        return Reading(answer, _token_decimals(decimals, self.feed), updated_at)


@dataclass(frozen=True)
class ViewCall(ChainSource):
    """Any view function's result `index`, with `decimals` fraction digits."""

    contract: str
    function: str
    arguments: tuple[tuple[str, Any], ...]
    returns: tuple[str, ...]
    index: int
    decimals: int

    @property
    def signed(self) -> bool:
        return self.returns[self.index].startswith("int")

    @property
    def canonical(self) -> str:
        arguments = ", ".join(f"{kind} {show_value(value)}" for kind, value in self.arguments)
        returns = ", ".join(self.returns)
        return (
            f"call {self.contract} {self.function}({arguments}) returns ({returns})[{self.index}] "
            f"decimals {self.decimals}"
        )

    def calls(self, block: str) -> list[Call]:
        kinds = [kind for kind, _ in self.arguments]
        selector = keccak(text=f"{self.function}({','.join(kinds)})")[:4]
        data = selector + eth_abi.encode(kinds, [value for _, value in self.arguments])
        return [_eth_call(self.contract, data, block)]

    def read(self, results: Sequence[Any]) -> Reading:
        (result,) = results
        values = _decoded(list(self.returns), result, f"{self.contract}.{self.function}()")
        return Reading(int(values[self.index]), self.decimals)


@dataclass(frozen=True)
class WebValue:
    """The number at `path` in the JSON document at `url` (fetched by the caller)."""

    url: str
    path_text: str
    path: JsonPath
    decimals: int
    signed = True  # a document's number may be negative

    @property
    def canonical(self) -> str:
        return f"http {self.url} {self.path_text} decimals {self.decimals}"

    def reading_of(self, raw: int) -> Reading:
        """The reading a fire reports as `raw`."""
        return Reading(raw, self.decimals)

    def reading(self, value: Decimal) -> Reading:
        """The reading of a fetched `value`: exactly, truncated toward zero to the source's
        decimals (a document's `1e999999999` is refused before any arithmetic)."""
        exponent = value.as_tuple().exponent
        if not value.is_finite() or not isinstance(exponent, int) or not -200 <= exponent <= 78:
            raise SourceError(f"{self.url}: {value} is out of range")
        scaled = int(Fraction(value) * 10**self.decimals)  # int() truncates toward zero
        if not -(2**255) <= scaled < 2**255:
            raise SourceError(f"{self.url}: {value} is out of range")
        return Reading(scaled, self.decimals)


Source = ChainSource | WebValue


@dataclass(frozen=True)
class NamedSource:
    """One line of `values`: a name the `when` expression uses, and its source."""

    name: str
    source: Source

    @property
    def canonical(self) -> str:
        """`name = kind args`, as the owner signs it."""
        return f"{self.name} = {self.source.canonical}"


def parse_source(text: str, position: int) -> NamedSource:
    """The source in `text`, line `position` of `values`; TriggerSpecError names the field."""
    field = f"values[{position}]"
    match = _LINE.fullmatch(text)
    if match is None:
        raise TriggerSpecError(field, "expected `<name> = <kind> <arguments>`")
    name, kind, rest = match.groups()
    if name in ("and", "or", "not", "between"):
        raise TriggerSpecError(field, f"{name!r} is a word of `when`, not a name")
    try:
        return NamedSource(name, _source(kind, rest))
    except ValueError as error:
        raise TriggerSpecError(field, str(error)) from None


def _source(kind: str, rest: str) -> Source:
    """The source of `kind` with arguments `rest`; ValueError says what is wrong."""
    words = rest.split()
    if kind == "balance" and len(words) == 1:
        return Balance(typed_value("address", words[0]))
    if kind == "erc20" and len(words) == 2:
        return TokenBalance(typed_value("address", words[0]), typed_value("address", words[1]))
    if kind == "feed" and len(words) == 1:
        return PriceFeed(typed_value("address", words[0]))
    if kind == "call":
        return _view_call(rest)
    if kind == "http":
        return _web_value(rest)
    if kind in ("balance", "erc20", "feed"):
        wanted = {"balance": "<holder>", "erc20": "<token> <holder>", "feed": "<feed>"}[kind]
        raise ValueError(f"expected `{kind} {wanted}`")
    raise ValueError(f"unknown source {kind!r}: balance, erc20, feed, call or http")


def _view_call(rest: str) -> ViewCall:
    match = _CALL.fullmatch(rest)
    if match is None:
        raise ValueError("expected `call <contract> <function>(<type> <value>, ...) returns (<types>)[i]`")
    contract, function, inside, outside, index, decimals = match.groups()
    arguments = []
    for number, piece in enumerate(inside.split(",") if inside.strip() else []):
        words = piece.split()
        kind = canonical_static_type(words[0]) if len(words) == 2 else None
        if kind is None:
            raise ValueError(
                f"argument {number + 1}: expected `<static type> <value>`, got {piece.strip()!r}"
            )
        arguments.append((kind, typed_value(kind, words[1])))
    returns = [canonical_static_type(piece.strip()) for piece in outside.split(",")]
    if not outside.strip() or None in returns or len(returns) > 16:
        raise ValueError(f"returns ({outside}): expected 1 to 16 static types")
    at = int(index or 0)
    if at >= len(returns) or returns[at] in ("address",) or returns[at].startswith("bytes"):
        raise ValueError(f"[{at}] must pick an integer or bool result")
    places = int(decimals or 0)
    if places > MAX_DECIMALS:
        raise ValueError(f"decimals {places} is more than {MAX_DECIMALS}")
    return ViewCall(
        checksum_address(contract), function, tuple(arguments), tuple(map(str, returns)), at, places
    )


def _web_value(rest: str) -> WebValue:
    match = _HTTP.fullmatch(rest)
    if match is None:
        raise ValueError("expected `http <url> <$.json.path> [decimals n]`")
    url, path, decimals = match.groups()
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not one
    except ValueError:
        raise ValueError(f"{url!r} is not a URL") from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        raise ValueError(f"{url!r} is not an http(s) URL without credentials")
    if not host.isascii():
        raise ValueError(f"{url!r}: write the host in ASCII (punycode)")
    places = 18 if decimals is None else int(decimals)
    if places > MAX_DECIMALS:
        raise ValueError(f"decimals {places} is more than {MAX_DECIMALS}")
    return WebValue(url, path, parse_json_path(path), places)
