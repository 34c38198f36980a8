"""When time-triggered jobs fire (each kind's Schedule), kept in a heap so that only what fired
is recomputed.

What a restart needs is in the store: each job's last fire time, written with its task in
one batch, and its next fire time (the next-fire index), which the scheduler hands out
after each round (`take_changes`) and which the gateway writes in one batch. A restart
starts each job at its recorded next fire, or after its last fire if it fired since.
A job whose fire times were missed (the gateway was down) fires once for the latest
missed time, then keeps its rhythm: automation that catches up in a burst does harm
(ten "rebalance" calls in a row), while one late call does what the owner wanted. A job
whose catch-up policy is `skip` fires none of them.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from typing import NamedTuple

from protocol.triggers import CatchUp, Schedule

log = logging.getLogger("triggerx.gateway")

MISSED_AFTER = 5.0
"""Seconds after which a fire time not yet fired counts as missed (the gateway was down)."""


class Fire(NamedTuple):
    """A job's trigger firing for the scheduled time `at` (a tuple: a burst makes thousands)."""

    job_id: int
    at: float


class TimeScheduler:
    """The next fire time of every scheduled job, grouped by time in a heap of distinct times.

    Jobs due at one instant share one heap entry (10,000 jobs on "* * * * *" are one pop, not
    10,000), so a burst costs a dict walk, and every other operation O(log n) whatever the
    number of jobs. `due(now)` pops what is due, and each job's following fire time is
    scheduled at the next call. How many fires each second holds is counted too
    (`fires_in_second`), for a caller that starts big bursts early.
    """

    def __init__(self) -> None:
        self._times: list[float] = []  # heap of the distinct fire times; an emptied one is skipped
        self._per_second: dict[int, int] = {}  # whole second -> fires scheduled in it
        self._jobs_at: dict[float, dict[int, None]] = {}  # fire time -> the jobs due then, in order
        # job -> (its schedule, its next fire time, its last fire time)
        self._schedules: dict[int, tuple[Schedule, float, float | None]] = {}
        self._fired: deque[tuple[int, float, float]] = deque()  # (job, fire time, when): to reschedule
        self._changed: dict[int, float | None] = {}  # next fire times not yet taken

    def __len__(self) -> int:
        return len(self._schedules)

    def add(
        self,
        job_id: int,
        schedule: Schedule,
        last_fire: float | None,
        now: float,
        catch_up: CatchUp = "once",
        planned: float | None = None,
    ) -> None:
        """Schedule `job_id`. From the store: `last_fire`, the time it last fired (None if
        never), and `planned`, its next fire time as last recorded (None if none), taken as is
        unless the job fired after it. Fire times missed meanwhile (older than MISSED_AFTER)
        are caught up as `catch_up` says: `once` fires the latest of them, `skip` none."""
        fired_here = self._last_fire(job_id)
        if fired_here is not None:  # a fire made here counts, even if the store has not caught up
            last_fire = fired_here if last_fire is None else max(last_fire, fired_here)
        if planned is not None and (last_fire is None or planned > last_fire):
            owed: float | None = planned
        elif last_fire is not None:
            owed = schedule.next_fire(last_fire)
        else:  # never fired: the latest time already due, else the first to come
            owed = schedule.latest_fire(now)
            if owed is None:
                owed = schedule.next_fire(now)
        if owed is not None and owed <= now:
            owed = schedule.latest_fire(now)  # missed while we were down: once, for the latest
        if catch_up == "skip" and owed is not None and owed < now - MISSED_AFTER:
            owed = schedule.next_fire(now)
        self._unschedule(job_id)
        if owed is not None:
            self._put(job_id, schedule, owed, last_fire)
        if owed != planned:
            self._changed[job_id] = owed

    def remove(self, job_id: int) -> None:
        """Stop scheduling `job_id` (a cancelled job)."""
        self._unschedule(job_id)
        self._changed[job_id] = None

    def take_changes(self) -> dict[int, float | None]:
        """Each job's next fire time that changed since the last call (None: it fires no more),
        for the store to record."""
        changed, self._changed = self._changed, {}
        return changed

    def fires_in_second(self, second: int) -> int:
        """How many fires are scheduled from `second` (unix time) to the next."""
        self.reschedule()
        return self._per_second.get(second, 0)

    def next_fire_time(self) -> float | None:
        """When the next job fires, or None when nothing is scheduled."""
        self.reschedule()
        while self._times and not self._jobs_at.get(self._times[0]):
            self._jobs_at.pop(heapq.heappop(self._times), None)
        return self._times[0] if self._times else None

    def due(self, now: float) -> list[Fire]:
        """Every fire due at `now`, in time order.

        The fired jobs' next fire times are computed at the next call (of this or of
        `next_fire_time`), after the caller has handed these fires on: in a burst (10,000 jobs
        on "* * * * *") the last fire is handed on after the popping of all, not after the
        rescheduling of all.
        """
        self.reschedule()
        fired: list[Fire] = []
        while self._times and self._times[0] <= now:
            at = heapq.heappop(self._times)
            jobs = self._jobs_at.pop(at, {})
            if jobs:
                self._count(at, -len(jobs))
            fired.extend(Fire(job_id, at) for job_id in jobs)
            self._fired.extend((job_id, at, now) for job_id in jobs)
        return fired

    def _last_fire(self, job_id: int) -> float | None:
        current = self._schedules.get(job_id)
        if current is None:
            return None
        _, at, last_fire = current
        return at if job_id not in self._jobs_at.get(at, ()) else last_fire  # absent: fired at `at`

    def _unschedule(self, job_id: int) -> None:
        current = self._schedules.pop(job_id, None)
        if current is not None and job_id in self._jobs_at.get(current[1], ()):  # else fired already
            del self._jobs_at[current[1]][job_id]
            self._count(current[1], -1)

    def _put(self, job_id: int, schedule: Schedule, at: float, last_fire: float | None) -> None:
        self._schedules[job_id] = (schedule, at, last_fire)
        jobs = self._jobs_at.get(at)
        if jobs is None:
            self._jobs_at[at] = jobs = {}
            heapq.heappush(self._times, at)
        jobs[job_id] = None
        self._count(at, 1)

    def _count(self, at: float, change: int) -> None:
        second = math.floor(at)
        left = self._per_second.get(second, 0) + change
        if left:
            self._per_second[second] = left
        else:
            del self._per_second[second]

    def reschedule(self, limit: int | None = None) -> bool:
        """Schedule the next fire of the jobs fired by the last `due` (unless removed or
        rescheduled since), at most `limit` of them; whether some are left. `due` and
        `next_fire_time` reschedule all that is left first: call this to do it in steps."""
        for _ in range(len(self._fired) if limit is None else min(limit, len(self._fired))):
            job_id, at, now = self._fired.popleft()
            current = self._schedules.get(job_id)
            if current is None or current[1] != at:
                continue
            schedule = current[0]
            try:
                following = schedule.next_fire(max(at, now))
            except (ValueError, KeyError, OverflowError) as error:  # one job's schedule, not all
                log.error("job %d unscheduled: its next fire time cannot be computed: %s", job_id, error)
                following = None
            if following is None:
                del self._schedules[job_id]
            else:
                self._put(job_id, schedule, following, at)
            self._changed[job_id] = following
        return bool(self._fired)
