"""The `condition` trigger: fires when a condition over on-chain and web values becomes true.

    "scheduleType": "condition",
    "schedule": {
        "chainId": 31337,
        "values": ["price = feed 0x5FbDB2315678afecb367f032d93F642f64180aa3",
                   "held = erc20 0xe7f1…0512 0x7099…79C8"],
        "when": "price < 1800.5 and held >= 1000",
        "maxFeedAgeSeconds": 3600,
        "cooldownSeconds": 600
    }

- `values`: 1 to MAX_VALUES named sources (protocol/triggers/condition_sources.py), each used
  by `when`.
- `when`: comparisons of the values under and / or / not
  (protocol/triggers/condition_expression.py).
- `confirmations`: the values are read at the block this many blocks below the chain's head
  (absent: the chain's default, gateway config), so a reorg shallower than that changes no
  reading.
- `maxFeedAgeSeconds` (default 3600): a feed whose answer is older than this at the block read
  has no value, and the condition does not hold.
- `httpToleranceBps` (default 100, 1 %): how far an attester's own fetch of an HTTP value may be
  from the value the fire reports (it fetches later, and prices move).
- `httpEverySeconds` (default 30, at least 5): how often the gateway fetches the HTTP values.
- `cooldownSeconds` (default 0): after a fire, rising edges in this time do not fire.

It fires on a rising edge: when `when` holds at a block read and did not at the one before (a
new job fires at its first reading if it holds then). A value that cannot be read (a reverted
call, a stale feed, an unreachable URL) makes no reading: the previous state stands and the job
shows the error. `httpEverySeconds` and `cooldownSeconds` are the gateway's policy and not
signed: an attester cannot see an edge or a cooldown, only the block it is shown.

Signed as `keccak256(abi.encode(keccak("condition"), chainId, keccak(values, canonical, joined
by "\\n"), keccak(when, canonical), confirmations or 2**64-1, maxFeedAgeSeconds,
httpToleranceBps))`. Evidence: the block's timestamp as the fire time, and as detail
`abi.encode(chainId, blockNumber, blockHash, uint256[] values)`, the raw values in the order of
`values` (two's complement for negative ones).

An attester reads the same block: it must be the chain's, the fire time its timestamp, and the
execution mined after the job's confirmations and within MAX_READING_AGE blocks of them; each
on-chain value must be exactly the one reported, each HTTP value within the tolerance of its own
fetch, and `when` must hold for them.
For HTTP values the attesters trust the URL's server as the owner does; what they add is that
the value was plausible when they checked (docs/protocol.md, Condition triggers).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

import eth_abi
import msgspec
from eth_utils import keccak
from msgspec import Meta

from node.chain import Call
from node.web import WebSourceError
from protocol.triggers.base import (
    NotYetVisibleError,
    Readers,
    TriggerFire,
    TriggerKind,
    TriggerSpecError,
    block_problem,
    chain_node,
    signed_trigger,
    unconfirmed,
)
from protocol.triggers.condition_expression import Expression, comparisons, parse_when
from protocol.triggers.condition_sources import (
    ChainSource,
    NamedSource,
    NodeError,
    Reading,
    SourceError,
    WebValue,
    parse_source,
)
from protocol.triggers.event import DEFAULT_CONFIRMATIONS, MAX_CONFIRMATIONS

MAX_VALUES = 8
MAX_READING_AGE = 1024
"""Blocks after its confirmations that a reading may still be executed (its task retried):
later, the dispatcher could pick any old block at which the condition held."""


class ConditionSpec(
    msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, rename="camel", kw_only=True
):
    """The `condition` trigger's spec (see the module docstring)."""

    chain_id: Annotated[int, Meta(ge=1, le=2**53)]
    values: Annotated[list[str], Meta(min_length=1, max_length=MAX_VALUES)]
    when: Annotated[str, Meta(max_length=256)]
    confirmations: Annotated[int, Meta(ge=0, le=MAX_CONFIRMATIONS)] | None = None
    max_feed_age_seconds: Annotated[int, Meta(ge=1, le=2**32)] = 3600
    http_tolerance_bps: Annotated[int, Meta(ge=0, le=10_000)] = 100
    http_every_seconds: Annotated[int, Meta(ge=5, le=86_400)] = 30
    cooldown_seconds: Annotated[int, Meta(ge=0, le=2**32)] = 0


