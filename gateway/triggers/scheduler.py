"""The time-trigger service: fires each active time-triggered job when due (its kind's
schedule) and hands the new task on."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import trio

from gateway import GatewayStorage, JobRecord, TaskLedger, trigger_kind
from gateway.triggers.time import TimeScheduler

log = logging.getLogger("triggerx.gateway")


class JobScheduler:
    """Fires scheduled jobs: each fire is a task written by the ledger (with the job's last
    fire, so a restart resumes without firing twice), then passed to `on_task`, `lead`
    seconds ahead of its fire time (the performer holds it until then: docs/protocol.md,
    "Lead time")."""

    def __init__(
        self, storage: GatewayStorage, ledger: TaskLedger, on_task: Callable[[int], None], lead: float = 0.0
    ) -> None:
        self.storage, self.ledger, self.on_task = storage, ledger, on_task
        self.lead = lead  # seconds ahead of a fire time its task is created and dispatched
        self._times = TimeScheduler()
        self._wake = trio.Event()

    def schedule(self, job: JobRecord) -> None:
        """Add `job` (at start, and for each new job) if its trigger kind is time-based;
        inactive jobs are ignored."""
        if job.status != "active":
            return
        kind = trigger_kind(job.spec)
        try:
            spec = kind.decode(job.spec.schedule)
            schedule = kind.schedule(spec, job.created_at)
            if schedule is not None:
                self._times.add(job.id, schedule, job.last_fire, time.time(), kind.catch_up(spec))
        except (ValueError, KeyError, OverflowError) as error:  # one job's schedule, never the service
            log.error("job %d not scheduled: its schedule cannot be computed: %s", job.id, error)
            return
        self._wake.set()

    def unschedule(self, job: JobRecord) -> None:
        """Stop firing `job` (cancelled)."""
        self._times.remove(job.id)
        self._wake.set()

    async def run(self) -> None:
        """Fire jobs when due, until cancelled."""
        while True:
            for fire in self._times.due(time.time() + self.lead):
                job = self.storage.jobs.get(fire.job_id)
                if job is None or job.status != "active":
                    continue
                task = self.ledger.create(job, fire.at, trace_id=uuid.uuid4().hex)
                log.info("job %d fired for %.3f: task %d (trace %s)", job.id, fire.at, task.id, task.trace_id)
                self.on_task(task.id)
            following = self._times.next_fire_time()
            wait = 3600 if following is None else max(following - self.lead - time.time(), 0)
            with trio.move_on_after(wait):
                await self._wake.wait()
            self._wake = trio.Event()
