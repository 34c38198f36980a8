"""A job as the chain knows it: its id, its terms, and its owner's consent (EIP-712).

Byte for byte as `JobRegistry.sol` (part of TaskExecutionHub) computes them:

- a job id is `owner << 96 | nonce`: the owner picks the nonce, so ids are unique and nobody
  can create a job under someone else's name;
- `JobTerms` is everything a task of the job may do: the target, the selector, the arguments
  (`ARGS_STATIC`: the hash of the exact calldata; `ARGS_DYNAMIC`: of the script that computes
  them), the gas limit, the most one task may cost, and the trigger;
- `JobConsent{nonce, expiry, terms}` is what the owner signs so that the job can be registered
  with its first execution; `CancelJob{jobId}` lets anyone relay the owner's cancellation.

All three are signed in the hub's EIP-712 domain (its chain and address), so a signature is
good for one deployment only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

from node.chain import (
    Domain,
    Fields,
    TypedMessage,
    TypedStruct,
    check_bytes,
    check_uint,
    checksum_address,
    struct_hash,
)

HUB_DOMAIN_NAME = "TriggerX TaskExecutionHub"
HUB_DOMAIN_VERSION = "2"
ARGS_STATIC = 0
ARGS_DYNAMIC = 1
MAX_NONCE = 2**96 - 1
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
CANCELLED_TERMS = (1).to_bytes(32, "big")  # JobRegistry.CANCELLED: what a cancelled job stores
UNREGISTERED = bytes(32)  # what the registry holds for a job never registered

_TERMS_FIELDS: Fields = [
    {"name": "target", "type": "address"},
    {"name": "selector", "type": "bytes4"},
    {"name": "argsMode", "type": "uint8"},
    {"name": "argsHash", "type": "bytes32"},
    {"name": "gasLimit", "type": "uint64"},
    {"name": "maxFeePerTask", "type": "uint256"},
    {"name": "trigger", "type": "bytes32"},
]
_CONSENT_FIELDS: Fields = [
    {"name": "nonce", "type": "uint96"},
    {"name": "expiry", "type": "uint64"},
    {"name": "terms", "type": "JobTerms"},
]
_CANCEL_FIELDS: Fields = [{"name": "jobId", "type": "uint256"}]


def hub_domain(chain_id: int, hub: str) -> Domain:
    """The EIP-712 domain of the TaskExecutionHub at `hub` on chain `chain_id`."""
    return Domain(HUB_DOMAIN_NAME, HUB_DOMAIN_VERSION, chain_id, hub)


def job_id_of(owner: str, nonce: int) -> int:
    """The id of `owner`'s job number `nonce` (0 ≤ nonce < 2**96)."""
    if not 0 <= nonce <= MAX_NONCE:
        raise ValueError(f"nonce {nonce} is outside 0..2**96-1")
    return int(owner, 16) << 96 | nonce


@dataclass(frozen=True)
class JobTerms:
    """What every task of a job may do (see the module docstring)."""

    target: str
    selector: bytes
    args_mode: int
    args_hash: bytes
    gas_limit: int
    max_fee_per_task: int
    trigger: bytes

    def __post_init__(self) -> None:
        check_bytes("selector", self.selector, 4)
        check_bytes("args_hash", self.args_hash, 32)
        check_bytes("trigger", self.trigger, 32)
        if self.args_mode not in (ARGS_STATIC, ARGS_DYNAMIC):
            raise ValueError(f"args_mode: {self.args_mode!r} is not {ARGS_STATIC} or {ARGS_DYNAMIC}")
        check_uint("gas_limit", self.gas_limit, 64)
        check_uint("max_fee_per_task", self.max_fee_per_task, 256)
        object.__setattr__(self, "target", checksum_address(self.target))

    @classmethod
    def static_call(
        cls, target: str, calldata: bytes, gas_limit: int, max_fee_per_task: int, trigger: bytes
    ) -> JobTerms:
        """Terms that allow exactly `calldata` on `target`."""
        return cls(target, calldata[:4], ARGS_STATIC, keccak(calldata), gas_limit, max_fee_per_task, trigger)

    @classmethod
    def dynamic_call(
        cls,
        target: str,
        function: str,
        args_hash: bytes,
        gas_limit: int,
        max_fee: int,
        trigger: bytes,
    ) -> JobTerms:
        """Terms that allow `function` (its canonical signature) on `target` with the arguments
        of the script `args_hash` names (protocol.scripts.ScriptCall.args_hash)."""
        selector = keccak(text=function)[:4]
        return cls(target, selector, ARGS_DYNAMIC, args_hash, gas_limit, max_fee, trigger)

    def as_struct(self) -> dict[str, Any]:
        """The struct as the contract's ABI and EIP-712 name its fields."""
        return {
            "target": self.target,
            "selector": self.selector,
            "argsMode": self.args_mode,
            "argsHash": self.args_hash,
            "gasLimit": self.gas_limit,
            "maxFeePerTask": self.max_fee_per_task,
            "trigger": self.trigger,
        }

    def permit(self, terms_hash: bytes, calldata: bytes) -> bool:
        """Whether an assignment naming `terms_hash` may make `calldata` under these terms: the
        hub's own check (the terms are the ones named; the selector, and for static arguments
        every byte, are the ones allowed)."""
        if self.hash() != terms_hash or len(calldata) < 4 or calldata[:4] != self.selector:
            return False
        return self.args_mode != ARGS_STATIC or keccak(calldata) == self.args_hash

    def hash(self) -> bytes:
        """The EIP-712 struct hash (what the hub stores and assignments name)."""
        return struct_hash("JobTerms", _TERMS_FIELDS, self.as_struct())


@dataclass(frozen=True)
class JobConsent(TypedStruct):
    """An owner's consent to job number `nonce` with `terms`, valid until `expiry` (unix seconds)."""

    nonce: int
    expiry: int
    terms: JobTerms

    def typed(self, chain_id: int, verifying_contract: str) -> TypedMessage:
        """The EIP-712 message the hub checks (the owner signs it)."""
        message = {"nonce": self.nonce, "expiry": self.expiry, "terms": self.terms.as_struct()}
        domain = hub_domain(chain_id, verifying_contract)
        return TypedMessage(domain, "JobConsent", _CONSENT_FIELDS, message, {"JobTerms": _TERMS_FIELDS})


def cancel_message(job_id: int, chain_id: int, hub: str) -> TypedMessage:
    """The EIP-712 `CancelJob{jobId}` an owner signs so that anyone may relay the cancellation."""
    return TypedMessage(hub_domain(chain_id, hub), "CancelJob", _CANCEL_FIELDS, {"jobId": job_id})
