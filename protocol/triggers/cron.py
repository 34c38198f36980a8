"""The `cron` trigger: a cron expression read on the wall clock of the job's IANA time zone.

    "scheduleType": "cron",
    "schedule": {"cron": "0 9 * * 1-5", "timezone": "America/New_York", "start": null, "end": null}

Five fields (minute hour day-of-month month day-of-week), or six with seconds first (as in
node-cron, Quartz and Spring); croniter's syntax, `@daily` and the like included. The default
time zone is UTC. Daylight saving time, by the wall clock of the zone:
- a time in the spring-forward gap (02:30 when clocks jump from 02:00 to 03:00) does not
  exist: it fires once, at the first instant after the gap (03:00); several times in one gap
  fire once between them;
- a time in the fall-back overlap (02:30 when clocks go from 03:00 back to 02:00) happens
  twice: it fires once, at its first occurrence.

Every node computes fire times from the same time-zone database, the pinned `tzdata`
package, not the host's: an attester on a host with older rules must not refuse an honest
fire. Signed as `keccak256(abi.encode(keccak("cron"), keccak(cron), keccak(timezone), start,
end))`. Evidence: the fire time; an attester accepts exactly the schedule's fire times.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Annotated

from croniter import croniter
from eth_utils import keccak
from msgspec import Meta

from protocol.triggers.base import (
    TimeSpec,
    TriggerFire,
    TriggerKind,
    TriggerSpecError,
    check_window,
    signed_trigger,
)

zoneinfo.reset_tzpath(to=())  # the pinned tzdata package only (see the module docstring)

MAX_EXPRESSION = 128
MAX_SEARCH_YEARS = 5  # an expression that matches nothing within this (e.g. Feb 30) is refused
MAX_STEPS = 100_000  # wall times one search may step through (a backstop: a second pass takes 7,200)
_CHANCE = re.compile(r"^[HhRr](\(|/|$)")  # an R or H element of a field (not a day or month name)


class CronSpec(TimeSpec, kw_only=True):
    """`cron` on the wall clock of `timezone`, from `start` until `end` (unix seconds)."""

    cron: Annotated[str, Meta(max_length=MAX_EXPRESSION)]
    timezone: Annotated[str, Meta(max_length=64)] = "UTC"


@dataclass(frozen=True)
class CronSchedule:
    """The fire times of `expression` in `zone`, within [`start`, `end`] (unix seconds)."""

    expression: str
    zone: zoneinfo.ZoneInfo
    start: float | None = None
    end: float | None = None

    def next_fire(self, after: float) -> float | None:
        """The first fire time strictly after `after`, or None when the schedule has ended."""
        if self.start is not None:
            after = max(after, self.start - 1)  # fire times are whole seconds: >= start
        instant = _next_instant(self.expression, self.zone, math.floor(after))
        return None if self.end is not None and instant > self.end else instant

    def latest_fire(self, at_or_before: float) -> float | None:
        """The last fire time not after `at_or_before`, or None if there is none yet."""
        limit = at_or_before if self.end is None else min(at_or_before, self.end)
        instant = _latest_instant(self.expression, self.zone, math.floor(limit))
        return None if self.start is not None and instant < self.start else instant


# Jobs that share an expression and a zone fire at the same instants: each next (or latest)
# instant is computed once for all of them (croniter takes ~0.3 ms a time; 10,000 jobs on
# "* * * * *" would otherwise hold the scheduler for 3 s every minute).
@lru_cache(maxsize=65_536)
def _next_instant(expression: str, zone: zoneinfo.ZoneInfo, after: int) -> float:
    start = datetime.fromtimestamp(after, zone)
    if start.fold:  # in an overlap's second pass: the wall times to its end map to first passes, past
        start = datetime.fromtimestamp(_second_pass_end(after, zone) - 1, zone)
    walls = _walls(expression, start, forward=True)
    for _ in range(MAX_STEPS):
        if (instant := _instant(next(walls), zone)) > after:
            return instant
    raise ValueError(f"no fire time of {expression!r} found in {MAX_STEPS} steps")


def _second_pass_end(inside: int, zone: zoneinfo.ZoneInfo) -> int:
    """The first instant after the second pass of the overlap that the instant `inside` is in."""
    wall = datetime.fromtimestamp(inside, zone)
    low, high = inside, inside + int((wall.replace(fold=0).utcoffset() - wall.utcoffset()).total_seconds())
    while high - low > 1:  # fold is 1 at `low`, 0 at `high`
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).fold:
            low = middle
        else:
            high = middle
    return high


@lru_cache(maxsize=65_536)
def _latest_instant(expression: str, zone: zoneinfo.ZoneInfo, at_or_before: int) -> float:
    before = datetime.fromtimestamp(at_or_before + 1, zone)
    if before.fold:  # in an overlap's second pass: the later wall times' first passes are past too
        before += before.replace(fold=0).utcoffset() - before.utcoffset()
    walls = _walls(expression, before, forward=False)
    for _ in range(MAX_STEPS):
        if (instant := _instant(next(walls), zone)) <= at_or_before:
            return instant
    raise ValueError(f"no fire time of {expression!r} found in {MAX_STEPS} steps")


def _walls(expression: str, around: datetime, *, forward: bool) -> Iterator[datetime]:
    """Matching wall-clock times (naive) after, or before, the wall time of `around`."""
    seconds_first = len(expression.split()) == 6
    matches = croniter(expression, around.replace(tzinfo=None), second_at_beginning=seconds_first)
    step = matches.get_next if forward else matches.get_prev
    while True:
        yield step(datetime)


def _instant(wall: datetime, zone: zoneinfo.ZoneInfo) -> float:
    """The unix time at which `zone`'s clock shows `wall`: its first occurrence in an overlap,
    the end of the gap for a time in a gap."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant.timestamp()
    # In a gap: fold=0 read it with the offset before the jump, fold=1 with the one after;
    # the jump lies between those two readings. Find it to the second.
    low = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    high = int(instant.timestamp())
    offset_after = datetime.fromtimestamp(high, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return float(high)


def cron_trigger(expression: str, timezone: str, start: int, end: int) -> bytes:
    """The `trigger` of a cron job (see the module docstring)."""
    hashed = [keccak(text=expression), keccak(text=timezone), start, end]
    return signed_trigger("cron", ["bytes32", "bytes32", "uint64", "uint64"], hashed)


class CronKind(TriggerKind[CronSpec]):
    """A cron expression in a time zone."""

    name = "cron"
    spec_type = CronSpec

    def validate(self, spec: CronSpec, now: float) -> float:
        fields = spec.cron.split()
        if not (len(fields) in (5, 6) or (len(fields) == 1 and fields[0].startswith("@"))):
            raise TriggerSpecError("cron", "must have 5 fields, or 6 with seconds first")
        if any(_CHANCE.match(part) for field in fields for part in field.split(",")):
            # croniter draws R fields at random each time it parses (and H from a seed): the
            # gateway and every attester would each compute a schedule of their own.
            raise TriggerSpecError("cron", "random (R) and hashed (H) fields are not allowed")
        if not croniter.is_valid(spec.cron, second_at_beginning=len(fields) == 6):
            raise TriggerSpecError("cron", f"{spec.cron!r} is not a valid cron expression")
        zone = _zone(spec.timezone)
        start = check_window(spec.start, spec.end, now)
        horizon = datetime.fromtimestamp(start, UTC) + timedelta(days=366 * MAX_SEARCH_YEARS)
        try:
            matches = croniter(
                spec.cron, datetime.fromtimestamp(start, UTC), second_at_beginning=len(fields) == 6
            )
            if matches.get_next(datetime) > horizon:
                raise TriggerSpecError("cron", f"{spec.cron!r} matches no time in {MAX_SEARCH_YEARS} years")
            fire = CronSchedule(spec.cron, zone, spec.start, spec.end).next_fire(max(start, now) - 1)
        except TriggerSpecError:
            raise
        except (ValueError, KeyError, OverflowError) as error:  # croniter: no match within its limits
            raise TriggerSpecError("cron", f"{spec.cron!r} matches no time ({error})") from None
        if fire is None:
            raise TriggerSpecError("end", "comes before the first fire time: the job would never fire")
        return fire

    def trigger_hash(self, spec: CronSpec) -> bytes:
        return cron_trigger(spec.cron, spec.timezone, spec.start or 0, spec.end or 0)

    def schedule(self, spec: CronSpec, created_at: float) -> CronSchedule:
        # Without a start, from the job's creation: a new job does not fire for a time before it.
        start = spec.start if spec.start is not None else created_at
        return CronSchedule(spec.cron, _zone(spec.timezone), start, spec.end)

    def check_fire(self, spec: CronSpec, fire: TriggerFire) -> str | None:
        try:
            expected = CronSchedule(spec.cron, _zone(spec.timezone), spec.start, spec.end).next_fire(
                fire.fire_at - 1
            )
        except (TriggerSpecError, ValueError, KeyError, OverflowError) as error:
            return f"the cron schedule cannot be read ({error})"
        if expected != fire.fire_at:
            return f"{fire.fire_at:.3f} is not a fire time of {spec.cron!r} in {spec.timezone}"
        return None


@cache
def _zone_names() -> frozenset[str]:
    """The database's zone names, read once and only by a node that meets a cron job (reading
    them takes ~50 ms: not at every process's start)."""
    return frozenset(zoneinfo.available_timezones())


def _zone(name: str) -> zoneinfo.ZoneInfo:
    if name not in _zone_names():  # not a path: "America" is a folder of the database, not a zone
        raise TriggerSpecError("timezone", f"{name!r} is not an IANA time zone")
    return zoneinfo.ZoneInfo(name)


KIND = CronKind()
