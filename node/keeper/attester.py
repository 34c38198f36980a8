"""The attester's side of a task: check a peer's reported execution against the chain."""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import keccak, to_checksum_address

from node.chain.contracts import Contract
from node.chain.transactions import Receipt
from node.dispatcher.assignment import Assignment
from node.keeper.result import ExecutionResult


@dataclass(frozen=True)
class Verdict:
    """Approve or reject, and why (the reason is logged and shown to operators)."""

    approve: bool
    reason: str


class ResultChecker:
    """Checks an `ExecutionResult` against the chain: the transaction, its input and its receipt."""

    def __init__(self, hub: Contract) -> None:
        self.hub = hub

    async def check(
        self, assignment: Assignment, result: ExecutionResult, expected_calldata: bytes | None = None
    ) -> Verdict:
        """Whether `result` is the honest execution of `assignment`.

        `expected_calldata`, for jobs with static arguments, must equal what was called.
        """
        if (result.task_id, result.job_id, result.attempt) != (
            assignment.task_id,
            assignment.job_id,
            assignment.attempt,
        ):
            return Verdict(False, "the result is for another task, job or attempt")
        tx_hash = "0x" + result.tx_hash.hex()
        tx, receipt = await self.hub.rpc.batch(
            [("eth_getTransactionByHash", [tx_hash]), ("eth_getTransactionReceipt", [tx_hash])]
        )
        if tx is None or receipt is None:
            return Verdict(False, f"transaction {tx_hash} is not mined")
        if receipt["status"] != "0x1" or int(receipt["blockNumber"], 16) != result.block_number:
            return Verdict(False, "the transaction failed or is not in the reported block")
        if tx.get("to") is None or to_checksum_address(tx["to"]) != self.hub.address:
            return Verdict(False, "the transaction did not call the execution hub")
        if to_checksum_address(tx["from"]) != assignment.performer:
            return Verdict(False, "the transaction was not sent by the assigned performer")
        try:
            function, args = self.hub.abi.decode_call(bytes.fromhex(tx["input"][2:]))
        except ValueError:
            return Verdict(False, "the transaction input is not a hub call")
        if function != "execute" or Assignment.from_struct(args["a"]) != assignment:
            return Verdict(False, "the transaction executed another assignment")
        calldata = args["callData"]
        if keccak(calldata) != result.calldata_hash:
            return Verdict(False, "the reported call arguments differ from those sent")
        if expected_calldata is not None and calldata != expected_calldata:
            return Verdict(False, "the call arguments differ from the job's")
        events = self.hub.events(Receipt.from_rpc(receipt), "TaskExecuted")
        if not any(
            (e.args["taskId"], e.args["attempt"], e.args["success"])
            == (result.task_id, result.attempt, result.target_success)
            for e in events
        ):
            return Verdict(False, "the hub recorded no such execution")
        return Verdict(True, "the execution matches the assignment and the chain")
