"""Results rebuilt from the chain, for executions whose performer never reported them.

A performer that dies right after its transaction leaves an execution the hub recorded and
paid into escrow, but no report on the mesh: without one, no attester votes and the task
could never be decided. The dispatcher then rebuilds the result from the chain (the hub's
TaskExecuted or TaskSkipped log, the transaction's input: the assignment it signed) and
publishes it on the results topic, unsigned. Attesters check it against the chain as any
report; the aggregator accepts an unsigned result only once it has checked it against the
chain too, and the AttestationCenter takes a decision without the performer's signature
(docs/protocol.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from eth_utils import keccak

from gateway.records import AttemptRecord, JobRecord, TaskRecord
from node.chain import ChainError, Contract
from node.mesh import RESULTS, MeshError, MeshNode
from protocol import Assignment, AssignmentMessage, ExecutionResult, OperatorDirectory, ResultMessage, encode

log = logging.getLogger("triggerx.gateway")
LOOKBACK_BLOCKS = 10_000  # how far back an execution's log is looked for


@dataclass(frozen=True)
class FoundExecution:
    """An execution as the hub's log and its transaction show it."""

    tx_hash: str
    block_number: int
    assignment: Assignment
    dispatcher_signature: bytes
    calldata: bytes
    target_success: bool


class ExecutionRelay:
    """Publishes the chain's account of an execution nobody reported.

    Args:
        hub: the TaskExecutionHub.
        mesh: publishes on the results topic.
        directory: the operator set (the performer's id).
    """

    def __init__(self, hub: Contract, mesh: MeshNode, directory: OperatorDirectory) -> None:
        self.hub, self.mesh, self.directory = hub, mesh, directory

    async def relay(self, task: TaskRecord, job: JobRecord, attempt: AttemptRecord) -> None:
        """Publish the result of `attempt` of `task`, rebuilt from the chain (a failure is
        logged: the caller tries again later)."""
        try:
            report = await self.rebuild(task, job, attempt)
            if report is None:
                return
            await self.mesh.publish(RESULTS, encode(report))
        except (ChainError, MeshError, ValueError) as error:
            log.warning("task %d attempt %d: result not relayed: %s", task.id, attempt.number, error)
            return
        log.info("task %d attempt %d: relayed its result from the chain", task.id, attempt.number)

    async def rebuild(self, task: TaskRecord, job: JobRecord, attempt: AttemptRecord) -> ResultMessage | None:
        """The unsigned report of `attempt` of `task` as the chain shows it (None: not found)."""
        found = await self.find(task, job, attempt)
        if found is None:
            log.warning("task %d attempt %d: no execution log in the last %d blocks", task.id, attempt.number,
                        LOOKBACK_BLOCKS)  # fmt: skip
            return None
        operator = self.directory.operator(attempt.performer)
        if operator is None:
            log.warning("task %d: performer %s is no operator", task.id, attempt.performer)
            return None
        order = AssignmentMessage(
            found.assignment,
            job.terms,
            found.dispatcher_signature,
            job.calldata,
            task.fire_of(job),
            None,
            task.trace_id,
            job.spec.script_call,
        )
        result = ExecutionResult(
            task_id=task.id,
            job_id=job.chain_job_id,
            attempt=attempt.number,
            performer_id=operator.id,
            tx_hash=bytes.fromhex(found.tx_hash[2:]),
            block_number=found.block_number,
            calldata_hash=keccak(found.calldata),
            target_success=found.target_success,
        )
        return ResultMessage(order, result, b"")

    async def find(self, task: TaskRecord, job: JobRecord, attempt: AttemptRecord) -> FoundExecution | None:
        """`attempt`'s execution of `task` in the hub's logs of the last LOOKBACK_BLOCKS blocks."""
        rpc = self.hub.rpc
        head = int(await rpc.call("eth_blockNumber"), 16)
        logs = await rpc.call(
            "eth_getLogs",
            {
                "address": self.hub.address,
                "topics": [
                    [self.hub.abi.event_topic("TaskExecuted"), self.hub.abi.event_topic("TaskSkipped")],
                    "0x" + task.id.to_bytes(32, "big").hex(),
                ],
                "fromBlock": hex(max(0, head - LOOKBACK_BLOCKS)),
                "toBlock": hex(head),
            },
        )
        for entry in logs:
            event = self.hub.abi.decode_log(entry)
            if event is None or event.args["jobId"] != job.chain_job_id:
                continue
            tx = await rpc.call("eth_getTransactionByHash", entry["transactionHash"])
            _, args = self.hub.abi.decode_call(bytes.fromhex(tx["input"][2:]))
            assignment = Assignment.from_struct(args["a"])
            if (assignment.attempt, assignment.performer) == (attempt.number, attempt.performer):
                return FoundExecution(
                    tx_hash=entry["transactionHash"],
                    block_number=int(entry["blockNumber"], 16),
                    assignment=assignment,
                    dispatcher_signature=args["dispatcherSignature"],
                    calldata=args["callData"],
                    target_success=event.args.get("success", False),  # a skip (TaskSkipped) calls nothing
                )
        return None
