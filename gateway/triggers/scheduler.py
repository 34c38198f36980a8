"""The time-trigger service: fires each active time-triggered job when due (its kind's
schedule) and hands the new task on."""

from __future__ import annotations

import logging
import time
import uuid
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
MAX_AHEAD_S = 8.0
"""At most this long before its fire time a task is handed on, lead and write-ahead together:
2 s inside the 10 s a performer holds a task at most (node.keeper.executor.MAX_HOLD_S), for
the clocks' skew."""


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
        self._times = TimeScheduler(burst=FIRES_PER_STEP)
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
            fires = self._times.due(self._horizon(time.time()))
            began = time.perf_counter()
            for first in range(0, len(fires), FIRES_PER_STEP):
                for fire in fires[first : first + FIRES_PER_STEP]:
                    self._fire(fire)
                await trio.lowlevel.checkpoint()
            if len(fires) >= FIRES_PER_STEP:  # smoothed: one slow burst does not set the next
                measured = (time.perf_counter() - began) / len(fires)
                self._seconds_per_fire = (self._seconds_per_fire + measured) / 2
            while self._times.reschedule(FIRES_PER_STEP):
                await trio.lowlevel.checkpoint()
            await self._record_next_fires()
            starts = [at - self._write_ahead(at) for at in self._upcoming()]
            wait = max(min(starts) - time.time(), 0) if starts else 3600
            with trio.move_on_after(wait):
                await self._wake.wait()
            self._wake = trio.Event()

    def _upcoming(self) -> list[float]:
        """The next fire time and the next burst's (FIRES_PER_STEP jobs or more at one time)."""
        return [at for at in (self._times.next_fire_time(), self._times.next_burst()) if at is not None]

    def _write_ahead(self, at: float) -> float:
        """How long before `at` its fires start: the lead, plus the time its tasks take to
        write (10,000 jobs on "* * * * *" take ~1 s), so that the last is handed on in time."""
        burst = self._times.count_at(at) * self._seconds_per_fire
        return min(self.lead + burst, max(self.lead, MAX_AHEAD_S))

    def _horizon(self, now: float) -> float:
        """Fire times up to here fire now: those within the lead, and the next burst once its
        write-ahead has begun (with all that is due before it)."""
        horizon = now + self.lead
        for at in self._upcoming():
            if now >= at - self._write_ahead(at):
                horizon = max(horizon, at)
        return horizon

    def _fire(self, fire: Fire) -> None:
        job = self.storage.jobs.get(fire.job_id)
        if job is None or job.status != "active":
            return
        task = self.ledger.create(job, fire.at, trace_id=uuid.uuid4().hex)
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
            await trio.lowlevel.checkpoint()
