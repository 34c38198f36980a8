"""What the gateway stores: jobs, their tasks and the tries at each task, and id sequences.

Records are msgspec structs (the store's one encoding) and are also what the API returns,
in camelCase JSON.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from gateway.jobs import JobSpec
from protocol import JobTerms
from protocol.triggers import TriggerFire

# active: fires; paused: the owner stopped its fires for now (PUT /api/jobs/update); ended: it
# fires no more (its consent expired, or its schedule has no fire left); deleted: cancelled.
JobStatus = Literal["active", "paused", "ended", "deleted"]
# created: fired, not yet handed to a keeper; dispatched: a keeper acknowledged an attempt;
# executed: an attempt executed on chain, its decision awaited; completed: approved on chain;
# failed: no attempt can succeed (the reason says why). See gateway.ledger.
TaskStatus = Literal["created", "dispatched", "executed", "completed", "failed"]


class JobRecord(msgspec.Struct, rename="camel", kw_only=True):
    """A job this gateway schedules: `id` is the gateway's, `chain_job_id` the job's id on
    chain (`owner << 96 | nonce`); `terms` and the owner's `consent_signature` let the first
    task register it there."""

    id: int
    owner: str
    chain_job_id: int
    spec: JobSpec
    calldata: bytes
    terms: JobTerms
    consent_signature: bytes
    created_at: float
    status: JobStatus = "active"
    trace_id: str = ""  # of the request that created it; each task's trace id starts with it


class FireTimes(msgspec.Struct, rename="camel", kw_only=True):
    """A scheduled job's fire times: the `last` it fired for, written with that fire's task in
    one batch (gateway.ledger), and the `next` it fires for, written after each round of
    fires (gateway.triggers): the next-fire index a restart starts from. None: not yet, or
    no more."""

    job_id: int
    last: float | None = None
    next: float | None = None


class FiredLog(msgspec.Struct, rename="camel", kw_only=True):
    """A log that fired a job (gateway.triggers.events): its key, `chain/block/hash/index/job`
    (the block zero-padded to 12 digits), makes a second task for it impossible; written with
    the task, forgotten once no restart or reorg can read its block again."""

    key: str
    task_id: int


class ConditionState(msgspec.Struct, rename="camel", kw_only=True):
    """A condition job's state (gateway.triggers.conditions): whether its condition held at the
    last reading (`block`), when it last fired, and why its values could not be read, if they
    could not (shown by the API). `holds` is written with the task of a rising edge, in one
    batch: a restart does not fire that edge again."""

    job_id: int
    holds: bool = False
    block: int | None = None
    last_fire: float | None = None
    error: str | None = None
    error_since: float | None = None


class StoredScript(msgspec.Struct, rename="camel", kw_only=True):
    """A script uploaded to this gateway (`POST /api/scripts`), served by CID (`GET /ipfs/<cid>`).
    Pinned once a job names it: kept for good. Unpinned uploads are few and short-lived
    (GatewayStorage.keep_script): anyone may upload, and nobody pays for it. `client` is who
    uploaded it (gateway.clients; "" before uploaders were kept), whose quota it counts in."""

    cid: str
    data: bytes
    uploaded_at: float
    pinned: bool = False
    client: str = ""


class AttemptRecord(msgspec.Struct, rename="camel", kw_only=True):
    """One try at a task by one keeper."""

    number: int
    performer: str
    assigned_at: float
    deadline: int
    tx_hash: str | None = None  # the execution's transaction, once found on chain
    fee: str | None = None  # wei (decimal) the hub escrowed for the execution
    outcome: str | None = None
    reopened: bool = False  # rejected as proven wrong: the task may execute in a later attempt
    signers: list[int] = msgspec.field(default_factory=list)  # operator ids whose votes decided it


class TaskRecord(msgspec.Struct, rename="camel", kw_only=True):
    """One firing of a job's trigger, and what became of it."""

    id: int
    job_id: int
    fire_at: float
    created_at: float
    updated_at: float
    status: TaskStatus = "created"
    attempts: list[AttemptRecord] = msgspec.field(default_factory=list)
    submission_tx: str | None = None
    decision_block: int | None = None  # the block of `submission_tx` (an `after` job's fire names it)
    trace_id: str = ""
    reason: str | None = None  # why a task failed
    trigger_detail: bytes = b""  # what else shows the fire was real (an event's log: its kind says)

    def fire_of(self, job: JobRecord) -> TriggerFire:
        """This task's fire of `job`'s trigger, as assignments carry it."""
        return TriggerFire(job.spec.schedule_type, job.spec.schedule, self.fire_at, self.trigger_detail)


class Sequence(msgspec.Struct):
    """The last id handed out for one kind of record."""

    name: str
    last: int
