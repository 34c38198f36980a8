"""What attesters sign and what a performer signs, byte for byte as AttestationCenter.sol checks it.

- A **vote** is a BLS signature over `vote_message(...)`: the keccak256 of
  `abi.encode(VOTE_TAG, chainId, attestationCenter, taskId, jobId, attempt, performerId,
  resultHash, approve)`. It binds the whole TaskInfo, so a vote cannot be replayed on another
  chain, deployment, task, job, attempt, performer or result.
- A **task result** is the performer's EIP-712 claim `TaskResult{taskId, jobId, attempt,
  performerId, resultHash}`, signed with its operator (ECDSA) key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import eth_abi
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from node.bls import BlsBackend
from node.chain import Domain, TypedMessage, check_bytes, check_uint

VOTE_TAG = keccak(text="TriggerX.AttestationVote.v2")
DOMAIN_NAME = "TriggerX AttestationCenter"
DOMAIN_VERSION = "2"

_TASK_RESULT_FIELDS = [
    {"name": "taskId", "type": "uint256"},
    {"name": "jobId", "type": "uint256"},
    {"name": "attempt", "type": "uint32"},
    {"name": "performerId", "type": "uint8"},
    {"name": "resultHash", "type": "bytes32"},
]


@dataclass(frozen=True)
class TaskInfo:
    """One attempt of a task and the result its performer claims."""

    task_id: int
    job_id: int
    attempt: int
    performer_id: int
    result_hash: bytes

    def __post_init__(self) -> None:
        for name, bits in (("task_id", 256), ("job_id", 256), ("attempt", 32), ("performer_id", 8)):
            check_uint(name, getattr(self, name), bits)
        check_bytes("result_hash", self.result_hash, 32)

    def as_struct(self) -> dict[str, Any]:
        """The struct as the contract's ABI names its fields."""
        return {
            "taskId": self.task_id,
            "jobId": self.job_id,
            "attempt": self.attempt,
            "performerId": self.performer_id,
            "resultHash": self.result_hash,
        }

    def typed(self, chain_id: int, center: str) -> TypedMessage:
        """The performer's claim as the EIP-712 message AttestationCenter checks."""
        domain = Domain(DOMAIN_NAME, DOMAIN_VERSION, chain_id, center)
        return TypedMessage(domain, "TaskResult", _TASK_RESULT_FIELDS, self.as_struct())

    def sign_as_performer(self, performer: LocalAccount, chain_id: int, center: str) -> bytes:
        """The performer's 65-byte EIP-712 signature of this result."""
        return self.typed(chain_id, center).sign(performer)

    def performer_of(self, signature: bytes, chain_id: int, center: str) -> str:
        """The address that signed this result."""
        return self.typed(chain_id, center).signer(signature)


def vote_message(chain_id: int, center: str, task: TaskInfo, approve: bool) -> bytes:
    """The 32 bytes an attester signs to approve or reject `task` (every field of it)."""
    encoded = eth_abi.encode(
        ["bytes32", "uint256", "address", "uint256", "uint256", "uint32", "uint8", "bytes32", "bool"],
        [
            VOTE_TAG,
            chain_id,
            center,
            task.task_id,
            task.job_id,
            task.attempt,
            task.performer_id,
            task.result_hash,
            approve,
        ],
    )
    return keccak(encoded)


@dataclass(frozen=True)
class Vote:
    """An attester's BLS-signed decision on one task attempt's claimed result (`task`)."""

    operator_id: int
    task: TaskInfo
    approve: bool
    signature: bytes

    @classmethod
    def cast(
        cls,
        backend: BlsBackend,
        secret: bytes,
        operator_id: int,
        task: TaskInfo,
        approve: bool,
        chain_id: int,
        center: str,
    ) -> Vote:
        """Sign a vote on `task` with BLS secret key `secret`."""
        message = vote_message(chain_id, center, task, approve)
        return cls(operator_id, task, approve, backend.sign(secret, message))
