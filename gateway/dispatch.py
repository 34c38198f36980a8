"""Dispatch: a task's attempts, from choosing the performer to the chain's decision.

For each attempt the dispatcher picks a performer among the online active keepers
(protocol.selection), signs the `Assignment` and sends it to the keeper over the mesh
(`assign`), then waits for the AttestationCenter's decision (fed in by `decided`). An attempt
that is not acknowledged, or not decided by its deadline, is followed by the next one with
backoff, up to the genesis's `maxTaskAttempts`, but only once the hub shows that no earlier
attempt executed or still can. Every change goes through the TaskLedger.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

import trio

from gateway.health import KeeperWatch
from gateway.intake import JobIntake, JobStanding, job_standing
from gateway.jobs import trigger_kind
from gateway.ledger import TERMINAL, TaskLedger
from gateway.monitor import TaskDecision
from gateway.records import AttemptRecord, JobRecord, TaskRecord
from gateway.relay import ExecutionRelay
from gateway.storage import GatewayStorage
from node.chain import ChainError, Contract, RevertError, TransactionSender
from node.config import Protocol
from node.mesh import MeshError, MeshNode
from protocol import (
    CANCELLED_TERMS,
    UNREGISTERED,
    Assignment,
    AssignmentMessage,
    Operator,
    OperatorDirectory,
    OwnerConsent,
    choose_performer,
    encode,
)

log = logging.getLogger("triggerx.gateway")
ACK_TIMEOUT = 5.0
KEEPER_WAIT = 300.0  # how long a task waits (`created`, in order) for an eligible keeper to be online
DEADLINE_GRACE = 30.0  # how long after an attempt's deadline its decision is still awaited
CHAIN_RETRY = 5.0  # seconds before asking the chain again after a failed read or refund
RELAY_AFTER = 20.0  # how long an executed attempt's decision is awaited before relaying its result
RELAY_EVERY = 60.0  # how often the relay is repeated while no decision comes
MAX_TASKS_IN_FLIGHT = 64  # tasks assigned and not yet decided, at most (see Dispatcher.dispatch)


@dataclass
class _Waiter:
    """An attempt waiting for the chain's decision."""

    done: trio.Event
    decision: TaskDecision | None = None


