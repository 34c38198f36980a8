"""When time-triggered jobs fire (each kind's Schedule), kept in a heap so that only what fired
is recomputed.

The scheduler holds no state of its own worth keeping: on restart the gateway rebuilds it
from the jobs in the store and the last fire time recorded with each job's latest task.
A job whose fire times were missed (the gateway was down) fires once for the latest
missed time, then keeps its rhythm: automation that catches up in a burst does harm
(ten "rebalance" calls in a row), while one late call does what the owner wanted.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from protocol.triggers import Schedule


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
        self._schedules: dict[int, tuple[Schedule, float]] = {}

    def __len__(self) -> int:
        return len(self._schedules)

    def add(self, job_id: int, schedule: Schedule, last_fire: float | None, now: float) -> None:
        """Schedule `job_id`; `last_fire` is the time it last fired (None if never), from the store."""
        if last_fire is None:  # never fired: the latest time already due, else the first to come
            owed = schedule.latest_fire(now)
            if owed is None:
                owed = schedule.next_fire(now)
        else:
            owed = schedule.next_fire(last_fire)
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
