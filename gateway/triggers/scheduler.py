"""The time-trigger service: fires each active time-triggered job when due (its kind's
schedule) and hands the new task on."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import trio
import trio.lowlevel
from msgspec.structs import replace

from gateway import FireTimes, GatewayStorage, JobRecord, TaskLedger, trigger_kind
from gateway.triggers.time import Fire, TimeScheduler

log = logging.getLogger("triggerx.gateway")

FIRES_PER_STEP = 64
"""Fires (or next-fire records) written between two checkpoints: a burst of 10,000 never
holds the event loop for more than a few milliseconds at a time."""
MAX_AHEAD_S = 8
"""At most this many seconds before its fire time a task is handed on, lead and write-ahead
together: 2 s inside the 10 s a performer holds a task at most (node.keeper.executor.MAX_HOLD_S),
for the clocks' skew."""
NOTICEABLE_S = 0.02
"""Work ahead shorter than this is not started early: lone fires go at their time (less the lead)."""


class JobScheduler:
    """Fires scheduled jobs: each fire is a task written by the ledger (with the job's last
    fire, so a restart resumes without firing twice), then passed to `on_task`, `lead`
    seconds ahead of its fire time (the performer holds it until then: docs/protocol.md,
    "Lead time"). After each round of fires it records the next fire time of each job
    that fired (the next-fire index), where a restart picks them up."""

    def __init__(
        self, storage: GatewayStorage, ledger: TaskLedger, on_task: Callable[[int], None], lead: float = 0.0
    ) -> None:
        self.storage, self.ledger, self.on_task = storage, ledger, on_task
        self.lead = lead  # seconds ahead of a fire time its task is created and dispatched
        self._times = TimeScheduler()
        self._seconds_per_fire = 100e-6  # measured on each burst: the time to write one task
        self._wake = trio.Event()

    def schedule(self, job: JobRecord) -> None:
        """Add `job` (at start, and for each new job) if its trigger kind is time-based;
        inactive jobs are ignored."""
        fires = self.storage.fire_times.get(job.id) or FireTimes(job_id=job.id)
        if job.status != "active":
            if fires.next is not None:  # cancelled while its next fire was still recorded
                self._times.remove(job.id)
            return
        kind = trigger_kind(job.spec)
        try:
            spec = kind.decode(job.spec.schedule)
            schedule = kind.schedule(spec, job.created_at)
            if schedule is not None:
                self._times.add(
                    job.id,
                    schedule,
                    fires.last,
                    time.time(),
                    kind.catch_up(spec),
                    planned=fires.next,
                )
        except (ValueError, KeyError, OverflowError) as error:  # one job's schedule, never the service
            log.error("job %d not scheduled: its schedule cannot be computed: %s", job.id, error)
            self._times.remove(job.id)
            return
        self._wake.set()

    def unschedule(self, job: JobRecord) -> None:
        """Stop firing `job` (cancelled)."""
        self._times.remove(job.id)
        self._wake.set()

    async def run(self) -> None:
        """Fire jobs when due, until cancelled."""
        while True:
            horizon, _ = self._plan(time.time())
            fires = self._times.due(horizon)
            began = time.perf_counter()
            for first in range(0, len(fires), FIRES_PER_STEP):
                for fire in fires[first : first + FIRES_PER_STEP]:
                    self._fire(fire)
                await trio.lowlevel.checkpoint()
            while self._times.reschedule(FIRES_PER_STEP):
                await trio.lowlevel.checkpoint()
            await self._record_next_fires()
            if len(fires) >= FIRES_PER_STEP:  # smoothed: one slow burst does not set the next
                measured = (time.perf_counter() - began) / len(fires)
                self._seconds_per_fire = (self._seconds_per_fire + measured) / 2
            _, wake = self._plan(time.time())
            with trio.move_on_after(max(wake - time.time(), 0)):
                await self._wake.wait()
            self._wake = trio.Event()

    def _plan(self, now: float) -> tuple[float, float]:
        """Up to which fire time to fire now, and when to look again.

        A fire goes `lead` seconds before its time; a second of many fires goes early enough
        for all of them, and all those before it, to be written by its start (their number
        times the measured cost of one), so that even the last of 10,000 jobs on "* * * * *"
        is handed on in time. Never more than MAX_AHEAD_S early."""
        horizon = now + self.lead
        following = self._times.next_fire_time()
        wake = now + 3600 if following is None else following - self.lead
        work = 0.0
        for second in range(math.floor(now), math.floor(now) + MAX_AHEAD_S + 1):
            work += self._times.fires_in_second(second) * self._seconds_per_fire
            if work < NOTICEABLE_S:
                continue
            start = max(second - self.lead - work, second - MAX_AHEAD_S)
            if start <= now:  # everything in this second, and before it, is due now
                horizon = max(horizon, math.nextafter(second + 1, second))
            else:
                wake = min(wake, start)
        return min(horizon, now + max(self.lead, MAX_AHEAD_S)), wake

    def _fire(self, fire: Fire) -> None:
        job = self.storage.jobs.get(fire.job_id)
        if job is None or job.status != "active":
            return
        task = self.ledger.create(job, fire.at)
        log.info("job %d fired for %.3f: task %d (trace %s)", job.id, fire.at, task.id, task.trace_id)
        self.on_task(task.id)

    async def _record_next_fires(self) -> None:
        """Write the next fire times that changed (the next-fire index), a step at a time."""
        changes = list(self._times.take_changes().items())
        for first in range(0, len(changes), FIRES_PER_STEP):
            with self.storage.store.batch() as batch:
                for job_id, at in changes[first : first + FIRES_PER_STEP]:
                    fires = self.storage.fire_times.get(job_id)
                    if fires is None and at is None:
                        continue  # never scheduled here (a job no clock fires): nothing to record
                    fires = fires or FireTimes(job_id=job_id)
                    self.storage.fire_times.put(replace(fires, next=at), batch=batch)
                    job = self.storage.jobs.get(job_id) if at is None else None
                    if job is not None and job.status == "active":  # its schedule has no fire left
                        self.storage.jobs.put(replace(job, status="ended"), batch=batch)
                        log.info("job %d ended: its schedule has no fire left", job_id)
            await trio.lowlevel.checkpoint()
