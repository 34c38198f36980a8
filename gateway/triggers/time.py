"""When time-triggered jobs fire (each kind's Schedule), kept in a heap so that only what fired
is recomputed.

The scheduler holds no state of its own worth keeping: on restart the gateway rebuilds it
from the jobs in the store and the last fire time recorded with each job's latest task.
A job whose fire times were missed (the gateway was down) fires once for the latest
missed time, then keeps its rhythm: automation that catches up in a burst does harm
(ten "rebalance" calls in a row), while one late call does what the owner wanted. A job
whose catch-up policy is `skip` fires none of them.
"""

from __future__ import annotations

import heapq
import logging
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
    """The next fire time of every scheduled job, in a heap.

    `due(now)` pops what is due, and each job's following fire time is scheduled at the next
    call; removing or replacing a job is lazy (its heap entries are skipped when they
    surface), so every operation is O(log n) whatever the number of jobs.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._schedules: dict[int, tuple[Schedule, float]] = {}
        self._fired: list[tuple[int, float, float]] = []  # (job, fire time, when): to reschedule

    def __len__(self) -> int:
        return len(self._schedules)

    def add(
        self, job_id: int, schedule: Schedule, last_fire: float | None, now: float, catch_up: CatchUp = "once"
    ) -> None:
        """Schedule `job_id`; `last_fire` is the time it last fired (None if never), from the
        store. Fire times missed meanwhile (older than MISSED_AFTER) are caught up as
        `catch_up` says: `once` fires the latest of them, `skip` none."""
        if last_fire is None:  # never fired: the latest time already due, else the first to come
            owed = schedule.latest_fire(now)
            if owed is None:
                owed = schedule.next_fire(now)
        else:
            owed = schedule.next_fire(last_fire)
            if owed is not None and owed <= now:
                owed = schedule.latest_fire(now)  # missed while we were down: once, for the latest
        if catch_up == "skip" and owed is not None and owed < now - MISSED_AFTER:
            owed = schedule.next_fire(now)
        self._schedules.pop(job_id, None)
        if owed is None:
            return
        self._schedules[job_id] = (schedule, owed)
        heapq.heappush(self._heap, (owed, job_id))

    def remove(self, job_id: int) -> None:
        """Stop scheduling `job_id` (a cancelled job)."""
        self._schedules.pop(job_id, None)

    def next_fire_time(self) -> float | None:
        """When the next job fires, or None when nothing is scheduled."""
        self._reschedule()
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[Fire]:
        """Every fire due at `now`, in time order.

        The fired jobs' next fire times are computed at the next call (of this or of
        `next_fire_time`), after the caller has handed these fires on: in a burst (10,000 jobs
        on "* * * * *") the last fire is handed on after the popping of all, not after the
        rescheduling of all.
        """
        self._reschedule()
        fired: list[Fire] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return fired
            at, job_id = heapq.heappop(self._heap)
            if self._fired and self._fired[-1][:2] == (job_id, at):
                continue  # a job added twice for one time: equal entries pop one after the other
            fired.append(Fire(job_id, at))
            self._fired.append((job_id, at, now))

    def _reschedule(self) -> None:
        """Schedule the next fire of each job fired by the last `due` (unless it was removed or
        rescheduled since)."""
        for job_id, at, now in self._fired:
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
                self._schedules[job_id] = (schedule, following)
                heapq.heappush(self._heap, (following, job_id))
        self._fired.clear()

    def _drop_stale(self) -> None:
        while self._heap:
            at, job_id = self._heap[0]
            current = self._schedules.get(job_id)
            if current is not None and current[1] == at:
                return
            heapq.heappop(self._heap)
