"""The `interval` trigger: every N seconds, from a start (default: when the job is created),
optionally until an end.

    "scheduleType": "interval", "schedule": {"everySeconds": 60, "start": 1767225600, "end": null}

An optional `catchUp` ("once", the default, or "skip") says what happens to fire times missed
while the gateway was down (protocol.triggers.base.CatchUp).

Signed as `keccak256(abi.encode(keccak("interval"), every, start, end))` (0 for an unset start
or end). Evidence: the fire time. An attester accepts a fire time that is not in the future,
not after the end, and, when the start is signed, on the start + k·every grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

# protocol.jobs, not the package: protocol's __init__ imports protocol.triggers (through
# protocol.messages), so protocol may not be initialized yet when this module runs.
from protocol.jobs import UINT64_MAX
from protocol.triggers.base import (
    TimeSpec,
    TriggerFire,
    TriggerKind,
    TriggerSpecError,
    check_window,
    on_grid,
    signed_trigger,
)

MIN_INTERVAL_SECONDS = 1


class IntervalSpec(TimeSpec, kw_only=True):
    """Every `every_seconds`, from `start` (unix seconds; default: when created) until `end`."""

    every_seconds: Annotated[int, Meta(ge=MIN_INTERVAL_SECONDS, le=2**63 - 1)]


@dataclass(frozen=True)
class IntervalSchedule:
    """Every `every` seconds from `start` (unix seconds), optionally until `end`."""

    every: float
    start: float
    end: float | None = None

    def __post_init__(self) -> None:
        if not self.every > 0:
            raise ValueError(f"an interval must be positive, not {self.every}")

    def next_fire(self, after: float) -> float | None:
        """The first fire time strictly after `after`, or None when the schedule has ended."""
        if after < self.start:
            fire = self.start
        else:
            fire = self.start + (math.floor((after - self.start) / self.every) + 1) * self.every
        return None if self.end is not None and fire > self.end else fire

    def latest_fire(self, at_or_before: float) -> float | None:
        """The last fire time not after `at_or_before`, or None if there is none yet."""
        limit = at_or_before if self.end is None else min(at_or_before, self.end)
        if limit < self.start:
            return None
        return self.start + math.floor((limit - self.start) / self.every) * self.every


def interval_trigger(every_seconds: int, start: int, end: int) -> bytes:
    """The `trigger` of an interval job: keccak256(abi.encode(keccak("interval"), every, start, end))."""
    return signed_trigger("interval", ["uint64", "uint64", "uint64"], [every_seconds, start, end])


class IntervalKind(TriggerKind[IntervalSpec]):
    """Every N seconds."""

    name = "interval"
    spec_type = IntervalSpec

    def validate(self, spec: IntervalSpec, now: float) -> float:
        if not MIN_INTERVAL_SECONDS <= spec.every_seconds <= UINT64_MAX:
            raise TriggerSpecError("everySeconds", f"must be at least {MIN_INTERVAL_SECONDS}")
        return max(check_window(spec.start, spec.end, now), now)

    def trigger_hash(self, spec: IntervalSpec) -> bytes:
        return interval_trigger(spec.every_seconds, spec.start or 0, spec.end or 0)

    def schedule(self, spec: IntervalSpec, created_at: float) -> IntervalSchedule:
        start = spec.start if spec.start is not None else created_at
        return IntervalSchedule(every=spec.every_seconds, start=start, end=spec.end)

    def check_fire(self, spec: IntervalSpec, fire: TriggerFire) -> str | None:
        if spec.end is not None and fire.fire_at > spec.end:
            return f"the fire time {fire.fire_at:.3f} is after the job's end"
        if spec.start is not None and not (
            fire.fire_at >= spec.start and on_grid(fire.fire_at, spec.start, spec.every_seconds)
        ):
            return f"{fire.fire_at:.3f} is not a fire time of every {spec.every_seconds} s from {spec.start}"
        return None


KIND = IntervalKind()