class Dispatcher:
    """Runs tasks' attempts; one `dispatch` call per task.

    Args:
        ledger: where every change of a task is recorded.
        storage: the jobs and tasks (read).
        hub: the TaskExecutionHub (the job's standing, the assignment's EIP-712 domain).
        chain_id: the hub's chain.
        sender: the dispatcher's account (signs assignments, sends refunds).
        mesh: sends assignments.
        directory: the operator set (who may perform).
        keepers: who is online, and where to dial them.
        intake: marks jobs the owner cancelled on chain.
        protocol: the genesis's attempts, backoff and assignment lifetime.
        escrow_timeout: how long an executed attempt's decision is awaited before its fee is
            refunded (the hub's ESCROW_TIMEOUT).
        max_in_flight: most tasks between their first assignment and their end at once.
    """

    def __init__(
        self,
        *,
        ledger: TaskLedger,
        storage: GatewayStorage,
        hub: Contract,
        chain_id: int,
        sender: TransactionSender,
        mesh: MeshNode,
        directory: OperatorDirectory,
        keepers: KeeperWatch,
        intake: JobIntake,
        protocol: Protocol,
        escrow_timeout: float = 86_400.0,
        max_in_flight: int = MAX_TASKS_IN_FLIGHT,
    ) -> None:
        self.ledger, self.storage, self.hub, self.chain_id = ledger, storage, hub, chain_id
        self.sender, self.mesh, self.directory, self.keepers = sender, mesh, directory, keepers
        self.intake, self.protocol, self.escrow_timeout = intake, protocol, escrow_timeout
        self.relay = ExecutionRelay(hub, mesh, directory)
        self._in_flight = trio.CapacityLimiter(max_in_flight)  # fair: waiting tasks go in order
        self._waiters: dict[tuple[int, int], _Waiter] = {}

    def resume(self, nursery: trio.Nursery) -> None:
        """Take up every task the ledger has unfinished (after a restart)."""
        for task in self.ledger.unfinished():
            log.info("task %d resumed (%s, %d attempt(s))", task.id, task.status, len(task.attempts))
            nursery.start_soon(self.dispatch, task.id)

    def decided(self, decision: TaskDecision) -> None:
        """Hand the chain's `decision` to the attempt waiting for it, if any."""
        waiter = self._waiters.get((decision.task_id, decision.attempt))
        if waiter is not None:
            waiter.decision = decision
            waiter.done.set()

    async def dispatch(self, task_id: int) -> None:
        """Drive a task to its end (see `_drive`); a failure no check foresaw fails this task,
        never the gateway.

        At most `max_in_flight` tasks are driven at once; the others wait, `created`, in the
        order they came (back-pressure: when attestation falls behind, no more work is
        executed than can be attested)."""
        try:
            async with self._in_flight:
                await self._drive(task_id)
        except Exception as error:
            log.exception("task %d: dispatch failed", task_id)
            self.ledger.fail(task_id, f"internal error in dispatch: {type(error).__name__}")

    async def _drive(self, task_id: int) -> None:
        """Drive a task to its end: `completed`, or `failed` with the reason.

        It picks up from the task's stored attempts, so it also resumes a task that was in
        flight when the gateway stopped. Before any new attempt it asks the hub whether an
        earlier one executed: such a task is never reassigned (the hub would refuse it); its
        decision is awaited, and if none comes within the escrow timeout the fee is refunded
        to the owner and the task fails with that reason.
        """
        task = self.storage.tasks.get(task_id)
        job = self.storage.jobs.get(task.job_id)
        standing = await self._standing(job)
        if not task.attempts:
            reason = self._unpayable(job, standing)
            if reason is not None:
                self.ledger.fail(task_id, reason)
                log.warning("task %d not dispatched: %s", task_id, reason)
                return
        # The owner's consent travels with the assignment until the job is registered on chain
        # (the hub's executeFirst also accepts a job registered meanwhile).
        consent = None
        if standing is None or standing.terms_hash == UNREGISTERED:
            consent = OwnerConsent(job.spec.expiry, job.consent_signature)
        while True:
            task = self.storage.tasks.get(task_id)
            if task.status in TERMINAL:
                await self._note_execution(task, job)
                return
            # A rejection that proved the execution wrong reopened the task on chain: the next
            # attempt goes to another keeper. One that proved nothing closed it.
            rejected = next((a for a in task.attempts if a.outcome == "rejected" and not a.reopened), None)
            if rejected is not None:
                self.ledger.fail(
                    task_id, f"the attesters rejected the execution of attempt {rejected.number}"
                )
                return
            if task.attempts and not await self._earlier_attempts_settled(task, job):
                continue
            # A cancelled job gets no new attempt; a paused or ended one finishes its tasks.
            if self.storage.jobs.get(job.id).status == "deleted":
                self.ledger.fail(task_id, "the job was cancelled")
                return
            if len(task.attempts) >= self.protocol.max_task_attempts:
                self.ledger.fail(task_id, f"no approved execution in {len(task.attempts)} attempt(s)")
                log.warning("task %d failed after %d attempt(s)", task_id, len(task.attempts))
                return
            if task.attempts:
                await trio.sleep(self.protocol.retry_backoff_seconds * 2 ** (len(task.attempts) - 1))
            performer = await self._performer(task_id, [a.performer for a in task.attempts])
            if performer is None:
                self.ledger.fail(task_id, f"no keeper online to take attempt {len(task.attempts) + 1}")
                return
            await self._attempt(task_id, len(task.attempts) + 1, performer, consent)

    async def _earlier_attempts_settled(self, task: TaskRecord, job: JobRecord) -> bool:
        """True when no earlier attempt of `task` executed nor can still execute, so a new
        attempt may start; otherwise it waits (for the decision of the attempt that executed,
        or for the last attempt's deadline to pass on chain) and returns False."""
        try:
            landed, chain_time = await self._landed(task, job)
        except ChainError as error:
            log.warning("task %d: could not read its executions on chain: %s", task.id, error)
            await trio.sleep(CHAIN_RETRY)
            return False
        if landed is not None:
            await self._follow(task, job, *landed)
            return False
        # An acknowledged attempt still before its deadline may yet execute: wait for it (an
        # unacknowledged one is unlikely to, and if it does the hub refuses the newer attempt).
        last = task.attempts[-1]
        remaining = last.deadline + DEADLINE_GRACE - time.time()
        undecided = last.outcome not in ("not acknowledged", "rejected")
        if undecided and chain_time <= last.deadline and remaining > 0:
            await self._decision(task.id, last.number, remaining)
            return False
        return True

    async def _follow(
        self, task: TaskRecord, job: JobRecord, landed: AttemptRecord, settled: bool, fee: int
    ) -> None:
        """Wait for the decision on the attempt that executed. If none comes soon, its performer
        may have died before reporting: relay its result from the chain (gateway.relay), again
        now and then; if none comes within the escrow timeout, refund the owner. An escrow
        already settled was decided on chain: the decision follower brings it."""
        found = None
        with contextlib.suppress(ChainError):  # the transaction is shown when found; nothing waits on it
            found = await self.relay.find(task, job, landed)
        self.ledger.executed(task.id, landed.number, None if found is None else found.tx_hash, fee)
        if settled:
            await self._decision(task.id, landed.number, CHAIN_RETRY)
            return
        give_up_at = time.monotonic() + self.escrow_timeout
        wait = RELAY_AFTER
        while not await self._decision(task.id, landed.number, min(wait, give_up_at - time.monotonic())):
            if time.monotonic() >= give_up_at:
                await self._refund(task, job, landed)
                return
            await self.relay.relay(task, job, landed)
            wait = RELAY_EVERY

    async def _note_execution(self, task: TaskRecord, job: JobRecord) -> None:
        """Record the transaction and fee of `task`'s approved execution, if a decision came
        before the dispatcher saw the execution (the usual case: it does not poll the hub
        while it waits). Best effort: a chain error leaves them unknown."""
        approved = next((a for a in task.attempts if a.outcome == "approved"), None)
        if approved is None or approved.tx_hash is not None:
            return
        try:
            landed, _ = await self._landed(task, job)
            found = await self.relay.find(task, job, approved)
        except ChainError as error:
            log.info("task %d: its execution's transaction is not known: %s", task.id, error)
            return
        fee = landed[2] if landed is not None and landed[0].number == approved.number else None
        if found is not None and fee is not None:
            self.ledger.executed(task.id, approved.number, found.tx_hash, fee)

    async def _landed(
        self, task: TaskRecord, job: JobRecord
    ) -> tuple[tuple[AttemptRecord, bool, int] | None, int]:
        """The attempt of `task` whose execution the hub records (if any, with whether its
        escrow is settled and its fee) and the chain's time, in one round trip."""
        calls = [
            self.hub.call_request("escrowOf", task.id, job.chain_job_id, a.number, a.performer)
            for a in task.attempts
        ]
        *escrows, head = await self.hub.rpc.batch([*calls, ("eth_getBlockByNumber", ["latest", False])])
        for attempt, reply in zip(task.attempts, escrows, strict=True):
            held, fee, settled = self.hub.decode_result("escrowOf", reply)
            if held:
                return (attempt, settled, fee), int(head["timestamp"], 16)
        return None, int(head["timestamp"], 16)

    async def _decision(self, task_id: int, attempt: int, wait: float) -> bool:
        """Wait at most `wait` seconds for the chain's decision on (`task_id`, `attempt`);
        whether there is one (the ledger has recorded it by then)."""
        waiter = self._waiters.setdefault((task_id, attempt), _Waiter(trio.Event()))
        try:
            if self._decided(task_id, attempt):
                return True
            with trio.move_on_after(max(wait, 0)):
                await waiter.done.wait()
            return waiter.decision is not None or self._decided(task_id, attempt)
        finally:
            self._waiters.pop((task_id, attempt), None)

    def _decided(self, task_id: int, attempt: int) -> bool:
        task = self.storage.tasks.get(task_id)
        return any(a.number == attempt and a.outcome in ("approved", "rejected") for a in task.attempts)

    async def _refund(self, task: TaskRecord, job: JobRecord, attempt: AttemptRecord) -> None:
        """Return the fee of an execution nobody decided to its owner, and fail the task (a
        refund the hub refuses, e.g. one somebody else made, fails it with the hub's reason)."""
        args = (task.id, job.chain_job_id, attempt.number, attempt.performer)
        while True:
            try:
                await self.hub.transact(self.sender, "refundExpired", *args)
                outcome = "fee refunded to the owner"
                break
            except RevertError as refused:
                outcome = f"the hub refused the refund ({refused.error_name})"
                break
            except ChainError as error:
                log.warning("task %d: refund of attempt %d failed: %s", task.id, attempt.number, error)
                await trio.sleep(CHAIN_RETRY)
        self.ledger.fail(
            task.id, f"attempt {attempt.number} executed, but no decision came in time: {outcome}"
        )

    async def _standing(self, job: JobRecord) -> JobStanding | None:
        try:
            return await job_standing(self.hub, job.chain_job_id, job.owner)
        except ChainError as error:
            log.warning("job %d: could not read its state on chain: %s", job.id, error)
            return None  # the keeper's own checks and the hub still guard the execution

    def _unpayable(self, job: JobRecord, standing: JobStanding | None) -> str | None:
        """Why `job` cannot run now (cancelled on chain, owner's balance below the fee cap), or
        None. A job cancelled on chain is marked deleted here too."""
        if standing is None:
            return None
        if standing.terms_hash == CANCELLED_TERMS:
            self.intake.mark_deleted(job)
            return "the owner cancelled the job on chain"
        cap = job.terms.max_fee_per_task
        if standing.balance < cap:
            return f"the owner's balance ({standing.balance} wei) is below the job's fee cap ({cap} wei)"
        return None

    async def _performer(self, task_id: int, tried: list[str]) -> Operator | None:
        with trio.move_on_after(KEEPER_WAIT):
            while True:
                online = self.keepers.online_accounts()
                candidates = [op for op in self.directory.operators.active if op.account in online]
                chosen = choose_performer(task_id, candidates, tried, self.directory.operators.total_stake)
                if chosen is not None:
                    return chosen
                await trio.sleep(0.5)
        return None

    def order_for(
        self, task_id: int, attempt: int, performer: str, consent: OwnerConsent | None
    ) -> AssignmentMessage:
        """The signed order of attempt `attempt` of task `task_id` to `performer`: the
        assignment (valid for the genesis's assignment lifetime from now) with the evidence of
        the task's fire as its job's trigger kind states it."""
        task = self.storage.tasks.get(task_id)
        job = self.storage.jobs.get(task.job_id)
        fire = task.fire_of(job)
        assignment = Assignment(
            task_id=task.id,
            job_id=job.chain_job_id,
            attempt=attempt,
            performer=performer,
            deadline=int(time.time()) + self.protocol.assignment_ttl_seconds,
            terms_hash=job.terms.hash(),
            trigger_evidence=trigger_kind(job.spec).evidence(job.chain_job_id, fire, job.calldata),
        )
        signature = assignment.sign(self.sender.account, self.chain_id, self.hub.address)
        return AssignmentMessage(
            assignment, job.terms, signature, job.calldata, fire, consent, task.trace_id, job.spec.script_call
        )

    async def _attempt(
        self, task_id: int, attempt: int, performer: Operator, consent: OwnerConsent | None
    ) -> None:
        """Assign one attempt and wait for the chain's decision on it (at most the assignment's
        lifetime and a grace period)."""
        order = self.order_for(task_id, attempt, performer.account, consent)
        deadline = order.assignment.deadline
        record = AttemptRecord(
            number=attempt, performer=performer.account, assigned_at=time.time(), deadline=deadline
        )
        try:
            peer = self.keepers.peer_of(performer.account)
            if peer is None:
                raise MeshError(f"no heartbeat from {performer.account} yet")
            await self._reach(peer)
            self.ledger.attempt_started(task_id, record)
            await self.mesh.request(peer, "assign", encode(order), timeout=ACK_TIMEOUT)
        except MeshError as error:
            log.warning(
                "task %d attempt %d: %s did not acknowledge: %s", task_id, attempt, performer.account, error
            )
            # It was signed and may have arrived: its deadline still counts (see dispatch).
            self.ledger.attempt_ended(task_id, record, "not acknowledged")
            return
        self.ledger.attempt_assigned(task_id, record)
        if not await self._decision(task_id, attempt, self.protocol.assignment_ttl_seconds + DEADLINE_GRACE):
            self.ledger.attempt_ended(task_id, record, "timed out")

    async def _reach(self, peer: str) -> None:
        """Dial `peer` unless connected: keepers gossip through the aggregators, but an
        assignment goes to its performer directly."""
        if peer in self.mesh.connected_peers():
            return
        for address in self.keepers.addresses.get(peer, []):
            try:
                await self.mesh.connect(address)
                return
            except (MeshError, OSError, ValueError) as error:
                log.debug("could not dial %s at %s: %s", peer, address, error)
