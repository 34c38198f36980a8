"""The attester's side of a task: check a peer's reported execution against the chain.

A lagging RPC must not make honest work fail: until this node's chain has reached the block
the performer reported, the transaction is "not yet visible", and the attester waits (with a
bound) instead of voting to reject. If the chain never gets there in time, it abstains.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import trio
from eth_utils import keccak, to_checksum_address

from node.chain import Contract, Receipt
from node.keeper.scripts import ScriptError, ScriptRunner
from node.metrics import KeeperMetrics
from node.sandbox.proxy import exchanges_hash
from protocol import Assignment, AssignmentMessage, ExecutionResult, OperatorSet, ResultMessage
from protocol.result import NO_SCRIPT
from protocol.scripts import MAX_BLOCK_AGE, ScriptEvidence, input_block, read_values, script_input
from protocol.triggers import NotYetVisibleError, Readers, chain_contradiction, kind_named
from protocol.triggers.condition_sources import NodeError

VISIBILITY_TIMEOUT = 60.0
EARLY_TOLERANCE = 1
"""Seconds a block's timestamp may be before the fire time it executes (docs/protocol.md,
"Lead time"): block timestamps are whole seconds, and a chain's clock may run a little behind."""
_POLL_START, _POLL_MAX = 0.1, 2.0
NO_EVIDENCE = ScriptEvidence()


def report_problem(
    report: ResultMessage,
    sender: str,
    operators: OperatorSet,
    *,
    dispatcher: str,
    chain_id: int,
    hub: str,
    now: float | None = None,
) -> str | None:
    """Why an attester must not vote on `report` received from `sender` (at time `now`), or None.

    The sender, the result's performer and the assigned performer must be one active operator
    (otherwise someone is claiming another keeper's work, or a deactivated operator is
    performing), except that the dispatcher may relay an unsigned result it rebuilt from the
    chain when the performer never reported. The assignment must be the dispatcher's, with
    the evidence it signed of a fire the owner's trigger allows (its kind's check). Only then
    is the result worth checking against the chain.
    """
    order = report.order
    assignment = order.assignment
    performer = operators.operators.get(report.result.performer_id)
    if performer is None or not performer.active:
        return f"performer {report.result.performer_id} is not an active operator"
    relayed = sender == dispatcher and report.performer_signature == b""
    if performer.account != assignment.performer or not (sender == performer.account or relayed):
        return f"sent by {sender} for performer {performer.account}, assigned to {assignment.performer}"
    if not order.signed_by(dispatcher, chain_id, hub):
        return "the assignment is not signed by the dispatcher"
    kind = kind_named(order.trigger.kind)
    if kind is None:
        return f"unknown trigger kind {order.trigger.kind!r}"
    if kind.evidence(assignment.job_id, order.trigger, order.calldata) != assignment.trigger_evidence:
        return "the trigger evidence does not match the assignment"
    return kind.check(order.trigger, order.terms.trigger, time.time() if now is None else now)


def _script_hashes(result: ExecutionResult) -> set[bytes]:
    return {result.script_input_hash, result.script_output_hash, result.script_exchanges_hash}


@dataclass(frozen=True)
class Verdict:
    """Approve or reject, and why (the reason is logged and shown to operators)."""

    approve: bool
    reason: str
    abstain: bool = False
    """No vote either way: the execution is not one to pay for, nor proof of a lie (mined before
    its fire time: a performer's clock ahead of the chain's, docs/protocol.md "Lead time"; or a
    script that printed otherwise here than for the performer)."""


