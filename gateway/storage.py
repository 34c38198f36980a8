"""The gateway's tables, and the multi-record writes that must happen together."""

from __future__ import annotations

import logging
import time

import msgspec
from msgspec.structs import replace

from gateway.jobs import ValidJob
from gateway.records import JobRecord, Sequence, TaskRecord
from node.monitor import TaskDecision
from node.store import CHECKPOINTS, JOBS, MAX_INT_KEY, SCHEDULES, TASKS, Batch, Index, Page, Store, Table

log = logging.getLogger(__name__)
DECISIONS_CHECKPOINT = "attestations"


class Checkpoint(msgspec.Struct):
    """The next block a chain follower reads."""

    name: str
    next_block: int


class GatewayStorage:
    """Jobs, tasks and id sequences in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.jobs = Table(
            store,
            JobRecord,
            JOBS,
            key=lambda j: j.id,
            indexes=[
                Index("owner", lambda j: j.owner),
                Index("owner_status", lambda j: f"{j.owner}/{j.status}"),
                Index("chain", lambda j: j.chain_job_id.to_bytes(32, "big")),
            ],
        )
        self.tasks = Table(
            store,
            TaskRecord,
            TASKS,
            key=lambda t: t.id,
            indexes=[Index("job", lambda t: t.job_id), Index("status", lambda t: t.status)],
        )
        self.sequences = Table(store, Sequence, SCHEDULES.child("seq"), key=lambda s: s.name)
        self.checkpoints = Table(store, Checkpoint, CHECKPOINTS, key=lambda c: c.name)

    def job_by_chain_id(self, chain_job_id: int) -> JobRecord | None:
        """The job whose id on chain is `chain_job_id`, if this gateway has it."""
        page = self.jobs.by_index("chain", chain_job_id.to_bytes(32, "big"), limit=1)
        return page.items[0] if page.items else None

    def active_jobs_of(self, owner: str, limit: int) -> int:
        """How many of `owner`'s jobs are active (counting at most `limit`)."""
        return len(self.jobs.by_index("owner_status", f"{owner}/active", limit=limit).items)

    def create_job(self, job: ValidJob, now: float) -> JobRecord:
        """Store a new job under the next job id (the caller checked its chain id is new)."""
        with self.store.batch() as batch:
            record = JobRecord(
                id=self._next_id("job", batch),
                owner=job.owner,
                chain_job_id=job.chain_job_id,
                spec=job.spec,
                calldata=job.calldata,
                terms=job.terms,
                consent_signature=job.consent_signature,
                created_at=now,
            )
            self.jobs.put(record, batch=batch)
        return record

    def fire(self, job: JobRecord, fire_at: float, now: float, trace_id: str) -> TaskRecord:
        """Record that `job` fired at `fire_at`: a new task and the job's last fire, together.

        Written in one batch, so after a crash either both exist or neither: a restart can
        neither lose a fire nor fire twice for the same time.
        """
        with self.store.batch() as batch:
            task = TaskRecord(
                id=self._next_id("task", batch),
                job_id=job.id,
                fire_at=fire_at,
                created_at=now,
                updated_at=now,
                trace_id=trace_id,
            )
            self.tasks.put(task, batch=batch)
            self.jobs.put(replace(job, last_fire=fire_at), batch=batch)
        return task

    def record_decision(self, decision: TaskDecision, next_block: int) -> TaskRecord | None:
        """The AttestationCenter's `decision` on a task and the decisions checkpoint, in one batch.

        Anyone with a quorum can decide tasks this gateway never issued (any id, up to 2**256):
        such a decision is skipped, but the checkpoint still moves past it, so it can neither
        crash the follower nor be read again forever. Returns the updated task, if ours.
        """
        known = 0 < decision.task_id <= MAX_INT_KEY
        task = self.tasks.get(decision.task_id) if known else None
        with self.store.batch() as batch:
            if task is not None:
                outcome = "approved" if decision.approved else "rejected"
                attempts = [
                    replace(a, outcome=outcome) if a.number == decision.attempt else a for a in task.attempts
                ]
                changes: dict[str, object] = {"attempts": attempts, "updated_at": time.time()}
                if decision.approved:
                    changes |= {"status": "completed", "submission_tx": decision.tx_hash}
                task = replace(task, **changes)
                self.tasks.put(task, batch=batch)
            self.checkpoints.put(Checkpoint(DECISIONS_CHECKPOINT, next_block), batch=batch)
        if task is None:
            log.info("decision on task %d, which this gateway did not issue: skipped", decision.task_id)
        return task

    def save_task(self, task: TaskRecord) -> None:
        """Write a changed task (its indexes follow)."""
        self.tasks.put(task)

    def tasks_of_job(self, job_id: int, *, limit: int, after: str | None) -> Page[TaskRecord]:
        """A page of `job_id`'s tasks, oldest first."""
        return self.tasks.by_index("job", job_id, limit=limit, after=after)

    def _next_id(self, name: str, batch: Batch) -> int:
        current = self.sequences.get(name)
        last = (current.last if current else 0) + 1
        self.sequences.put(Sequence(name, last), batch=batch)
        return last
