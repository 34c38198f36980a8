"""The `event` trigger: a contract event, once per matching log, after confirmations.

    "scheduleType": "event",
    "schedule": {
        "chainId": 31337,
        "addresses": ["0x5FbDB2315678afecb367f032d93F642f64180aa3"],
        "event": "Transfer(address indexed from, address indexed to, uint256 value)",
        "where": ["to = 0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "value >= 1000000"],
        "confirmations": 2
    }

- `addresses`: the contracts whose logs count, 1 to MAX_ADDRESSES.
- `event`: the event's declaration as in Solidity, with `indexed` and parameter names (an
  unnamed parameter is `argN`, N its position). Parameters are elementary types
  (address, bool, intN, uintN, bytesN, bytes, string) or one-dimensional arrays of the
  fixed-size ones (`uint256[]`, `address[3]`): deeper or dynamic arrays let a log's data
  decode to exponentially many values. Anonymous events are not supported: topic0 is what
  finds the logs. A log with more than MAX_LOG_DATA bytes of data matches nothing.
- `where`: conditions that must all hold, each `<parameter> <op> <value>`: `=` with one value
  or several separated by `|` (any of them), `!=` (none of them), and `<`, `<=`, `>`, `>=`
  on integer parameters (a range is two conditions). Values: decimal or 0x-hex integers
  (exact, any size the type holds), checksummed or lower-case addresses, `true`/`false`,
  0x-hex for bytesN; a `string` or `bytes` parameter compares for equality only, with the
  text (for `bytes`, 0x-hex) as written, which cannot hold a `|`; an indexed one compares
  its hash, which is all the log holds. Arrays cannot be compared.
- `confirmations`: blocks on top of the log's block before it fires; absent: the chain's
  default (gateway config).

A log whose topics or data do not decode as the declared event (an ERC-721 `Transfer` has
the ERC-20 one's topic0 and one more indexed parameter) does not match.

Signed as `keccak256(abi.encode(keccak("event"), chainId, keccak(addresses, checksummed and
sorted, joined by ","), keccak(event, canonical), keccak(where, canonical, joined by "\\n"),
confirmations or 2**64-1))`. The canonical event is `Name(type indexed name,...)` (`uint`
as `uint256`); a canonical condition is `name op value|value` with checksummed addresses,
decimal integers and lower-case hex. Evidence: the block's timestamp as the fire time, and
as detail `abi.encode(chainId, blockNumber, blockHash, txHash, logIndex, address)`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import eth_abi
import msgspec
from eth_utils import keccak
from msgspec import Meta

from node.chain import checksum_address
from protocol.triggers.abi_text import hex_bytes, show_value, typed_value
from protocol.triggers.base import (
    Readers,
    TriggerFire,
    TriggerKind,
    TriggerSpecError,
    block_problem,
    chain_node,
    signed_trigger,
    unconfirmed,
)

MAX_ADDRESSES = 16
MAX_CONDITIONS = 16
MAX_PARAMETERS = 16
MAX_CONFIRMATIONS = 10_000
MAX_LOG_DATA = 16_384
"""Bytes of a log's data decoded at most (a longer log matches nothing): with one array
dimension of static types, decoding stays linear in it."""
DEFAULT_CONFIRMATIONS = 2**64 - 1  # in the signed trigger: "the chain's default"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_EVENT = re.compile(rf"\s*({_NAME})\s*\((.*)\)\s*")
_ELEMENTARY = re.compile(r"address|bool|string|bytes([1-9]|[12][0-9]|3[0-2])?|u?int([1-9][0-9]*)?")
_ARRAY = re.compile(r"(\[([1-9][0-9]?)?\])?")  # one dimension at most, fixed sizes 1 to 99
_CONDITION = re.compile(rf"\s*({_NAME})\s*(=|!=|<=|>=|<|>)\s*(.+?)\s*")


class EventSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, rename="camel", kw_only=True):
    """The `event` trigger's spec (see the module docstring)."""

    chain_id: Annotated[int, Meta(ge=1, le=2**53)]
    addresses: Annotated[list[str], Meta(min_length=1, max_length=MAX_ADDRESSES)]
    event: Annotated[str, Meta(max_length=256)]
    where: Annotated[list[str], Meta(max_length=MAX_CONDITIONS)] = msgspec.field(default_factory=list)
    confirmations: Annotated[int, Meta(ge=0, le=MAX_CONFIRMATIONS)] | None = None


