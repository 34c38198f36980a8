"""The performer's side of a task: check the assignment, run it through the hub, report the result."""

from __future__ import annotations

from eth_utils import keccak

from node.chain.contracts import Contract
from node.chain.transactions import TransactionSender
from node.dispatcher.assignment import Assignment
from node.keeper.result import ExecutionResult


class AssignmentRefused(Exception):  # noqa: N818 - it names what happened, like trio's Cancelled
    """This keeper will not execute the assignment; the message says why."""


class TaskExecutor:
    """Executes assignments addressed to this keeper through TaskExecutionHub.

    Args:
        hub: the TaskExecutionHub.
        sender: this keeper's transaction sender (its operator account).
        dispatcher: the address whose signature makes an assignment genuine.
        operator_id: this keeper's id in OperatorRegistry.
        chain_id: the chain the hub lives on (part of the assignment's EIP-712 domain).
    """

    def __init__(
        self, hub: Contract, sender: TransactionSender, *, dispatcher: str, operator_id: int, chain_id: int
    ) -> None:
        self.hub = hub
        self.sender = sender
        self.dispatcher = dispatcher
        self.operator_id = operator_id
        self.chain_id = chain_id

    async def execute(self, assignment: Assignment, signature: bytes, calldata: bytes) -> ExecutionResult:
        """Send the hub transaction for `assignment` and describe what it did.

        Raises AssignmentRefused for an assignment that is not this keeper's or not the
        dispatcher's, and RevertError when the hub would refuse it (expired, already
        executed, fee or balance): nothing is sent then.
        """
        signer = assignment.signer(signature, self.chain_id, self.hub.address)
        if signer != self.dispatcher:
            raise AssignmentRefused(f"task {assignment.task_id}: signed by {signer}, not the dispatcher")
        if assignment.performer != self.sender.address:
            raise AssignmentRefused(f"task {assignment.task_id}: assigned to {assignment.performer}")
        gas, fee = await self._gas_and_fee(assignment, signature, calldata)
        receipt = await self.hub.transact(
            self.sender, "execute", assignment.as_struct(), signature, calldata, fee, gas=gas
        )
        [executed] = self.hub.events(receipt, "TaskExecuted")
        return ExecutionResult(
            task_id=assignment.task_id,
            job_id=assignment.job_id,
            attempt=assignment.attempt,
            performer_id=self.operator_id,
            tx_hash=bytes.fromhex(receipt.tx_hash[2:]),
            block_number=receipt.block_number,
            calldata_hash=keccak(calldata),
            target_success=executed.args["success"],
        )

    async def _gas_and_fee(
        self, assignment: Assignment, signature: bytes, calldata: bytes
    ) -> tuple[int, int]:
        """Gas for the transaction, and the fee: its cost at today's base fee, capped by the assignment."""
        data = self.hub.encode("execute", assignment.as_struct(), signature, calldata, assignment.max_fee)
        call = {"from": self.sender.address, "to": self.hub.address, "data": "0x" + data.hex()}
        estimate, block = await self.hub.rpc.batch(
            [("eth_estimateGas", [call]), ("eth_getBlockByNumber", ["latest", False])]
        )
        gas = int(estimate, 16)
        cost = gas * int(block["baseFeePerGas"], 16)
        return int(gas * self.sender.gas_margin), min(cost, assignment.max_fee)
