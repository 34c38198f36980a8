"""The gateway records the chain's decisions with its checkpoint; decisions on tasks it never
issued (any id a quorum may choose, up to 2**256) are skipped, never fatal (security review)."""

from __future__ import annotations

import msgspec
import pytest

from consensus.jobs import JobTerms, job_id_of
from gateway.jobs import IntervalSchedule, JobSpec
from gateway.records import AttemptRecord, JobRecord
from gateway.storage import DECISIONS_CHECKPOINT, GatewayStorage
from node.monitor import TaskDecision
from node.store import Store

OWNER = "0x" + "22" * 20
SPEC = JobSpec(
    owner=OWNER,
    nonce="1",
    expiry=2**40,
    target=OWNER,
    function="increment()",
    schedule_type="interval",
    schedule=IntervalSchedule(every_seconds=5),
    max_fee_per_task="1000000000000000",
)


@pytest.fixture
def storage(tmp_path):
    with Store.open(tmp_path / "db") as store:
        yield GatewayStorage(store)


def decision(task_id: int, approved: bool = True) -> TaskDecision:
    return TaskDecision(
        task_id, job_id=1, attempt=1, approved=approved, performer_id=0, tx_hash="0xab", block_number=9
    )


def test_a_decision_completes_its_task_with_the_checkpoint(storage):
    job = JobRecord(
        id=1,
        owner=OWNER,
        chain_job_id=job_id_of(OWNER, 1),
        spec=SPEC,
        calldata=b"\xd0\x9d\xe0\x8a",
        terms=JobTerms.static_call(OWNER, b"\xd0\x9d\xe0\x8a", 100_000, 10**15, bytes(32)),
        consent_signature=b"",
        created_at=1.0,
    )
    task = storage.fire(job, fire_at=10.0, now=10.0, trace_id="t")
    storage.save_task(
        msgspec.structs.replace(
            task, attempts=[AttemptRecord(number=1, performer="0x1", assigned_at=10, deadline=70)]
        )
    )
    updated = storage.record_decision(decision(task.id), next_block=10)
    assert (updated.status, updated.submission_tx, updated.attempts[0].outcome) == (
        "completed",
        "0xab",
        "approved",
    )
    assert storage.checkpoints.get(DECISIONS_CHECKPOINT).next_block == 10


@pytest.mark.parametrize("task_id", [2**64, 2**256 - 1, 2**63, 0, 12345])
def test_review_a_decision_on_a_task_this_gateway_never_issued_is_skipped(storage, task_id):
    """A quorum decided task 2**64; the gateway died on it (the store keys ids as signed 64-bit),
    and after each restart read the same block and died again."""
    assert storage.record_decision(decision(task_id), next_block=16) is None
    assert storage.checkpoints.get(DECISIONS_CHECKPOINT).next_block == 16