@dataclass(frozen=True)
class Parameter:
    """One parameter of an event declaration."""

    type: str
    indexed: bool
    name: str

    @property
    def hashed(self) -> bool:
        """Whether the log holds only the hash of this (indexed) value: dynamic types."""
        return self.indexed and (self.type in ("string", "bytes") or self.type.endswith("]"))


@dataclass(frozen=True)
class EventDeclaration:
    """An event's name and parameters, parsed from its Solidity declaration."""

    name: str
    parameters: tuple[Parameter, ...]

    @property
    def signature(self) -> str:
        """`Name(type,type)`: what topic0 hashes."""
        return f"{self.name}({','.join(p.type for p in self.parameters)})"

    @property
    def topic0(self) -> bytes:
        """The log's first topic for this event."""
        return keccak(text=self.signature)

    @property
    def canonical(self) -> str:
        """`Name(type indexed name,...)`: what the owner signs."""
        parts = (f"{p.type}{' indexed' if p.indexed else ''} {p.name}" for p in self.parameters)
        return f"{self.name}({','.join(parts)})"

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called `name`, if any."""
        return next((p for p in self.parameters if p.name == name), None)


def parse_event(text: str) -> EventDeclaration:
    """The declaration in `text`; TriggerSpecError (field `event`) when it is not one."""
    match = _EVENT.fullmatch(text)
    if match is None:
        raise TriggerSpecError("event", "expected a declaration like Transfer(address indexed from, ...)")
    name, inside = match.groups()
    pieces = [piece.split() for piece in inside.split(",")] if inside.strip() else []
    if len(pieces) > MAX_PARAMETERS:
        raise TriggerSpecError("event", f"at most {MAX_PARAMETERS} parameters")
    parameters = []
    for position, words in enumerate(pieces):
        if not words or len(words) > 3 or (len(words) == 3 and words[1] != "indexed"):
            raise TriggerSpecError("event", f"parameter {position + 1}: expected `type [indexed] [name]`")
        kind, indexed = _canonical_type(words[0], position), "indexed" in words[1:2]
        called = words[-1] if len(words) == 3 or (len(words) == 2 and not indexed) else f"arg{position}"
        if not re.fullmatch(_NAME, called) or called == "indexed":
            raise TriggerSpecError("event", f"parameter {position + 1}: {called!r} is not a name")
        parameters.append(Parameter(kind, indexed, called))
    if sum(p.indexed for p in parameters) > 3:
        raise TriggerSpecError("event", "at most 3 parameters are indexed")
    if len({p.name for p in parameters}) != len(parameters):
        raise TriggerSpecError("event", "two parameters have the same name")
    return EventDeclaration(name, tuple(parameters))


def _canonical_type(text: str, position: int) -> str:
    base = re.match(r"[a-z0-9]+", text)
    suffix = text[base.end() :] if base else text
    if base is None or not _ELEMENTARY.fullmatch(base.group()) or not _ARRAY.fullmatch(suffix):
        raise TriggerSpecError("event", f"parameter {position + 1}: unsupported type {text!r}")
    kind = base.group()
    if suffix and kind in ("string", "bytes"):
        raise TriggerSpecError("event", f"parameter {position + 1}: arrays of {kind} are not supported")
    bits = re.fullmatch(r"u?int([0-9]+)", kind)
    if bits and (int(bits.group(1)) % 8 or not 8 <= int(bits.group(1)) <= 256):
        raise TriggerSpecError("event", f"parameter {position + 1}: {kind} is no Solidity type")
    if kind in ("uint", "int"):
        kind += "256"
    return kind + suffix


@dataclass(frozen=True)
class Condition:
    """One `where` condition, its values converted to what a decoded log holds."""

    parameter: Parameter
    op: str
    values: tuple[Any, ...]

    @property
    def canonical(self) -> str:
        """`name op value|value`, values normalised (what the owner signs)."""
        shown = "|".join(show_value(v) for v in self.values)
        return f"{self.parameter.name} {self.op} {shown}"

    def holds(self, value: Any) -> bool:
        """Whether the condition holds for the decoded `value` of its parameter."""
        if self.op == "=":
            return value in self.values
        if self.op == "!=":
            return value not in self.values
        limit = self.values[0]
        return {"<": value < limit, "<=": value <= limit, ">": value > limit, ">=": value >= limit}[self.op]


def parse_condition(text: str, event: EventDeclaration, position: int) -> Condition:
    """The condition in `text` over `event`'s parameters; TriggerSpecError (field `where[i]`)."""
    field = f"where[{position}]"
    match = _CONDITION.fullmatch(text)
    if match is None:
        raise TriggerSpecError(field, "expected `<parameter> <op> <value>`, op one of = != < <= > >=")
    name, op, raw = match.groups()
    parameter = event.parameter(name)
    if parameter is None:
        raise TriggerSpecError(field, f"{event.name} has no parameter {name!r}")
    if parameter.type.endswith("]"):
        raise TriggerSpecError(field, f"{name} is an array: arrays cannot be compared")
    integer = re.fullmatch(r"u?int[0-9]+", parameter.type) is not None
    if op not in ("=", "!=") and not integer:
        raise TriggerSpecError(field, f"{op} compares integers; {name} is {parameter.type}")
    texts = raw.split("|") if op in ("=", "!=") else [raw]
    try:
        values = tuple(_value(parameter, t.strip()) for t in texts)
    except ValueError as error:
        raise TriggerSpecError(field, str(error)) from None
    return Condition(parameter, op, values)