@dataclass(frozen=True)
class ConditionProgram:
    """A checked condition spec: its sources, its expression and what the owner signs."""

    chain_id: int
    sources: tuple[NamedSource, ...]
    when: Expression
    confirmations: int | None
    max_feed_age: int
    tolerance_bps: int

    @classmethod
    def of(cls, spec: ConditionSpec) -> ConditionProgram:
        """The program of `spec`; TriggerSpecError names the field at fault. Remembered, like
        an event's filter."""
        return _program_of(
            spec.chain_id,
            tuple(spec.values),
            spec.when,
            spec.confirmations,
            spec.max_feed_age_seconds,
            spec.http_tolerance_bps,
        )

    @property
    def chain_sources(self) -> list[tuple[str, ChainSource]]:
        """The on-chain sources by name, in spec order."""
        return [(s.name, s.source) for s in self.sources if isinstance(s.source, ChainSource)]

    @property
    def web_sources(self) -> list[tuple[str, WebValue]]:
        """The HTTP sources by name, in spec order."""
        return [(s.name, s.source) for s in self.sources if isinstance(s.source, WebValue)]

    def holds(self, readings: Mapping[str, Reading], timestamp: int) -> bool:
        """Whether `when` holds for `readings` (by name) taken at a block of time `timestamp`;
        SourceError when a feed's reading is older than the job allows."""
        values = {}
        for named in self.sources:
            reading = readings[named.name]
            if reading.updated_at is not None and timestamp - reading.updated_at > self.max_feed_age:
                raise SourceError(
                    f"{named.name}: the feed's answer is {timestamp - reading.updated_at} s old, more "
                    f"than the job's {self.max_feed_age} s"
                )
            values[named.name] = Fraction(reading.raw, 10**reading.decimals)
        return self.when.holds(values)

    @property
    def trigger_hash(self) -> bytes:
        """What the owner signs (see the module docstring)."""
        return signed_trigger(
            "condition",
            ["uint256", "bytes32", "bytes32", "uint64", "uint64", "uint32"],
            [
                self.chain_id,
                keccak(text="\n".join(s.canonical for s in self.sources)),
                keccak(text=self.when.canonical),
                DEFAULT_CONFIRMATIONS if self.confirmations is None else self.confirmations,
                self.max_feed_age,
                self.tolerance_bps,
            ],
        )


@functools.lru_cache(maxsize=1024)
def _program_of(
    chain_id: int,
    lines: tuple[str, ...],
    when: str,
    confirmations: int | None,
    max_feed_age: int,
    tolerance_bps: int,
) -> ConditionProgram:
    sources = tuple(parse_source(line, position) for position, line in enumerate(lines))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise TriggerSpecError("values", "two values have the same name")
    expression = parse_when(when)
    used = {c.name for c in comparisons(expression)}
    if unknown := sorted(used - set(names)):
        raise TriggerSpecError("when", f"names no value called {unknown[0]!r}")
    if unused := [n for n in names if n not in used]:
        raise TriggerSpecError("values", f"{unused[0]!r} is not used by `when`")
    return ConditionProgram(chain_id, sources, expression, confirmations, max_feed_age, tolerance_bps)


def chain_calls(sources: Sequence[tuple[str, ChainSource]], block: str) -> list[Call]:
    """The calls reading every one of `sources` at `block` (hex), in one list."""
    return [call for _, source in sources for call in source.calls(block)]


def chain_readings(
    sources: Sequence[tuple[str, ChainSource]], results: Sequence[Any]
) -> dict[str, Reading | SourceError]:
    """Each source's reading (or why it has none) from the `results` of `chain_calls`."""
    readings: dict[str, Reading | SourceError] = {}
    position = 0
    for name, source in sources:
        wanted = source.call_count
        try:
            readings[name] = source.read(results[position : position + wanted])
        except SourceError as error:
            readings[name] = error
        position += wanted
    return readings


@dataclass(frozen=True)
class ReadingEvidence:
    """The block a condition was read at and the values read (the fire's `detail`)."""

    chain_id: int
    block_number: int
    block_hash: bytes
    values: tuple[int, ...]  # raw, in the order of the spec's values

    _TYPES = ("uint256", "uint64", "bytes32", "uint256[]")

    def encode(self) -> bytes:
        """The fire's `detail`."""
        raw = [value % 2**256 for value in self.values]
        return eth_abi.encode(list(self._TYPES), [self.chain_id, self.block_number, self.block_hash, raw])

    @classmethod
    def decode(cls, detail: bytes, program: ConditionProgram) -> ReadingEvidence:
        """The evidence in a fire's `detail` for `program`'s values; ValueError if it is not."""
        try:
            chain_id, block_number, block_hash, raw = eth_abi.decode(list(cls._TYPES), detail, strict=True)
        except eth_abi.exceptions.DecodingError as error:
            raise ValueError(f"not a condition fire's detail: {error}") from None
        if len(raw) != len(program.sources):
            raise ValueError(f"the fire reports {len(raw)} values, the job has {len(program.sources)}")
        values = tuple(
            value - 2**256 if named.source.signed and value >= 2**255 else value
            for named, value in zip(program.sources, raw, strict=True)
        )
        evidence = cls(chain_id, block_number, block_hash, values)
        if evidence.encode() != detail:  # one fire, one detail: no padding, no gaps
            raise ValueError("not a condition fire's detail: it is not in canonical form")
        return evidence


