"""What every trigger kind declares, and what a fire carries to performers and attesters.

A kind (one module per kind, registered in protocol.triggers) declares:
- its JSON spec (`spec_type`, a strict msgspec struct) and how it is checked at creation;
- its part of the owner's signed terms (`trigger_hash`: `JobTerms.trigger`);
- how it fires: a time schedule (`schedule`), or nothing here for kinds a watcher fires;
- the evidence of a fire (`evidence`: the assignment's `triggerEvidence`, which the
  dispatcher signs), and the attester's check of a fire against the owner's terms.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar

import eth_abi
import msgspec
from eth_utils import keccak
from msgspec import Meta

from node.chain import Contract, RpcClient
from node.config import split_validation_error
from node.web import JsonValues

S = TypeVar("S", bound=msgspec.Struct)
# A fire time goes into the evidence as uint64 milliseconds.
FireAt = Annotated[float, Meta(ge=0, le=(2**64 - 1) / 1000)]
# A trigger spec as JSON: a small, flat object (a value may be a list of numbers or short
# texts: times, addresses, conditions). Flat on purpose: a peer's deeply nested JSON must not
# reach the decoder's recursion (with py_ecc's raised recursion limit it would crash the
# process, not raise).
SpecText = Annotated[str, Meta(max_length=256)]
SpecValue = int | SpecText | None | Annotated[list[int | SpecText], Meta(max_length=1000)]
SpecJson = Annotated[dict[Annotated[str, Meta(max_length=64)], SpecValue], Meta(max_length=16)]
CLOCK_SKEW = 30.0  # seconds an attester's clock may trail the dispatcher's
LATEST_TIME = 32_503_680_000  # 3000-01-01 UTC: start, end and fire times are before it (datetime and
# croniter overflow near the year 9999; uint64 in the signed trigger is far beyond)

CatchUp = Literal["once", "skip"]
"""What a time-triggered job does about fire times missed while the gateway was down: `once`
fires one late task for the latest of them (the default), `skip` fires none. A gateway
policy, not part of the signed trigger: an attester cannot tell a late fire from a retried
one, so a signature would promise a check nobody can make."""


UnixSeconds = Annotated[int, Meta(ge=0, le=2**63 - 1)]
"""A time in a spec (signed as uint64; msgspec bounds ints to 64 signed bits)."""


class TimeSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, rename="camel", kw_only=True):
    """What every time kind's spec has besides its own fields: an optional `start` and `end`
    (unix seconds) and its catch-up policy."""

    start: UnixSeconds | None = None
    end: UnixSeconds | None = None
    catch_up: CatchUp = "once"


@dataclass(frozen=True)
class Readers:
    """What a node reads to check a fire against the world: the nodes of the chains it
    follows, by chain id, the web (condition jobs' HTTP sources; None: it fetches none), and
    the hub it executes and attests on, whose settler decides tasks (`after` jobs; None: it
    checks no such fire)."""

    chains: Mapping[int, RpcClient]
    web: JsonValues | None = None
    hub: Contract | None = None


class NotYetVisibleError(Exception):
    """The chain a fire is checked against has not reached it yet (the attester abstains)."""


class TriggerSpecError(ValueError):
    """A trigger spec is invalid; `field` is the path inside the spec (e.g. `everySeconds`;
    empty for the spec as a whole)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class TriggerFire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One fire of a job's trigger, as the assignment message carries it: the kind, the job's
    trigger spec (checked against the owner's signed terms), when it fired, and what else the
    kind needs to show the fire was real (an event's block and log index, a value read)."""

    kind: Annotated[str, Meta(max_length=32)]
    spec: SpecJson
    fire_at: FireAt
    detail: Annotated[bytes, Meta(max_length=1024)] = b""


class Schedule(Protocol):
    """The fire times of a time-triggered job."""

    def next_fire(self, after: float) -> float | None:
        """The first fire time strictly after `after`, or None when the schedule has ended."""
        ...

    def latest_fire(self, at_or_before: float) -> float | None:
        """The last fire time not after `at_or_before`, or None if there is none yet."""
        ...


class TriggerKind(ABC, Generic[S]):
    """One kind of trigger (see the module docstring). Subclasses set `name` and `spec_type`."""

    name: ClassVar[str]
    spec_type: ClassVar[type[msgspec.Struct]]

    def parse(self, raw: dict[str, Any], now: float) -> tuple[S, float]:
        """The spec in `raw` (a job's JSON `schedule`), checked at time `now`, and its first
        fire time (the consent must not expire before it); TriggerSpecError otherwise."""
        spec = self.decode(raw)
        return spec, self.validate(spec, now)

    def decode(self, raw: dict[str, Any]) -> S:
        """`raw` as this kind's spec struct (shape only); TriggerSpecError names the field."""
        try:
            return msgspec.convert(raw, type=self.spec_type, strict=True)  # type: ignore[return-value]
        except msgspec.ValidationError as error:
            path, problem = split_validation_error(error)
            raise TriggerSpecError(path.removeprefix("$").removeprefix("."), problem) from None

    @abstractmethod
    def validate(self, spec: S, now: float) -> float:
        """Check `spec`'s values at time `now`; its first fire time."""

    @abstractmethod
    def trigger_hash(self, spec: S) -> bytes:
        """The `trigger` of the job's on-chain terms: what the owner signs about when it runs."""

    def schedule(self, spec: S, created_at: float) -> Schedule | None:
        """When a time-triggered job fires (None: a watcher fires this kind)."""
        return None

    def catch_up(self, spec: S) -> CatchUp:
        """The job's policy for fire times missed while the gateway was down (a time kind's
        spec says; `once` for the others)."""
        return spec.catch_up if isinstance(spec, TimeSpec) else "once"

    def evidence(self, job_id: int, fire: TriggerFire, calldata: bytes) -> bytes:
        """The assignment's `triggerEvidence` for `fire`: which job, kind, time, detail and
        call. Binding the calldata puts it under the dispatcher's signature, so attesters can
        trust the calldata a performer relays to them."""
        return keccak(
            eth_abi.encode(
                ["uint256", "bytes32", "uint64", "bytes32", "bytes32"],
                [
                    job_id,
                    keccak(text=fire.kind),
                    round(fire.fire_at * 1000),
                    keccak(fire.detail),
                    keccak(calldata),
                ],
            )
        )

    def check(self, fire: TriggerFire, terms_trigger: bytes, now: float) -> str | None:
        """Why an attester must not accept `fire` for a job whose signed trigger is
        `terms_trigger`, at time `now`; None when it is a fire the owner's trigger allows."""
        try:
            spec = self.decode(fire.spec)
            signed = self.trigger_hash(spec)
        except (TriggerSpecError, ValueError, OverflowError) as error:  # eth_abi: a value out of range
            return f"the trigger spec is malformed ({error})"
        if signed != terms_trigger:
            return "the trigger spec is not the one the owner signed"
        if fire.fire_at > now + CLOCK_SKEW:
            return f"the fire time {fire.fire_at:.3f} is in the future"
        return self.check_fire(spec, fire)

    def check_fire(self, spec: S, fire: TriggerFire) -> str | None:
        """What this kind checks of a fire beyond the base checks (None: nothing more)."""
        return None

    async def check_on_chain(
        self, spec: S, fire: TriggerFire, readers: Readers, executed_in: int
    ) -> str | None:
        """Why the world contradicts `fire` executed in block `executed_in` (an event's log
        that is not there, or not confirmed then; a condition that did not hold), or None;
        the attester reads through `readers`. NotYetVisibleError: this node cannot see what
        the fire names. Time kinds have nothing to check."""
        return None


def signed_trigger(kind: str, types: list[str], values: list[Any]) -> bytes:
    """A kind's `trigger` hash: keccak256(abi.encode(keccak256(kind), values...))."""
    return keccak(eth_abi.encode(["bytes32", *types], [keccak(text=kind), *values]))


def chain_node(readers: Readers, chain_id: int) -> RpcClient:
    """The node of chain `chain_id` among `readers`; NotYetVisibleError if it follows none."""
    rpc = readers.chains.get(chain_id)
    if rpc is None:
        raise NotYetVisibleError(f"this node follows no chain {chain_id}")
    return rpc


def unconfirmed(what: str, block_number: int, confirmations: int, executed_in: int) -> str | None:
    """Why an execution in block `executed_in` came before `confirmations` blocks were on top
    of `what` (a log, a reading) in block `block_number`, or None."""
    if block_number + confirmations > executed_in:
        return f"executed in block {executed_in}, before the {what}'s {confirmations} confirmation(s)"
    return None


def block_problem(block: Any, chain_id: int, number: int, block_hash: bytes, fire: TriggerFire) -> str | None:
    """Why `block` (what the node answered for block `number`, or the error it gave) is not the
    block `block_hash` of chain `chain_id` that `fire` names, with the fire time as its time."""
    if isinstance(block, Exception):
        raise block
    wanted = "0x" + block_hash.hex()
    if block is None or block["hash"].lower() != wanted:
        return f"block {number} is not {wanted} on chain {chain_id}"
    if int(block["timestamp"], 16) != fire.fire_at:
        return f"the fire time {fire.fire_at} is not the block's time"
    return None


def check_window(start: int | None, end: int | None, now: float) -> float:
    """Check a time trigger's optional `start` and `end` (unix seconds) at time `now`; the
    time it starts from (`start`, or `now` when unset)."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and not 0 < value <= LATEST_TIME:
            raise TriggerSpecError(name, "must be a unix time before the year 3000")
    begins = start if start is not None else now
    if end is not None:
        if end <= now:
            raise TriggerSpecError("end", "is in the past: the job would never fire")
        if end < begins:
            raise TriggerSpecError("end", "must not be before start")
    return begins


def on_grid(value: float, start: float, step: float) -> bool:
    """Whether `value` is `start` plus a whole number of `step`s (to the millisecond)."""
    steps = (value - start) / step
    return abs(steps - round(steps)) * step < 0.001 and not math.isnan(steps)
