"""The `after` trigger: once for every task of another job (the predecessor) that the network
approves, so that jobs run one after another (a linked chain of jobs).

    "scheduleType": "after", "schedule": {"jobId": "<the predecessor's id on chain, decimal>"}

Signed as `keccak256(abi.encode(keccak("after"), uint256 predecessorJobId))`. Evidence: the
predecessor task's approval, `abi.encode(uint256 taskId, bytes32 decisionTxHash, uint256
blockNumber)` as detail, and the block's timestamp as the fire time.

An attester finds the AttestationCenter's `TaskSubmitted` (an approval) of that task, for the
predecessor job, in that transaction, mined in that block of the home chain, which has the fire
time as its timestamp, and the execution in a later block. The AttestationCenter is whatever
the hub's `settler` was at that block (only the settler can release a task's escrow, which every
decision does), so a look-alike event from another contract proves nothing. The predecessor
may be anyone's job: the owner of the successor signs which job it follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import eth_abi
import msgspec
from eth_utils import keccak
from msgspec import Meta

from node.chain import checksum_address
from protocol.jobs import UINT256_MAX  # not the package: protocol.triggers.interval says why
from protocol.triggers.base import (
    NotYetVisibleError,
    Readers,
    TriggerFire,
    TriggerKind,
    TriggerSpecError,
    signed_trigger,
)

TASK_SUBMITTED = keccak(text="TaskSubmitted(uint256,uint256,uint8,uint32,bytes32,uint256,uint256,uint256)")
"""topic0 of AttestationCenter.TaskSubmitted (indexed: taskId, jobId, performerId)."""


class AfterSpec(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """The `after` trigger's spec: the predecessor's job id on chain (`owner << 96 | nonce`)."""

    job_id: Annotated[str, Meta(max_length=78)]  # 2**256 has 78 digits


def predecessor_of(spec: AfterSpec) -> int:
    """The predecessor's job id on chain; TriggerSpecError unless it is a canonical decimal
    from 1 to 2**256 - 1 (one spelling per job: the spec is what the owner signs)."""
    text = spec.job_id
    if not (text.isascii() and text.isdigit() and text[0] != "0" and int(text) <= UINT256_MAX):
        raise TriggerSpecError("jobId", "must be a job's id on chain: a decimal integer from 1 to 2**256 - 1")
    return int(text)


@dataclass(frozen=True)
class ApprovalEvidence:
    """Which approval fired the job (a fire's `detail`): the predecessor's task, the decision's
    transaction and its block."""

    task_id: int
    tx_hash: bytes
    block_number: int

    _TYPES = ("uint256", "bytes32", "uint256")

    def encode(self) -> bytes:
        """The fire's `detail`."""
        return eth_abi.encode(list(self._TYPES), [self.task_id, self.tx_hash, self.block_number])

    @classmethod
    def decode(cls, detail: bytes) -> ApprovalEvidence:
        """The evidence in a fire's `detail`; ValueError if it is not one."""
        try:
            task_id, tx_hash, block_number = eth_abi.decode(list(cls._TYPES), detail, strict=True)
        except eth_abi.exceptions.DecodingError as error:
            raise ValueError(f"not an after fire's detail: {error}") from None
        evidence = cls(task_id, tx_hash, block_number)
        if evidence.encode() != detail:  # one fire, one detail: no padding
            raise ValueError("not an after fire's detail: it is not in canonical form")
        return evidence


class AfterKind(TriggerKind[AfterSpec]):
    """The `after` trigger (see the module docstring), fired by gateway.triggers.AfterTriggers."""

    name = "after"
    spec_type = AfterSpec

    def validate(self, spec: AfterSpec, now: float) -> float:
        predecessor_of(spec)
        return now  # it may fire as soon as the predecessor's first task is approved

    def trigger_hash(self, spec: AfterSpec) -> bytes:
        return signed_trigger("after", ["uint256"], [predecessor_of(spec)])

    def check_fire(self, spec: AfterSpec, fire: TriggerFire) -> str | None:
        """The detail is an approval's evidence."""
        try:
            ApprovalEvidence.decode(fire.detail)
        except ValueError as error:
            return str(error)
        return None

    async def check_on_chain(
        self, spec: AfterSpec, fire: TriggerFire, readers: Readers, executed_in: int
    ) -> str | None:
        """See the module docstring. NotYetVisibleError when this node knows no hub, or its
        chain has not reached the approval's block."""
        problem = self.check_fire(spec, fire)  # also here: a proof from the chain skips `check`
        if problem is not None:
            return problem
        evidence = ApprovalEvidence.decode(fire.detail)
        hub = readers.hub
        if hub is None:
            raise NotYetVisibleError("this node knows no execution hub, so no AttestationCenter")
        number = evidence.block_number
        if number >= executed_in:
            return f"executed in block {executed_in}, not after the predecessor's approval in block {number}"
        tx_hash, tag = "0x" + evidence.tx_hash.hex(), hex(number)
        replies = await hub.rpc.batch(
            [
                ("eth_getTransactionReceipt", [tx_hash]),
                ("eth_getBlockByNumber", [tag, False]),
                hub.call_request("settler", block=tag),
            ],
            return_exceptions=True,
        )
        receipt, block, settler = replies
        if block is None or any(isinstance(reply, Exception) for reply in replies):
            raise NotYetVisibleError(f"this node's chain has no block {number} yet")
        if receipt is None or int(receipt["blockNumber"], 16) != number:
            return f"transaction {tx_hash} is not in block {number}"
        if int(block["timestamp"], 16) != fire.fire_at:
            return f"the fire time {fire.fire_at} is not block {number}'s time"
        center = checksum_address(hub.decode_result("settler", settler))
        wanted = [TASK_SUBMITTED, *(n.to_bytes(32, "big") for n in (evidence.task_id, predecessor_of(spec)))]
        for entry in receipt["logs"]:
            topics = [bytes.fromhex(topic[2:]) for topic in entry["topics"][:3]]
            if checksum_address(entry["address"]) == center and topics == wanted:
                return None
        return (
            f"transaction {tx_hash} has no approval of task {evidence.task_id} of job {spec.job_id} "
            "by the AttestationCenter"
        )


KIND = AfterKind()
