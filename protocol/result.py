"""What a performer reports after executing a task, and the hash attesters vote on."""

from __future__ import annotations

from dataclasses import dataclass

import eth_abi
from eth_utils import keccak

from node.chain import check_bytes, check_uint


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

    def __post_init__(self) -> None:
        for name, bits in (
            ("task_id", 256),
            ("job_id", 256),
            ("attempt", 32),
            ("performer_id", 8),
            ("block_number", 64),
        ):
            check_uint(name, getattr(self, name), bits)
        check_bytes("tx_hash", self.tx_hash, 32)
        check_bytes("calldata_hash", self.calldata_hash, 32)

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