def _value(parameter: Parameter, text: str) -> Any:
    """`text` as the value a decoded log holds for `parameter` (ValueError if it cannot be)."""
    if parameter.hashed:  # the log holds keccak256 of the value
        return keccak(hex_bytes(text) if parameter.type == "bytes" else text.encode())
    return typed_value(parameter.type, text)


@dataclass(frozen=True)
class EventFilter:
    """A checked event spec: which logs it takes (`matches`), and what the owner signs."""

    chain_id: int
    addresses: frozenset[str]
    event: EventDeclaration
    conditions: tuple[Condition, ...]
    confirmations: int | None

    @classmethod
    def of(cls, spec: EventSpec) -> EventFilter:
        """The filter of `spec`; TriggerSpecError names the field at fault. Remembered: an
        attester reads one fire's spec three times (its hash, its fire, its log)."""
        return _filter_of(
            spec.chain_id, tuple(spec.addresses), spec.event, tuple(spec.where), spec.confirmations
        )

    def decode(self, log: Mapping[str, Any]) -> dict[str, Any] | None:
        """The parameters of `log` (a JSON-RPC log object) by name, or None when it is not
        this event from one of the addresses (including one that does not decode as it)."""
        try:
            if len(log["data"]) > 2 + 2 * MAX_LOG_DATA or len(log["topics"]) > 4:
                return None
            topics = [bytes.fromhex(t.removeprefix("0x")) for t in log["topics"]]
            if checksum_address(log["address"]) not in self.addresses or topics[:1] != [self.event.topic0]:
                return None
            indexed = [p for p in self.event.parameters if p.indexed]
            plain = [p for p in self.event.parameters if not p.indexed]
            if len(topics) != 1 + len(indexed):
                return None
            values = {
                p.name: topic if p.hashed else eth_abi.decode([p.type], topic)[0]
                for p, topic in zip(indexed, topics[1:], strict=True)
            }
            data = bytes.fromhex(log["data"].removeprefix("0x"))
            values.update(
                zip((p.name for p in plain), eth_abi.decode([p.type for p in plain], data), strict=True)
            )
        except Exception:  # a log is anyone's data: whatever fails to decode matches nothing
            return None
        for parameter in self.event.parameters:  # addresses compare checksummed
            if parameter.type == "address":
                values[parameter.name] = checksum_address(values[parameter.name])
        return values

    def matches(self, log: Mapping[str, Any]) -> bool:
        """Whether `log` is this event, from one of the addresses, and meets every condition."""
        values = self.decode(log)
        return values is not None and all(c.holds(values[c.parameter.name]) for c in self.conditions)

    @property
    def trigger_hash(self) -> bytes:
        """What the owner signs (see the module docstring)."""
        return signed_trigger(
            "event",
            ["uint256", "bytes32", "bytes32", "bytes32", "uint64"],
            [
                self.chain_id,
                keccak(text=",".join(sorted(self.addresses))),
                keccak(text=self.event.canonical),
                keccak(text="\n".join(c.canonical for c in self.conditions)),
                DEFAULT_CONFIRMATIONS if self.confirmations is None else self.confirmations,
            ],
        )


@functools.lru_cache(maxsize=1024)
def _filter_of(
    chain_id: int, texts: tuple[str, ...], declaration: str, where: tuple[str, ...], confirmations: int | None
) -> EventFilter:
    addresses = []
    for position, text in enumerate(texts):
        try:
            addresses.append(checksum_address(text))
        except (ValueError, TypeError):
            raise TriggerSpecError(f"addresses[{position}]", f"{text!r} is not an address") from None
    if len(set(addresses)) != len(addresses):
        raise TriggerSpecError("addresses", "an address is listed twice")
    event = parse_event(declaration)
    conditions = tuple(parse_condition(text, event, n) for n, text in enumerate(where))
    return EventFilter(chain_id, frozenset(addresses), event, conditions, confirmations)