class ConditionKind(TriggerKind[ConditionSpec]):
    """The `condition` trigger (see the module docstring), fired by
    gateway.triggers.ConditionTriggers."""

    name = "condition"
    spec_type = ConditionSpec

    def validate(self, spec: ConditionSpec, now: float) -> float:
        ConditionProgram.of(spec)
        return now  # it may fire at once

    def trigger_hash(self, spec: ConditionSpec) -> bytes:
        return ConditionProgram.of(spec).trigger_hash

    def check_fire(self, spec: ConditionSpec, fire: TriggerFire) -> str | None:
        """The evidence reports a reading of the job's chain with one value per source."""
        program = ConditionProgram.of(spec)
        try:
            evidence = ReadingEvidence.decode(fire.detail, program)
        except ValueError as error:
            return str(error)
        if evidence.chain_id != program.chain_id:
            return f"the reading is of chain {evidence.chain_id}, the job watches chain {program.chain_id}"
        return None

    async def check_on_chain(
        self, spec: ConditionSpec, fire: TriggerFire, readers: Readers, executed_in: int
    ) -> str | None:
        """See the module docstring: the block, the confirmations, each value, and `when`."""
        program = ConditionProgram.of(spec)
        problem = self.check_fire(spec, fire)  # also here: a proof from the chain skips `check`
        if problem is not None:
            return problem
        evidence = ReadingEvidence.decode(fire.detail, program)
        rpc = chain_node(readers, evidence.chain_id)
        wanted = spec.confirmations or 0
        problem = unconfirmed("reading", evidence.block_number, wanted, executed_in)
        if problem is not None:
            return problem
        if executed_in - evidence.block_number > wanted + MAX_READING_AGE:
            late = f"over {MAX_READING_AGE} blocks after the reading was confirmed"
            return f"executed in block {executed_in}, {late}"
        on_chain = program.chain_sources
        block_tag = hex(evidence.block_number)
        block, *results = await rpc.batch(
            [("eth_getBlockByNumber", [block_tag, False]), *chain_calls(on_chain, block_tag)],
            return_exceptions=True,
        )
        problem = block_problem(block, evidence.chain_id, evidence.block_number, evidence.block_hash, fire)
        if problem is not None:
            return problem
        reported = dict(zip((s.name for s in program.sources), evidence.values, strict=True))
        readings: dict[str, Reading] = {}
        for name, reading in chain_readings(on_chain, results).items():
            if isinstance(reading, NodeError):  # the value may exist: not ours to deny
                raise NotYetVisibleError(f"{name}: {reading}")
            if isinstance(reading, SourceError):
                return f"{name} has no value at block {evidence.block_number}: {reading}"
            if reading.raw != reported[name]:
                return f"{name} is {reading.raw} at block {evidence.block_number}, not {reported[name]}"
            readings[name] = reading
        for name, source in program.web_sources:
            readings[name] = source.reading_of(reported[name])
            problem = await _web_problem(name, source, reported[name], readers, program.tolerance_bps)
            if problem is not None:
                return problem
        try:
            holds = program.holds(readings, int(block["timestamp"], 16))
        except SourceError as error:
            return str(error)
        return None if holds else f"`{program.when.canonical}` does not hold at block {evidence.block_number}"


async def _web_problem(name: str, source: WebValue, reported: int, readers: Readers, bps: int) -> str | None:
    """Why `reported` is not within `bps` of what `source` says now; NotYetVisibleError when
    this node cannot fetch it (an attester that cannot look abstains)."""
    if readers.web is None:
        raise NotYetVisibleError("this node fetches no web values")
    try:
        fetched = source.reading(await readers.web.value(source.url, source.path)).raw
    except (WebSourceError, SourceError) as error:
        raise NotYetVisibleError(f"{name}: {error}") from None
    if abs(fetched - reported) * 10_000 > bps * abs(reported):
        return f"{name} is {fetched} at {source.url} now, not within {bps} bps of the reported {reported}"
    return None


KIND = ConditionKind()
