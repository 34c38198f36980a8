"""What the API answers with: the public shape of jobs and tasks, apart from how they are stored.

Bytes are 0x-hex, as requests take them; amounts of wei and ids that exceed 2**53 are decimal
strings, safe for every JSON client; times are unix seconds. These structs are also the
schemas of the OpenAPI document (gateway.api.openapi), so what the document says is what
the code sends.
"""

from __future__ import annotations

import functools

import msgspec

from gateway.jobs import JobSpec
from gateway.records import (
    AttemptRecord,
    ConditionState,
    FireTimes,
    JobRecord,
    JobStatus,
    TaskRecord,
    TaskStatus,
)
from protocol import JobTerms


def hex_bytes(data: bytes) -> str:
    """`data` as 0x-hex."""
    return "0x" + data.hex()


@functools.lru_cache(maxsize=4096)
def terms_hash(terms: JobTerms) -> str:
    """The EIP-712 hash of `terms`, as 0x-hex. Memoized by the terms' value (a record is decoded
    anew on each read, so memoizing on the object would not last): a job's terms never change,
    and hashing them in Python cost ~0.15 ms, 15 % of every GET of a job."""
    return hex_bytes(terms.hash())


class AttemptView(msgspec.Struct, rename="camel", kw_only=True):
    """One try at a task by one keeper: its performer, the execution's transaction and fee
    once found on chain, and how it ended (approved, rejected, timed out, not acknowledged;
    null while under way). `reopened`: rejected with proof, so a later attempt may execute.
    `signers`: the operator ids whose votes decided it (GET /api/keepers names them)."""

    number: int
    performer: str
    assigned_at: float
    deadline: int
    tx_hash: str | None
    fee: str | None
    outcome: str | None
    reopened: bool
    signers: list[int]

    @classmethod
    def of(cls, attempt: AttemptRecord) -> AttemptView:
        """The view of `attempt`."""
        return cls(
            number=attempt.number,
            performer=attempt.performer,
            assigned_at=attempt.assigned_at,
            deadline=attempt.deadline,
            tx_hash=attempt.tx_hash,
            fee=attempt.fee,
            outcome=attempt.outcome,
            reopened=attempt.reopened,
            signers=attempt.signers,
        )


class TaskView(msgspec.Struct, rename="camel", kw_only=True):
    """One firing of a job's trigger and what became of it.

    `fee` is the wei the owner paid for it (the approved execution's escrow; null until one
    executed). `submissionTx` is the AttestationCenter's decision. `triggerDetail` is the
    fire's evidence (an event's log, a condition's reading), ABI-encoded as its kind says.
    """

    id: int
    job_id: int
    status: TaskStatus
    fire_at: float
    created_at: float
    updated_at: float
    attempts: list[AttemptView]
    fee: str | None
    submission_tx: str | None
    reason: str | None
    trace_id: str
    trigger_detail: str

    @classmethod
    def of(cls, task: TaskRecord) -> TaskView:
        """The view of `task`."""
        executed = next((a for a in task.attempts if a.fee is not None and a.outcome == "approved"), None)
        return cls(
            id=task.id,
            job_id=task.job_id,
            status=task.status,
            fire_at=task.fire_at,
            created_at=task.created_at,
            updated_at=task.updated_at,
            attempts=[AttemptView.of(a) for a in task.attempts],
            fee=None if executed is None else executed.fee,
            submission_tx=task.submission_tx,
            reason=task.reason,
            trace_id=task.trace_id,
            trigger_detail=hex_bytes(task.trigger_detail),
        )


class ConditionView(msgspec.Struct, rename="camel", kw_only=True):
    """A condition job's state: whether its condition held at the last reading (`block`), when
    it last fired, and why its values cannot be read, if they cannot (since `errorSince`)."""

    holds: bool
    block: int | None
    last_fire: float | None
    error: str | None
    error_since: float | None

    @classmethod
    def of(cls, state: ConditionState) -> ConditionView:
        """The view of `state`."""
        return cls(
            holds=state.holds,
            block=state.block,
            last_fire=state.last_fire,
            error=state.error,
            error_since=state.error_since,
        )


class JobView(msgspec.Struct, rename="camel", kw_only=True):
    """A job: the spec its owner signed (canonical: checksummed addresses, decimal amounts), its
    id here and on chain (`owner << 96 | nonce`, decimal), the exact calldata of its tasks (the
    selector alone when a script computes the arguments), its status, and when it last fired and
    fires next (null: not yet, or never again)."""

    id: int
    chain_job_id: str
    owner: str
    status: JobStatus
    spec: JobSpec
    calldata: str
    terms_hash: str
    created_at: float
    last_fire: float | None
    next_fire: float | None
    condition: ConditionView | None = None

    @classmethod
    def of(cls, job: JobRecord, fires: FireTimes | None, condition: ConditionState | None = None) -> JobView:
        """The view of `job`, with its fire times and (a condition job) its condition's state."""
        return cls(
            id=job.id,
            chain_job_id=str(job.chain_job_id),
            owner=job.owner,
            status=job.status,
            spec=job.spec,
            calldata=hex_bytes(job.calldata),
            terms_hash=terms_hash(job.terms),
            created_at=job.created_at,
            last_fire=fires.last if fires else None,
            next_fire=fires.next if fires else None,
            condition=None if condition is None else ConditionView.of(condition),
        )


class ErrorView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error: `error` says what is wrong; `field` names the request's offending value (a
    JSON path such as `$.job.gasLimit`, a query parameter or a header); `traceId` finds the
    request in the gateway's log."""

    error: str
    field: str | None = None
    trace_id: str | None = msgspec.field(default=None, name="traceId")


class JobAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """One job."""

    job: JobView


class JobsPage(msgspec.Struct, rename="camel", kw_only=True):
    """A page of jobs, by id; `cursor` fetches the next (null: the last page)."""

    jobs: list[JobView]
    cursor: str | None


class TaskAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """One task."""

    task: TaskView


class TasksPage(msgspec.Struct, rename="camel", kw_only=True):
    """A page of tasks, by id; `cursor` fetches the next (null: the last page)."""

    tasks: list[TaskView]
    cursor: str | None
