"""The `specific` trigger: one or more absolute times, each fired once.

    "scheduleType": "specific", "schedule": {"times": [1798761600, 1799366400]}

Times are unix seconds, at most MAX_TIMES, none repeated; a time not in the future is refused
when the job is created. An optional `start` and `end` bound them like any time trigger's
(a time outside is refused: it would never fire). Signed as `keccak256(abi.encode(
keccak("specific"), keccak(abi.encode(uint64[] times, sorted)), start, end))`. Evidence: the
fire time; an attester accepts exactly the listed times.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Annotated

import eth_abi
from eth_utils import keccak
from msgspec import Meta

from protocol.triggers.base import (
    LATEST_TIME,
    TimeSpec,
    TriggerFire,
    TriggerKind,
    TriggerSpecError,
    UnixSeconds,
    check_window,
    signed_trigger,
)

MAX_TIMES = 1000


class SpecificSpec(TimeSpec, kw_only=True):
    """Fire at each of `times` (unix seconds)."""

    times: Annotated[list[UnixSeconds], Meta(min_length=1, max_length=MAX_TIMES)]


@dataclass(frozen=True)
class SpecificSchedule:
    """Each of `times` (sorted, unique unix seconds) once."""

    times: tuple[int, ...]

    def next_fire(self, after: float) -> float | None:
        """The first fire time strictly after `after`, or None when the schedule has ended."""
        index = bisect.bisect_right(self.times, after)
        return float(self.times[index]) if index < len(self.times) else None

    def latest_fire(self, at_or_before: float) -> float | None:
        """The last fire time not after `at_or_before`, or None if there is none yet."""
        index = bisect.bisect_right(self.times, at_or_before)
        return float(self.times[index - 1]) if index else None


def specific_trigger(times: list[int], start: int, end: int) -> bytes:
    """The `trigger` of a specific-times job (see the module docstring)."""
    listed = keccak(eth_abi.encode(["uint64[]"], [sorted(times)]))
    return signed_trigger("specific", ["bytes32", "uint64", "uint64"], [listed, start, end])


class SpecificKind(TriggerKind[SpecificSpec]):
    """Fixed times, each once."""

    name = "specific"
    spec_type = SpecificSpec

    def validate(self, spec: SpecificSpec, now: float) -> float:
        check_window(spec.start, spec.end, now)
        seen: set[int] = set()
        for index, at in enumerate(spec.times):
            where = f"times[{index}]"
            if at in seen:
                raise TriggerSpecError(where, f"{at} is listed twice")
            seen.add(at)
            if at <= now:
                raise TriggerSpecError(where, f"{at} is not in the future")
            if at > LATEST_TIME:
                raise TriggerSpecError(where, "must be a unix time before the year 3000")
            if (spec.start is not None and at < spec.start) or (spec.end is not None and at > spec.end):
                raise TriggerSpecError(where, f"{at} is outside the job's start and end: it would never fire")
        return float(min(spec.times))

    def trigger_hash(self, spec: SpecificSpec) -> bytes:
        return specific_trigger(spec.times, spec.start or 0, spec.end or 0)

    def schedule(self, spec: SpecificSpec, created_at: float) -> SpecificSchedule:
        return SpecificSchedule(tuple(sorted(set(spec.times))))

    def check_fire(self, spec: SpecificSpec, fire: TriggerFire) -> str | None:
        if fire.fire_at not in spec.times:
            return f"{fire.fire_at:.3f} is not one of the job's times"
        return None


KIND = SpecificKind()
