"""The task ledger: the only code that changes a task, one LevelDB batch per change, and the
stream of those changes (docs/architecture.md, "A task's life").

A task is `created` when its job fires, `dispatched` once a keeper acknowledges an attempt,
`executed` when the gateway finds an attempt's execution on chain without a decision yet,
`completed` when the AttestationCenter approves an attempt, or `failed` with a reason when
no attempt can succeed. Each attempt ends `approved`, `rejected`, `timed out` or
`not acknowledged`. `completed` is final; a `failed` task still completes if an approval of
one of its attempts arrives late, since the chain's decision is what moved the money.

Every change is written in one batch (with the job's last fire, or the decisions checkpoint,
when it goes with them) and then published to each subscriber. A subscriber that falls
behind by more than its buffer is dropped (its stream ends), never waited for: the ledger
does not stall on a slow reader.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import msgspec
import trio
from msgspec.structs import replace

from gateway.records import AttemptRecord, FireTimes, JobRecord, TaskRecord
from gateway.storage import DECISIONS_CHECKPOINT, Checkpoint, GatewayStorage
from node.store import MAX_INT_KEY, Batch

if TYPE_CHECKING:  # the monitor feeds the ledger, so it imports this module
    from gateway.monitor import TaskDecision

log = logging.getLogger(__name__)

AttemptOutcome = Literal["approved", "rejected", "timed out", "not acknowledged"]
TERMINAL = frozenset({"completed", "failed"})


class TaskEvent(msgspec.Struct, rename="camel", kw_only=True):
    """One change of one task, as subscribers see it."""

    kind: Literal["TASK_CREATED", "TASK_UPDATED", "TASK_STATUS_CHANGED"]
    task: TaskRecord
    previous_status: str | None = None


def task_trace_id(job: JobRecord, task_id: int) -> str:
    """A task's trace id: the trace id of the request that created its job (the API's
    X-Trace-ID), then the task's id, so that one search finds a job's request and all its
    tasks in every node's log; a job created before trace ids gets a random one."""
    return f"{job.trace_id or uuid.uuid4().hex}-{task_id}"


