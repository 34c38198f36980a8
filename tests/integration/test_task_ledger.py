"""The task ledger: the one writer of tasks. Each change is one batch and one event; decisions
on tasks this gateway never issued are skipped, never fatal (security review)."""

from __future__ import annotations

import pytest
import trio

from gateway import AttemptRecord, GatewayStorage, TaskDecision, TaskLedger

# The storage's checkpoint name, an internal the test reads back.
from gateway.storage import DECISIONS_CHECKPOINT
from node.store import Store
from protocol import JobTerms, job_id_of

from ..gateway_helpers import counter_job

OWNER = "0x" + "22" * 20
CALLDATA = b"\xd0\x9d\xe0\x8a"
TERMS = JobTerms.static_call(OWNER, CALLDATA, 100_000, 10**15, bytes(32))
JOB = counter_job(OWNER, job_id_of(OWNER, 1), TERMS, CALLDATA, 1.0)
ATTEMPT = AttemptRecord(number=1, performer="0x1", assigned_at=10, deadline=70)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "db"


@pytest.fixture
def ledger(db_path):
    with Store.open(db_path) as store:
        storage = GatewayStorage(store)
        storage.jobs.put(JOB)
        yield TaskLedger(storage, clock=lambda: 10.0)


def decision(task_id: int, approved: bool = True, attempt: int = 1) -> TaskDecision:
    return TaskDecision(
        task_id, job_id=1, attempt=attempt, approved=approved, performer_id=0, tx_hash="0xab", block_number=9
    )


def test_a_fire_writes_the_task_and_the_jobs_last_fire_together(ledger):
    task = ledger.create(JOB, fire_at=10.0)
    assert (task.id, task.status, task.fire_at) == (1, "created", 10.0)
    assert ledger.storage.fire_times.get(1).last == 10.0
    assert ledger.create(ledger.storage.jobs.get(1), fire_at=15.0).id == 2


def test_a_decision_completes_its_task_with_the_checkpoint(ledger):
    task = ledger.create(JOB, fire_at=10.0)
    ledger.attempt_assigned(task.id, ATTEMPT)
    updated = ledger.record_decision(decision(task.id), next_block=10)
    assert (updated.status, updated.submission_tx, updated.attempts[0].outcome) == (
        "completed",
        "0xab",
        "approved",
    )
    assert ledger.storage.checkpoints.get(DECISIONS_CHECKPOINT).next_block == 10
    assert ledger.storage.tasks.get(task.id) == updated


def test_completed_is_final_and_a_late_approval_completes_a_failed_task(ledger):
    done = ledger.create(JOB, fire_at=10.0)
    ledger.record_decision(decision(done.id), next_block=10)
    assert ledger.fail(done.id, "too late").status == "completed"
    given_up = ledger.create(ledger.storage.jobs.get(1), fire_at=15.0)
    ledger.attempt_assigned(given_up.id, ATTEMPT)
    assert ledger.fail(given_up.id, "no approved execution in 1 attempt(s)").status == "failed"
    assert ledger.attempt_assigned(given_up.id, ATTEMPT).status == "failed"  # failed stays failed...
    late = ledger.record_decision(decision(given_up.id), next_block=11)
    assert (late.status, late.reason) == ("completed", None)  # ...but the chain's approval wins


def test_unfinished_tasks_are_found_after_a_restart(db_path):
    with Store.open(db_path) as store:
        ledger = TaskLedger(GatewayStorage(store))
        ledger.storage.jobs.put(JOB)
        ids = [ledger.create(JOB, fire_at=float(n)).id for n in range(4)]
        ledger.attempt_assigned(ids[1], ATTEMPT)
        ledger.fail(ids[2], "no keeper")
        ledger.record_decision(decision(ids[3]), next_block=5)
    with Store.open(db_path) as store:
        unfinished = TaskLedger(GatewayStorage(store)).unfinished()
    assert [(t.id, t.status) for t in unfinished] == [(ids[0], "created"), (ids[1], "dispatched")]


async def test_every_change_is_published_and_a_slow_reader_is_dropped(ledger):
    events = ledger.subscribe(buffer=8)
    slow = ledger.subscribe(buffer=1)
    task = ledger.create(JOB, fire_at=10.0)
    ledger.attempt_assigned(task.id, ATTEMPT)
    ledger.attempt_ended(task.id, ATTEMPT, "timed out")
    ledger.fail(task.id, "no approved execution in 1 attempt(s)")
    seen = [events.receive_nowait() for _ in range(4)]
    assert [(e.kind, e.task.status, e.previous_status) for e in seen] == [
        ("TASK_CREATED", "created", None),
        ("TASK_STATUS_CHANGED", "dispatched", "created"),
        ("TASK_UPDATED", "dispatched", None),
        ("TASK_STATUS_CHANGED", "failed", "dispatched"),
    ]
    assert seen[2].task.attempts[0].outcome == "timed out"
    assert slow.receive_nowait().kind == "TASK_CREATED"
    with pytest.raises(trio.EndOfChannel):  # it fell behind: its stream ended, nothing waited
        slow.receive_nowait()


@pytest.mark.parametrize("task_id", [2**64, 2**256 - 1, 2**63, 0, 12345])
def test_review_a_decision_on_a_task_this_gateway_never_issued_is_skipped(ledger, task_id):
    """A quorum decided task 2**64; the gateway died on it (the store keys ids as signed 64-bit),
    and after each restart read the same block and died again."""
    assert ledger.record_decision(decision(task_id), next_block=16) is None
    assert ledger.storage.checkpoints.get(DECISIONS_CHECKPOINT).next_block == 16