@dataclass(frozen=True)
class LogEvidence:
    """Where a fire's log is: what an attester looks up (the fire's `detail`)."""

    chain_id: int
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    address: str

    _TYPES = ("uint256", "uint64", "bytes32", "bytes32", "uint32", "address")

    def encode(self) -> bytes:
        """The fire's `detail`."""
        fields = [
            self.chain_id,
            self.block_number,
            self.block_hash,
            self.tx_hash,
            self.log_index,
            self.address,
        ]
        return eth_abi.encode(list(self._TYPES), fields)

    @classmethod
    def decode(cls, detail: bytes) -> LogEvidence:
        """The evidence in a fire's `detail`; ValueError if it is not one."""
        try:
            values = eth_abi.decode(list(cls._TYPES), detail, strict=True)
        except eth_abi.exceptions.DecodingError as error:
            raise ValueError(f"not an event fire's detail: {error}") from None
        chain_id, block_number, block_hash, tx_hash, log_index, address = values
        evidence = cls(chain_id, block_number, block_hash, tx_hash, log_index, checksum_address(address))
        if evidence.encode() != detail:  # one fire, one detail: no padding
            raise ValueError("not an event fire's detail: it is not in canonical form")
        return evidence

    @classmethod
    def of(cls, chain_id: int, log: Mapping[str, Any]) -> LogEvidence:
        """The evidence of a JSON-RPC log object on chain `chain_id`."""
        return cls(
            chain_id,
            int(log["blockNumber"], 16),
            bytes.fromhex(log["blockHash"][2:]),
            bytes.fromhex(log["transactionHash"][2:]),
            int(log["logIndex"], 16),
            checksum_address(log["address"]),
        )


class EventKind(TriggerKind[EventSpec]):
    """The `event` trigger (see the module docstring), fired by gateway.triggers.EventTriggers."""

    name = "event"
    spec_type = EventSpec

    def validate(self, spec: EventSpec, now: float) -> float:
        EventFilter.of(spec)
        return now  # it may fire at once

    def trigger_hash(self, spec: EventSpec) -> bytes:
        return EventFilter.of(spec).trigger_hash

    def check_fire(self, spec: EventSpec, fire: TriggerFire) -> str | None:
        """The evidence names a log of the watched chain and contracts (the log itself, and its
        confirmations, are checked against the chain by the attester)."""
        try:
            evidence = LogEvidence.decode(fire.detail)
        except ValueError as error:
            return str(error)
        filter_ = EventFilter.of(spec)
        if evidence.chain_id != filter_.chain_id:
            return f"the log is on chain {evidence.chain_id}, the job watches chain {filter_.chain_id}"
        if evidence.address not in filter_.addresses:
            return f"the log is from {evidence.address}, not a contract the job watches"
        return None

    async def check_on_chain(
        self, spec: EventSpec, fire: TriggerFire, readers: Readers, executed_in: int
    ) -> str | None:
        """The job's confirmations were on top of the log when the execution was mined in
        block `executed_in` (a job that sets none: none are checked, as the gateway's default
        is not signed), the log is in the block the evidence names, that block is the chain's
        and carries the fire time, and the log is the watched event and meets the conditions."""
        problem = self.check_fire(spec, fire)  # also here: a proof from the chain skips `check`
        if problem is not None:
            return problem
        evidence = LogEvidence.decode(fire.detail)
        rpc = chain_node(readers, evidence.chain_id)
        problem = unconfirmed("log", evidence.block_number, spec.confirmations or 0, executed_in)
        if problem is not None:
            return problem
        receipt, block = await rpc.batch(
            [
                ("eth_getTransactionReceipt", ["0x" + evidence.tx_hash.hex()]),
                ("eth_getBlockByNumber", [hex(evidence.block_number), False]),
            ]
        )
        problem = block_problem(block, evidence.chain_id, evidence.block_number, evidence.block_hash, fire)
        if problem is not None:
            return problem
        if receipt is None or receipt["blockHash"].lower() != "0x" + evidence.block_hash.hex():
            return f"transaction 0x{evidence.tx_hash.hex()} is not in that block"
        entry = next((e for e in receipt["logs"] if int(e["logIndex"], 16) == evidence.log_index), None)
        if entry is None:
            return f"the transaction has no log {evidence.log_index}"
        if not EventFilter.of(spec).matches(entry):
            return "the log is not the job's event, or does not meet its conditions"
        return None


KIND = EventKind()
