"""What a performer reports after executing a task, and the hash attesters vote on."""

from __future__ import annotations

from dataclasses import dataclass

import eth_abi
from eth_utils import keccak


@dataclass(frozen=True)
class ExecutionResult:
    """One execution of a task attempt through TaskExecutionHub, as its performer reports it."""

    task_id: int
    job_id: int
    attempt: int
    performer_id: int
    tx_hash: bytes
    block_number: int
    calldata_hash: bytes
    target_success: bool

    def result_hash(self) -> bytes:
        """The 32 bytes the performer signs and attesters approve or reject (binds every field)."""
        return keccak(
            eth_abi.encode(
                ["uint256", "uint256", "uint32", "uint8", "bytes32", "uint64", "bytes32", "bool"],
                [
                    self.task_id,
                    self.job_id,
                    self.attempt,
                    self.performer_id,
                    self.tx_hash,
                    self.block_number,
                    self.calldata_hash,
                    self.target_success,
                ],
            )
        )
