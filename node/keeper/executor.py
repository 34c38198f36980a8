"""The performer's side of a task: check the assignment, run it through the hub, report the result."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import trio
from eth_utils import keccak

from node.chain import Contract, RevertError, TransactionSender
from node.keeper.scripts import ScriptError, ScriptRunner
from node.mesh import RequestRefused
from node.metrics import KeeperMetrics
from node.sandbox.proxy import exchanges_hash
from protocol import AssignmentMessage, ExecutionResult, JobTerms
from protocol.scripts import ScriptEvidence, ScriptOutcome, input_at_head
from protocol.triggers import NotYetVisibleError, Readers, chain_contradiction, kind_named
from protocol.triggers.condition_sources import NodeError

MAX_HOLD_S = 10.0
"""Seconds ahead of its fire time an assignment may come (the dispatcher's lead is far less)."""


class AssignmentRefused(RequestRefused):
    """This keeper will not execute the assignment; the message says why."""


class TaskExecutor:
    """Executes assignments addressed to this keeper through TaskExecutionHub.

    Args:
        hub: the TaskExecutionHub.
        sender: this keeper's transaction sender (its operator account).
        dispatcher: the address whose signature makes an assignment genuine.
        operator_id: this keeper's id in OperatorRegistry.
        chain_id: the chain the hub lives on (part of the assignment's EIP-712 domain).
        readers: what a fire is checked against before executing (default: the hub's chain; the
            hub itself is added, for `after` fires).
        scripts: runs the scripts of jobs with dynamic arguments (None: such jobs are refused).
        stats: the metrics it moves (tasks by outcome, gas, sandbox runs).
    """

    def __init__(
        self,
        hub: Contract,
        sender: TransactionSender,
        *,
        dispatcher: str,
        operator_id: int,
        chain_id: int,
        readers: Readers | None = None,
        scripts: ScriptRunner | None = None,
        stats: KeeperMetrics | None = None,
    ) -> None:
        self.scripts = scripts
        self.stats = stats or KeeperMetrics()
        self.hub = hub
        self.sender = sender
        self.dispatcher = dispatcher
        self.operator_id = operator_id
        self.chain_id = chain_id
        self.readers = dataclasses.replace(readers or Readers({chain_id: hub.rpc}), hub=hub)

    async def execute(self, order: AssignmentMessage) -> ExecutionResult:
        """`perform` without the script's evidence."""
        result, _ = await self.perform(order)
        return result

    async def perform(self, order: AssignmentMessage) -> tuple[ExecutionResult, ScriptEvidence]:
        """Send the hub transaction for `order` and describe what it did, with what its job's
        script read (the input and the web's answers; none for static arguments).

        The job's first task registers it on chain with the owner's consent (`executeFirst`).
        An assignment that comes ahead of its fire time is held until then. Raises
        AssignmentRefused for an assignment that is not this keeper's, not the dispatcher's,
        whose call the terms do not allow or that fires more than MAX_HOLD_S ahead, and
        RevertError when the hub would refuse it (expired, already executed, cancelled, fee or
        balance): nothing is sent then.
        """
        try:
            result, evidence = await self._perform(order)
        except AssignmentRefused:
            self.stats.tasks.labels("refused").inc()
            raise
        except RevertError:
            self.stats.tasks.labels("reverted").inc()
            raise
        except Exception:
            self.stats.tasks.labels("failed").inc()
            raise
        outcome = "success" if result.target_success else "skipped" if result.skipped else "target_failed"
        self.stats.tasks.labels(outcome).inc()
        return result, evidence

    async def _perform(self, order: AssignmentMessage) -> tuple[ExecutionResult, ScriptEvidence]:
        assignment, terms = order.assignment, order.terms
        signature = order.dispatcher_signature
        signer = assignment.signer(signature, self.chain_id, self.hub.address)
        if signer != self.dispatcher:
            raise AssignmentRefused(f"task {assignment.task_id}: signed by {signer}, not the dispatcher")
        if assignment.performer != self.sender.address:
            raise AssignmentRefused(f"task {assignment.task_id}: assigned to {assignment.performer}")
        if not terms.permit(assignment.terms_hash, order.calldata):
            raise AssignmentRefused(f"task {assignment.task_id}: the call is not the job's")
        problem = self.refusal(order)
        if problem is not None:
            raise AssignmentRefused(f"task {assignment.task_id}: {problem}")
        calldata, evidence, outcome = order.calldata, ScriptEvidence(), None
        if order.script is not None:
            outcome, document = await self._run_script(order)
            calldata, evidence = outcome.calldata, ScriptEvidence(document, outcome.exchanges)
        function, args = self._call(order, calldata)
        gas, fee, head = await self._gas_and_fee(function, args, terms)
        problem = await self._trigger_problem(order, head + 1)
        if problem is not None:
            raise AssignmentRefused(f"task {assignment.task_id}: {problem}")
        # Assigned ahead of its fire time (the dispatcher's lead): sent at the fire time, so that
        # it is not mined before it (attesters refuse that: docs/protocol.md, "Lead time").
        await trio.sleep(max(0.0, order.trigger.fire_at - time.time()))
        receipt = await self.hub.transact(self.sender, function, *args[:3], fee, *args[4:], gas=gas)
        self.stats.execution_gas.inc(receipt.gas_used)
        # No call data: the hub recorded a skip (TaskSkipped), and called nothing.
        success = bool(calldata) and self.hub.events(receipt, "TaskExecuted")[0].args["success"]
        result = ExecutionResult(
            task_id=assignment.task_id,
            job_id=assignment.job_id,
            attempt=assignment.attempt,
            performer_id=self.operator_id,
            tx_hash=bytes.fromhex(receipt.tx_hash[2:]),
            block_number=receipt.block_number,
            calldata_hash=keccak(calldata),
            target_success=success,
        )
        if outcome is not None:
            result = dataclasses.replace(
                result,
                script_input_hash=keccak(evidence.input),
                script_output_hash=outcome.output_hash,
                script_usage=outcome.usage,
                script_exchanges_hash=exchanges_hash(outcome.exchanges),
            )
        return result, evidence

    async def _run_script(self, order: AssignmentMessage) -> tuple[ScriptOutcome, bytes]:
        """What the job's script decides for `order` at the chain's head (a call, a skip, or a
        failure, which the hub records as a skip), and the input it ran on; AssignmentRefused
        when this keeper cannot run it."""
        call, task_id = order.script, order.assignment.task_id
        assert call is not None
        if self.scripts is None:
            raise AssignmentRefused(f"task {task_id}: this keeper runs no scripts")
        if not call.is_the_jobs(order.terms.args_hash):
            raise AssignmentRefused(f"task {task_id}: the script is not the one the owner signed")
        job_id, target = order.assignment.job_id, order.terms.target
        try:
            document = await input_at_head(self.hub.rpc, self.chain_id, job_id, target, call, order.trigger)
        except (NodeError, ValueError) as error:
            raise AssignmentRefused(f"task {task_id}: the job's values could not be read: {error}") from None
        try:
            outcome = await self.scripts.run(call, document)
        except ScriptError as error:
            raise AssignmentRefused(f"task {task_id}: {error}") from None
        self.stats.sandbox_run(call.language, outcome.status, outcome.usage.wall_ms / 1000)
        if outcome.ran_out:
            # Maybe this keeper's load, not the script: another keeper may complete it.
            raise AssignmentRefused(f"task {task_id}: {outcome.note}")
        return outcome, document

    @staticmethod
    def refusal(order: AssignmentMessage) -> str | None:
        """Why this keeper will not run `order`'s fire (checked before it acknowledges, and again
        before it sends), or None: a fire too far ahead to hold, or one the attesters would
        refuse (not a fire the owner's signed trigger allows)."""
        early = order.trigger.fire_at - time.time()
        if early > MAX_HOLD_S:
            return f"fires in {early:.1f} s, too far ahead"
        kind = kind_named(order.trigger.kind)
        if kind is None:
            return f"unknown trigger kind {order.trigger.kind!r}"
        return kind.check(order.trigger, order.terms.trigger, time.time())

    @staticmethod
    def _call(order: AssignmentMessage, calldata: bytes) -> tuple[str, list[Any]]:
        """The hub function and its arguments (the fee at its cap, for estimating): `executeFirst`
        with the owner's consent while the dispatcher sends it (the job is not yet registered on
        chain), `execute` otherwise."""
        assignment, terms = order.assignment, order.terms
        args: list[Any] = [
            assignment.as_struct(),
            terms.as_struct(),
            calldata,
            terms.max_fee_per_task,
            order.dispatcher_signature,
        ]
        if order.consent is None:
            return "execute", args
        return "executeFirst", [*args, {"expiry": order.consent.expiry, "signature": order.consent.signature}]

    async def _trigger_problem(self, order: AssignmentMessage, mined_in: int) -> str | None:
        """What the chain says against the fire if executed in block `mined_in` (an event's log
        not there, or not confirmed yet): the attesters would reject the execution, and the
        performer would have called the owner's contract for nothing."""
        try:
            return await chain_contradiction(order.trigger, self.readers, mined_in)
        except NotYetVisibleError as error:
            return f"the fire cannot be checked here: {error}"

    async def _gas_and_fee(self, function: str, args: list[Any], terms: JobTerms) -> tuple[int, int, int]:
        """Gas for the transaction, the fee (its cost at today's base fee) and the head's number.
        AssignmentRefused when the terms' fee cap does not cover that cost: a keeper does not
        work at a loss."""
        data = self.hub.encode(function, *args)
        call = {"from": self.sender.address, "to": self.hub.address, "data": "0x" + data.hex()}
        estimate, block = await self.hub.rpc.batch(
            [("eth_estimateGas", [call]), ("eth_getBlockByNumber", ["latest", False])]
        )
        gas = int(estimate, 16)
        cost = gas * int(block["baseFeePerGas"], 16)
        if cost > terms.max_fee_per_task:
            raise AssignmentRefused(f"the job's fee cap {terms.max_fee_per_task} is below the cost {cost}")
        return int(gas * self.sender.gas_margin), cost, int(block["number"], 16)
