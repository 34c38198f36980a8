"""When time-triggered jobs fire, kept in a heap so that only what fired is recomputed.

The scheduler holds no state of its own worth keeping: on restart the gateway rebuilds it
from the jobs in the store and the last fire time recorded with each job's latest task.
A job whose fire times were missed (the gateway was down) fires once for the latest
missed time, then keeps its rhythm: automation that catches up in a burst does harm
(ten "rebalance" calls in a row), while one late call does what the owner wanted.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Fire:
    """A job's trigger firing for the scheduled time `at`."""

    job_id: int
    at: float


class TimeScheduler:
    """The next fire time of every scheduled job, in a heap.

    `due(now)` pops what is due and schedules each job's following fire time; removing a
    job is lazy (its heap entries are skipped when they surface), so every operation is
    O(log n) whatever the number of jobs.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._schedules: dict[int, tuple[IntervalSchedule, float]] = {}

    def __len__(self) -> int:
        return len(self._schedules)

    def add(self, job_id: int, schedule: IntervalSchedule, last_fire: float | None, now: float) -> None:
        """Schedule `job_id`; `last_fire` is the time it last fired (None if never), from the store."""
        owed = schedule.start if last_fire is None else schedule.next_fire(last_fire)
        if owed is not None and owed <= now:
            owed = schedule.latest_fire(now)  # missed while we were down: fire once, for the latest
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
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[Fire]:
        """Every fire due at `now`, each job's next fire time scheduled in its place."""
        fired: list[Fire] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return fired
            at, job_id = heapq.heappop(self._heap)
            schedule, _ = self._schedules[job_id]
            fired.append(Fire(job_id, at))
            following = schedule.next_fire(max(at, now))
            if following is None:
                del self._schedules[job_id]
            else:
                self._schedules[job_id] = (schedule, following)
                heapq.heappush(self._heap, (following, job_id))

    def _drop_stale(self) -> None:
        while self._heap:
            at, job_id = self._heap[0]
            current = self._schedules.get(job_id)
            if current is not None and current[1] == at:
                return
            heapq.heappop(self._heap)
