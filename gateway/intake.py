"""Taking jobs in and out: creation (checks against the chain) and the owner's cancellation.

A job is accepted only if it can run: its signed consent checks out (gateway.jobs), this
gateway does not have it yet, the chain has not seen it cancelled or registered with other
terms, its fee cap covers one execution at today's base fee (keepers are not asked to work at
a loss), the owner's balance pays for at least one task at that cap, and the owner stays
under the cap on active jobs. An `after` job must follow a job this gateway runs (it fires on
this gateway's tasks), or an earlier job of its linked chain; a chain's jobs are all checked
before any is stored, and then stored in one batch.

A cancellation is the owner's EIP-712 `CancelJob` signature. Once the job has fired, the
gateway relays it to the hub, so the chain refuses the job's tasks at once, an assignment in
flight included. A job that never fired has no task anywhere: it is cancelled here only, so
that creating and cancelling jobs costs the gateway no gas (the owner may still void the
consent on chain with `cancelJob`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import msgspec
import trio
from eth_utils import to_checksum_address

from gateway.jobs import JobSpecError, ValidJob, in_entry, parse_jobs_request
from gateway.records import JobRecord
from gateway.script_check import ScriptCheck
from gateway.storage import GatewayStorage
from node.chain import ChainError, Contract, RevertError, TransactionSender
from protocol import CANCELLED_TERMS, UNREGISTERED, cancel_message
from protocol.triggers.after import KIND as AFTER
from protocol.triggers.after import predecessor_of

log = logging.getLogger("triggerx.gateway")

MAX_ACTIVE_JOBS_PER_OWNER = 100
# Gas of one execution besides the target's own (bench/gas.py: ~68k in steady state, more for
# an owner's first task), for the smallest fee cap a job may have.
EXECUTION_OVERHEAD_GAS = 100_000
WATCHING_KINDS = ("event", "condition")  # the kinds that read a chain named by their `chainId`


@dataclass(frozen=True)
class JobStanding:
    """What the chain says of a job now: the terms hash the hub holds for it (UNREGISTERED,
    CANCELLED_TERMS or the terms'), its owner's balance, and the latest base fee."""

    terms_hash: bytes
    balance: int
    base_fee: int


async def job_standing(hub: Contract, chain_job_id: int, owner: str) -> JobStanding:
    """Read a job's standing from `hub`, in one round trip."""
    return (await job_standings(hub, [(chain_job_id, owner)]))[0]


async def job_standings(hub: Contract, jobs: Sequence[tuple[int, str]]) -> list[JobStanding]:
    """The standings of `jobs` (chain job id, owner) on `hub`, all in one round trip."""
    calls = [("eth_getBlockByNumber", ["latest", False])]
    for chain_job_id, owner in jobs:
        calls += [hub.call_request("jobTermsHash", chain_job_id), hub.call_request("balanceOf", owner)]
    block, *replies = await hub.rpc.batch(calls)
    base_fee = int(block.get("baseFeePerGas", "0x0"), 16)
    return [
        JobStanding(
            terms_hash=hub.decode_result("jobTermsHash", state),
            balance=hub.decode_result("balanceOf", balance),
            base_fee=base_fee,
        )
        for state, balance in zip(replies[::2], replies[1::2], strict=True)
    ]


class JobConflictError(Exception):
    """The job cannot be created or changed as asked because of what already exists (HTTP 409)."""


@contextmanager
def _entry(position: int | None) -> Iterator[None]:
    """Refusals raised inside name entry `position` of a linked chain (None: a one-job body)."""
    with in_entry(position):
        try:
            yield
        except JobConflictError as conflict:
            if position is None:
                raise
            raise JobConflictError(f"jobs[{position}]: {conflict}") from None


class CancelRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of a cancellation: the owner's EIP-712 `CancelJob{jobId}` signature (0x-hex)."""

    signature: str


@dataclass
class JobIntake:
    """Creates and cancels jobs in `storage`, checked against the hub on chain.

    `on_created` and `on_cancelled` tell the scheduler. Signature checks (ecrecover, ~1 ms
    each) run in worker threads, a few at a time, never on the event loop.
    """

    storage: GatewayStorage
    hub: Contract
    sender: TransactionSender
    chain_id: int
    on_created: Callable[[JobRecord], None]
    on_cancelled: Callable[[JobRecord], None]
    on_resumed: Callable[[JobRecord], None] | None = None  # a paused job fires again (default: on_created)
    watched_chains: frozenset[int] = frozenset()  # the chains this gateway reads for event and condition jobs
    scripts: ScriptCheck | None = None  # dry-runs jobs' scripts (None: no jobs with scripts)
    max_active_jobs_per_owner: int = MAX_ACTIVE_JOBS_PER_OWNER
    clock: Callable[[], float] = time.time
    _workers: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(4))
    _cancelling: set[int] = field(default_factory=set)

    async def create(self, body: bytes, trace_id: str = "") -> list[JobRecord]:
        """Create the job, or the linked chain of jobs, in a POST /api/jobs `body` (the request's
        `trace_id` goes with them): every job is checked before any is stored, and all are
        stored in one batch. JobSpecError (400) or JobConflictError (409), naming the chain's
        entry at fault."""
        now = self.clock()
        jobs = await trio.to_thread.run_sync(
            parse_jobs_request, body, self.chain_id, self.hub.address, now, limiter=self._workers
        )
        entries = [None] if len(jobs) == 1 else list(range(len(jobs)))
        for position, job in zip(entries, jobs, strict=True):
            with _entry(position):
                self._check_new(job, jobs[: position or 0])
                self._check_watched(job)
                self._check_predecessor(job, jobs[: position or 0])
                if job.spec.script is not None and self.scripts is None:
                    raise JobSpecError("$.job.script", "this gateway takes no jobs with scripts")
        standings = await job_standings(self.hub, [(job.chain_job_id, job.owner) for job in jobs])
        for position, job, standing in zip(entries, jobs, standings, strict=True):
            with _entry(position):
                self._check_standing(job, standing)
        if self.scripts is not None:  # the dry runs cost the most: only for owners who can pay
            for position, job in zip(entries, jobs, strict=True):
                with _entry(position):
                    await self.scripts.check(job, now)
        # Checked last, with no await before the write: requests for the same jobs or owners
        # may have been accepted, or predecessors cancelled, while this one asked the chain.
        for position, job in zip(entries, jobs, strict=True):
            with _entry(position):
                self._check_new(job, jobs[: position or 0])
                self._check_predecessor(job, jobs[: position or 0])
        records = self.storage.create_jobs(jobs, now, trace_id)
        for record in records:
            log.info("job %d created for %s (trace %s)", record.id, record.owner, trace_id)
            self.on_created(record)
        return records

    async def cancel(self, job_id: int, body: bytes) -> JobRecord:
        """Cancel job `job_id` on the owner's signature; LookupError if there is no such job."""
        record = self.storage.jobs.get(job_id)
        if record is None:
            raise LookupError(f"no job {job_id}")
        try:
            signature = bytes.fromhex(
                msgspec.json.decode(body, type=CancelRequest).signature.removeprefix("0x")
            )
            message = cancel_message(record.chain_job_id, self.chain_id, self.hub.address)
            signer = await trio.to_thread.run_sync(message.signer, signature, limiter=self._workers)
        except (msgspec.MsgspecError, ValueError):
            raise JobSpecError(
                "$.signature", 'expected {"signature": "0x…"}, a CancelJob signature'
            ) from None
        if to_checksum_address(signer) != record.owner:
            raise JobSpecError("$.signature", f"signed by {signer}, not by the owner {record.owner}")
        if record.status == "deleted":
            return record
        fires = self.storage.fire_times.get(job_id)
        if fires is None or fires.last is None:  # never fired, so never registered on chain
            return self.mark_deleted(record, ran=False)
        # One transaction per job, however many requests arrive while it is under way.
        if job_id in self._cancelling:
            raise JobConflictError(f"job {job_id} is being cancelled")
        self._cancelling.add(job_id)
        try:
            await self.hub.transact(self.sender, "cancelJobWithSignature", record.chain_job_id, signature)
        except RevertError as error:
            if error.error_name != "JobNotActive":  # already cancelled on chain by the owner
                raise JobConflictError(f"the hub refused the cancellation: {error}") from None
        except ChainError as error:
            raise JobConflictError(f"the cancellation could not be sent: {error}") from None
        finally:
            self._cancelling.discard(job_id)
        return self.mark_deleted(self.storage.jobs.get(job_id) or record)

    def mark_deleted(self, record: JobRecord, *, ran: bool = True) -> JobRecord:
        """Record that `record` was cancelled (never a real delete) and stop scheduling it.

        A job that never `ran` keeps its terms but not its arguments: creating and cancelling
        one costs its owner nothing, so what it leaves must be small (a calldata of 64 KiB
        kept for every such pair would fill the disk for free).
        """
        deleted = msgspec.structs.replace(record, status="deleted")
        if not ran:
            spec = msgspec.structs.replace(record.spec, args=[])
            deleted = msgspec.structs.replace(deleted, spec=spec, calldata=b"")
        self.storage.jobs.put(deleted)
        self.on_cancelled(deleted)
        return deleted

    def _check_watched(self, job: ValidJob) -> None:
        """JobSpecError if `job` watches a chain this gateway does not read (events, conditions)."""
        watched = job.spec.schedule.get("chainId") if job.spec.schedule_type in WATCHING_KINDS else None
        if watched is not None and watched not in self.watched_chains:
            followed = ", ".join(map(str, sorted(self.watched_chains)))
            problem = (
                f"this gateway reads chain {followed} only" if followed else "this gateway reads no chain"
            )
            raise JobSpecError("$.job.schedule.chainId", problem)

    def _check_new(self, job: ValidJob, before: list[ValidJob]) -> None:
        """JobConflictError if this gateway has the job; JobSpecError if its owner would pass the
        cap with it and the jobs `before` it in the request."""
        existing = self.storage.job_by_chain_id(job.chain_job_id)
        if existing is not None:
            raise JobConflictError(f"this signed job already exists as job {existing.id}")
        cap = self.max_active_jobs_per_owner
        pending = sum(other.owner == job.owner for other in before)
        if self.storage.active_jobs_of(job.owner, cap) + pending >= cap:
            raise JobSpecError("$.job.owner", f"already has {cap} active jobs, the most allowed")

    def _check_predecessor(self, job: ValidJob, before: list[ValidJob]) -> None:
        """JobSpecError unless an `after` job follows one of the jobs `before` it in its request
        (a linked chain) or a job of this gateway's that still fires: it fires on this
        gateway's tasks only."""
        if job.spec.schedule_type != AFTER.name:
            return
        chain_job_id = predecessor_of(AFTER.decode(job.spec.schedule))
        if any(other.chain_job_id == chain_job_id for other in before):
            return
        predecessor = self.storage.job_by_chain_id(chain_job_id)
        if predecessor is None:
            problem = f"this gateway has no job {chain_job_id}: a job runs after one of the same gateway"
            raise JobSpecError("$.job.schedule.jobId", problem)
        if predecessor.status in ("deleted", "ended"):
            status = predecessor.status
            problem = f"job {chain_job_id} (job {predecessor.id} here) is {status}: it fires no more"
            raise JobSpecError("$.job.schedule.jobId", problem)

    def _check_standing(self, job: ValidJob, standing: JobStanding) -> None:
        """Refuses a job the chain has cancelled or holds with other terms, whose fee cap is below
        one execution at today's base fee, or whose owner cannot pay one task."""
        if standing.terms_hash == CANCELLED_TERMS:
            raise JobConflictError(f"job {job.chain_job_id:#x} was cancelled on chain: sign a new nonce")
        if standing.terms_hash not in (UNREGISTERED, job.terms.hash()):
            raise JobConflictError(f"job {job.chain_job_id:#x} is registered on chain with other terms")
        cost = (EXECUTION_OVERHEAD_GAS + job.terms.gas_limit) * standing.base_fee
        if job.terms.max_fee_per_task < cost:
            raise JobSpecError(
                "$.job.maxFeePerTask",
                f"is below the cost of one execution at today's base fee ({cost} wei for gasLimit "
                f"{job.terms.gas_limit} plus {EXECUTION_OVERHEAD_GAS} of overhead)",
            )
        if standing.balance < job.terms.max_fee_per_task:
            raise JobSpecError(
                "$.job.owner",
                f"balance {standing.balance} wei is less than maxFeePerTask {job.terms.max_fee_per_task}: "
                "deposit to the TaskExecutionHub first",
            )
