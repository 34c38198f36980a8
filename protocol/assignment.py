"""The `Assignment` the dispatcher signs and `TaskExecutionHub` verifies (EIP-712).

The struct, its type string and the domain here must match `TaskExecutionHub.sol`
field for field; `tests/integration/test_execution_hub.py` checks the digest against
the contract's own `assignmentDigest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.chain import TypedMessage, TypedStruct, check_bytes, check_uint, checksum_address
from protocol.jobs import hub_domain

_FIELDS = [
    {"name": "taskId", "type": "uint256"},
    {"name": "jobId", "type": "uint256"},
    {"name": "attempt", "type": "uint32"},
    {"name": "performer", "type": "address"},
    {"name": "deadline", "type": "uint64"},
    {"name": "termsHash", "type": "bytes32"},
    {"name": "triggerEvidence", "type": "bytes32"},
]


@dataclass(frozen=True)
class Assignment(TypedStruct):
    """The dispatcher's order: `performer` may run attempt `attempt` of task `task_id`.

    It names the job and the hash of the job's terms it was made for (the hub checks that
    they are the job's current registered terms, which bind the target, the call, the gas
    and the fee cap), the deadline (unix seconds), and a hash of the trigger evidence that
    attesters check.
    """

    task_id: int
    job_id: int
    attempt: int
    performer: str
    deadline: int
    terms_hash: bytes
    trigger_evidence: bytes

    def __post_init__(self) -> None:
        for name, bits in (("task_id", 256), ("job_id", 256), ("attempt", 32), ("deadline", 64)):
            check_uint(name, getattr(self, name), bits)
        check_bytes("terms_hash", self.terms_hash, 32)
        check_bytes("trigger_evidence", self.trigger_evidence, 32)
        # Addresses compare equal however they were spelled.
        object.__setattr__(self, "performer", checksum_address(self.performer))

    @classmethod
    def from_struct(cls, struct: dict[str, Any]) -> Assignment:
        """The assignment in a decoded `execute` call (the inverse of `as_struct`)."""
        return cls(
            task_id=struct["taskId"],
            job_id=struct["jobId"],
            attempt=struct["attempt"],
            performer=struct["performer"],
            deadline=struct["deadline"],
            terms_hash=struct["termsHash"],
            trigger_evidence=struct["triggerEvidence"],
        )

    def as_struct(self) -> dict[str, Any]:
        """The struct as the contract's ABI and EIP-712 name its fields."""
        return {
            "taskId": self.task_id,
            "jobId": self.job_id,
            "attempt": self.attempt,
            "performer": self.performer,
            "deadline": self.deadline,
            "termsHash": self.terms_hash,
            "triggerEvidence": self.trigger_evidence,
        }

    def typed(self, chain_id: int, verifying_contract: str) -> TypedMessage:
        """This assignment as the EIP-712 message the hub checks (the dispatcher signs it)."""
        return TypedMessage(hub_domain(chain_id, verifying_contract), "Assignment", _FIELDS, self.as_struct())