class ResultChecker:
    """Checks an `ExecutionResult` against the chain: the transaction, its input and its receipt,
    and what the trigger's kind checks through `readers` (an event's log, a condition's values).
    Each verdict is counted in `stats` (the attestations, and the scripts it re-runs)."""

    def __init__(
        self,
        hub: Contract,
        visibility_timeout: float = VISIBILITY_TIMEOUT,
        readers: Readers | None = None,
        scripts: ScriptRunner | None = None,
        stats: KeeperMetrics | None = None,
    ) -> None:
        self.hub = hub
        self.stats = stats or KeeperMetrics()
        self.visibility_timeout = visibility_timeout
        self.readers = replace(readers or Readers({}), hub=hub)  # `after` fires: decided by its settler
        self.scripts = scripts  # re-runs jobs' scripts (None: this node abstains on such jobs)
        self._chain_id: int | None = None  # the hub's chain, read once

    async def check(
        self, order: AssignmentMessage, result: ExecutionResult, evidence: ScriptEvidence = NO_EVIDENCE
    ) -> Verdict | None:
        """Whether `result` is the honest execution of `order`'s assignment under the job's
        terms, with the call the dispatcher relayed (or, for a job with a script, the call the
        script gives on the `evidence`: its input, and the web's answers replayed) and not
        before the fire time; None (abstain) when this node's chain did not reach the reported
        block in time, or it cannot run the script."""
        verdict = await self._check(order, result, evidence)
        if verdict is None or verdict.abstain:
            self.stats.attestations.labels("abstain").inc()
        else:
            self.stats.attestations.labels("approve" if verdict.approve else "reject").inc()
        return verdict

    async def _check(
        self, order: AssignmentMessage, result: ExecutionResult, evidence: ScriptEvidence
    ) -> Verdict | None:
        assignment, terms, expected_calldata = order.assignment, order.terms, order.calldata
        if (result.task_id, result.job_id, result.attempt) != (
            assignment.task_id,
            assignment.job_id,
            assignment.attempt,
        ):
            return Verdict(False, "the result is for another task, job or attempt")
        if not terms.permit(assignment.terms_hash, expected_calldata):
            return Verdict(False, "the assignment's terms do not allow the job's call")
        tx_hash = "0x" + result.tx_hash.hex()
        seen = await self._when_reached(result.block_number, tx_hash)
        if seen is None:
            return None
        tx, receipt, block = seen
        if tx is None or receipt is None or block is None:
            return Verdict(False, f"transaction {tx_hash} is not in the chain at the reported block")
        if receipt["status"] != "0x1" or int(receipt["blockNumber"], 16) != result.block_number:
            return Verdict(False, "the transaction failed or is not in the reported block")
        mined_at, fire_at = int(block["timestamp"], 16), order.trigger.fire_at
        if mined_at < math.floor(fire_at) - EARLY_TOLERANCE:
            return Verdict(
                False, f"mined at block time {mined_at}, before the fire time {fire_at:.3f}", abstain=True
            )
        if tx.get("to") is None or to_checksum_address(tx["to"]) != self.hub.address:
            return Verdict(False, "the transaction did not call the execution hub")
        if to_checksum_address(tx["from"]) != assignment.performer:
            return Verdict(False, "the transaction was not sent by the assigned performer")
        try:
            function, args = self.hub.abi.decode_call(bytes.fromhex(tx["input"][2:]))
        except ValueError:
            return Verdict(False, "the transaction input is not a hub call")
        if function not in ("execute", "executeFirst") or Assignment.from_struct(args["a"]) != assignment:
            return Verdict(False, "the transaction executed another assignment")
        calldata = args["callData"]
        if keccak(calldata) != result.calldata_hash:
            return Verdict(False, "the reported call arguments differ from those sent")
        if order.script is not None:
            verdict = await self._check_script(order, result, evidence, calldata)
            if verdict is None or not verdict.approve:
                return verdict
        elif calldata != expected_calldata:
            return Verdict(False, "the call arguments differ from the job's")
        elif {result.script_input_hash, result.script_output_hash, result.script_exchanges_hash} != {
            NO_SCRIPT
        }:
            return Verdict(False, "the result claims a script for a job without one")
        if not self._hub_recorded(Receipt.from_rpc(receipt), result, skipped=not calldata):
            return Verdict(False, "the hub recorded no such execution")
        try:
            problem = await chain_contradiction(order.trigger, self.readers, result.block_number)
        except NotYetVisibleError:
            return None
        if problem is not None:
            return Verdict(False, f"the trigger did not fire: {problem}")
        return Verdict(True, "the execution matches the assignment and the chain")

    async def _check_script(
        self, order: AssignmentMessage, result: ExecutionResult, evidence: ScriptEvidence, calldata: bytes
    ) -> Verdict | None:
        """Whether `calldata` is what the job's script gives on `document`, an input built from
        the order and a block of the chain read shortly before the execution (protocol.scripts);
        None (abstain) when this node cannot run the script. An execution reported without its
        input (or rebuilt from the chain: its performer never reported) cannot show that its
        arguments are the script's: it is rejected, since the hub checks only the selector."""
        call, assignment, document = order.script, order.assignment, evidence.input
        assert call is not None
        if not call.is_the_jobs(order.terms.args_hash):
            return Verdict(False, "the script is not the one the owner signed")
        if not document:
            return Verdict(False, "the execution comes without the input its script ran on")
        if keccak(document) != result.script_input_hash:
            return Verdict(False, "the result's input hash is not the input's")
        if exchanges_hash(evidence.exchanges) != result.script_exchanges_hash:
            return Verdict(False, "the web answers that came with the result are not the ones it names")
        try:
            block = input_block(document)
        except ValueError as error:
            return Verdict(False, str(error))
        if not 0 <= result.block_number - block.number <= MAX_BLOCK_AGE:
            return Verdict(False, f"the script read block {block.number}, executed in {result.block_number}")
        if self._chain_id is None:
            self._chain_id = int(await self.hub.rpc.call("eth_chainId"), 16)
        read = await self.hub.rpc.call("eth_getBlockByNumber", hex(block.number), False)
        if read is None or int(read["timestamp"], 16) != block.timestamp or block.chain_id != self._chain_id:
            return Verdict(False, f"block {block.number} of chain {block.chain_id} is not as the input says")
        try:
            values = await read_values(call, self.hub.rpc, block.number)
        except NodeError:
            return None  # this node could not read a value that may well be there
        except ValueError as error:
            return Verdict(False, f"the job's values do not parse: {error}")
        rebuilt = script_input(assignment.job_id, order.terms.target, call, order.trigger, block, values)
        if rebuilt != document:
            return Verdict(False, "the script input is not the one the order, its block and its values make")
        if self.scripts is None:
            return None
        try:
            # The performer's answers from the web, replayed: nothing is fetched again.
            own = await self.scripts.run(call, document, replay=evidence.exchanges)
        except ScriptError:
            return None  # it ran for the performer: this node's trouble, not a lie shown
        self.stats.sandbox_run(call.language, own.status, own.usage.wall_ms / 1000)
        if own.ran_out:
            return None  # maybe this node's load, not the script: no vote either way
        if own.output_hash != result.script_output_hash:
            # No proof of a lie: a script can tell two runs apart in ways the sandbox does not
            # close (docs/architecture.md, "What determinism does not cover"), and a rejection
            # by two thirds would penalise the performer. Nobody decides; the escrow goes back.
            why = f"the script's output differs from the reported one ({own.note or own.status})"
            return Verdict(False, why, abstain=True)
        if calldata != own.calldata:  # the performer's own output does not give its call: a lie
            return Verdict(False, "the call arguments differ from what the job's script gives")
        return Verdict(
            True, "the script gives this call" if calldata else f"the script gives no call: {own.note}"
        )

    def _hub_recorded(self, receipt: Receipt, result: ExecutionResult, *, skipped: bool) -> bool:
        """Whether the hub's log in `receipt` shows the claimed execution: a call of the task's
        target with the claimed success, or a skip (empty call data: no target called)."""
        if skipped:
            events = self.hub.events(receipt, "TaskSkipped")
            return not result.target_success and any(e.args["taskId"] == result.task_id for e in events)
        # The attempt and performer are the transaction's own (checked by the caller).
        claimed = (result.task_id, result.target_success)
        return any(
            (e.args["taskId"], e.args["success"]) == claimed for e in self.hub.events(receipt, "TaskExecuted")
        )

    async def _when_reached(self, block_number: int, tx_hash: str) -> tuple[Any, Any, Any] | None:
        """The transaction, its receipt and block `block_number` as this node's chain has them
        once it has that block (each poll reads all four at once, with backoff); None on timeout."""
        delay = _POLL_START
        calls = [
            ("eth_blockNumber", []),
            ("eth_getTransactionByHash", [tx_hash]),
            ("eth_getTransactionReceipt", [tx_hash]),
            ("eth_getBlockByNumber", [hex(block_number), False]),
        ]
        with trio.move_on_after(self.visibility_timeout):
            while True:
                head, tx, receipt, block = await self.hub.rpc.batch(calls)
                if int(head, 16) >= block_number:
                    return tx, receipt, block
                await trio.sleep(delay)
                delay = min(2 * delay, _POLL_MAX)
        return None