class TaskLedger:
    """Creates tasks and records every change of their status and attempts.

    Args:
        storage: the gateway's tables.
        clock: the time recorded on each change.
    """

    def __init__(self, storage: GatewayStorage, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.clock = clock
        self._subscribers: list[trio.MemorySendChannel[TaskEvent]] = []

    def subscribe(self, buffer: int = 256) -> trio.MemoryReceiveChannel[TaskEvent]:
        """A stream of every task change from now on; it ends if the reader falls `buffer` behind."""
        send, receive = trio.open_memory_channel[TaskEvent](buffer)
        self._subscribers.append(send)
        return receive

    def unfinished(self) -> list[TaskRecord]:
        """Every task not yet `completed` or `failed`, oldest first (what a restart resumes)."""
        found: list[TaskRecord] = []
        for status in ("created", "dispatched", "executed"):
            after = None
            while True:
                page = self.storage.tasks.by_index("status", status, limit=500, after=after)
                found.extend(page.items)
                if page.cursor is None:
                    break
                after = page.cursor
        return sorted(found, key=lambda t: t.id)

    def create(
        self,
        job: JobRecord,
        fire_at: float,
        *,
        detail: bytes = b"",
        with_it: Callable[[Batch, TaskRecord], None] | None = None,
    ) -> TaskRecord:
        """A new task for `job`'s fire at `fire_at` (and the fire's `detail`), written with the
        job's last fire time, and whatever `with_it(batch, task)` writes (a trigger's checkpoint), in one
        batch: after a crash either all exist or none, so a restart neither loses a fire nor
        fires twice."""
        now = self.clock()
        with self.storage.store.batch() as batch:
            task_id = self.storage.next_id("task", batch)
            task = TaskRecord(
                id=task_id,
                job_id=job.id,
                fire_at=fire_at,
                created_at=now,
                updated_at=now,
                trace_id=task_trace_id(job, task_id),
                trigger_detail=detail,
            )
            self.storage.tasks.put(task, batch=batch)
            fires = self.storage.fire_times.get(job.id) or FireTimes(job_id=job.id)
            self.storage.fire_times.put(replace(fires, last=fire_at), batch=batch)
            if with_it is not None:
                with_it(batch, task)
        self._publish(TaskEvent(kind="TASK_CREATED", task=task))
        return task

    def attempt_started(self, task_id: int, attempt: AttemptRecord) -> TaskRecord | None:
        """`attempt` is about to be sent: recorded first, so that after a crash the gateway
        knows whom it may have assigned (and never reuses its number for another keeper)."""
        return self._change(task_id, attempt=attempt)

    def attempt_assigned(self, task_id: int, attempt: AttemptRecord) -> TaskRecord | None:
        """A keeper acknowledged `attempt`: the task is `dispatched`."""
        return self._change(task_id, attempt=attempt, status="dispatched")

    def attempt_ended(
        self, task_id: int, attempt: AttemptRecord, outcome: AttemptOutcome
    ) -> TaskRecord | None:
        """`attempt` ended without a decision of ours to record (not acknowledged, timed out)."""
        return self._change(task_id, attempt=replace(attempt, outcome=outcome))

    def executed(self, task_id: int, attempt: int, tx_hash: str | None, fee: int) -> TaskRecord | None:
        """Attempt `attempt` executed on chain in `tx_hash` (None: not found yet), the hub
        holding `fee` in escrow: `executed`, waiting for the decision."""
        task = self.storage.tasks.get(task_id)
        if task is None:
            return None
        landed = next((a for a in task.attempts if a.number == attempt), None)
        if landed is None:
            return task
        known = replace(landed, tx_hash=tx_hash or landed.tx_hash, fee=str(fee))
        if known == landed and (task.status in TERMINAL or task.status == "executed"):
            return task
        log.info(
            "task %d: attempt %d executed on chain (%s); following its decision", task_id, attempt, tx_hash
        )
        return self._change(task_id, attempt=known, status="executed")

    def fail(self, task_id: int, reason: str) -> TaskRecord | None:
        """The task can no longer succeed: `failed`, with `reason`."""
        return self._change(task_id, status="failed", reason=reason)

    def record_decision(self, decision: TaskDecision, next_block: int) -> TaskRecord | None:
        """The AttestationCenter's `decision` and the decisions checkpoint, in one batch.

        Anyone with a quorum can decide tasks this gateway never issued (any id, up to
        2**256): such a decision is skipped, but the checkpoint still moves past it, so it can
        neither crash the follower nor be read again forever. Returns the task, if ours.
        """
        known = 0 < decision.task_id <= MAX_INT_KEY
        task = self.storage.tasks.get(decision.task_id) if known else None
        checkpoint = Checkpoint(DECISIONS_CHECKPOINT, next_block)
        if task is None:
            self.storage.checkpoints.put(checkpoint)
            log.info("decision on task %d, which this gateway did not issue: skipped", decision.task_id)
            return None
        outcome: AttemptOutcome = "approved" if decision.approved else "rejected"
        signers = [i for i in range(decision.signer_bitmap.bit_length()) if decision.signer_bitmap >> i & 1]
        attempts = [
            replace(a, outcome=outcome, reopened=decision.reopened, signers=signers)
            if a.number == decision.attempt
            else a
            for a in task.attempts
        ]
        changes: dict[str, object] = {"attempts": attempts}
        if decision.approved:
            changes |= {
                "status": "completed",
                "submission_tx": decision.tx_hash,
                "decision_block": decision.block_number,
                "reason": None,
            }
        return self._write(task, changes, checkpoint)

    def _change(
        self,
        task_id: int,
        *,
        status: str | None = None,
        attempt: AttemptRecord | None = None,
        reason: str | None = None,
    ) -> TaskRecord | None:
        task = self.storage.tasks.get(task_id)
        if task is None:
            return None
        changes: dict[str, object] = {}
        if attempt is not None:
            others = [a for a in task.attempts if a.number != attempt.number]
            changes["attempts"] = sorted([*others, attempt], key=lambda a: a.number)
        if status is not None and task.status not in TERMINAL:
            changes["status"] = status
            if reason is not None:
                changes["reason"] = reason
        return self._write(task, changes)

    def _write(
        self, task: TaskRecord, changes: dict[str, object], checkpoint: Checkpoint | None = None
    ) -> TaskRecord:
        updated = replace(task, **changes, updated_at=self.clock())
        with self.storage.store.batch() as batch:
            self.storage.tasks.put(updated, batch=batch)
            if checkpoint is not None:
                self.storage.checkpoints.put(checkpoint, batch=batch)
        moved = updated.status != task.status
        kind = "TASK_STATUS_CHANGED" if moved else "TASK_UPDATED"
        self._publish(TaskEvent(kind=kind, task=updated, previous_status=task.status if moved else None))
        return updated

    def _publish(self, event: TaskEvent) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber.send_nowait(event)
            except trio.WouldBlock:
                log.warning("a task event subscriber fell behind: dropped")
                subscriber.close()
                self._subscribers.remove(subscriber)
            except trio.BrokenResourceError:
                self._subscribers.remove(subscriber)
