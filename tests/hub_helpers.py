"""A TaskExecutionHub on anvil with an owner, a dispatcher, a performer and a Counter target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from node.chain import Contract, Receipt, TransactionSender
from protocol import Assignment, JobConsent, JobTerms, job_id_of
from protocol.triggers import interval_trigger

ETH = 10**18
FEE = 10**15
TRIGGER = interval_trigger(60, 0, 0)
# TriggerGasRegistry.TaskState
TASK_OPEN, TASK_EXECUTED, TASK_CLOSED = range(3)


@dataclass
class HubWorld:
    """accounts[0] governs, accounts[1] dispatches, `performer` executes, `owner` owns jobs."""

    hub: Contract
    counter: Contract
    governor: TransactionSender
    dispatcher: LocalAccount
    owner: TransactionSender
    performer: TransactionSender
    chain_id: int

    def terms(self, calldata: bytes, *, max_fee: int = 2 * FEE, gas_limit: int = 200_000) -> JobTerms:
        """Static terms for `calldata` on the counter."""
        return JobTerms.static_call(self.counter.address, calldata, gas_limit, max_fee, TRIGGER)

    async def register(self, terms: JobTerms, nonce: int = 1, owner: TransactionSender | None = None) -> int:
        """Register `terms` as the owner's job `nonce` by the owner's own transaction; the job id."""
        owner = owner or self.owner
        await self.hub.transact(owner, "registerJob", nonce, terms.as_struct())
        return job_id_of(owner.address, nonce)

    def assignment(
        self, task_id: int, job_id: int, terms: JobTerms, attempt: int = 1, **changes: Any
    ) -> Assignment:
        """An assignment of the task to `performer`, valid for an hour (anvil's clock)."""
        fields: dict[str, Any] = {
            "task_id": task_id,
            "job_id": job_id,
            "attempt": attempt,
            "performer": self.performer.address,
            "deadline": 2**40,
            "terms_hash": terms.hash(),
            "trigger_evidence": keccak(b"tick %d" % task_id),
        }
        return Assignment(**(fields | changes))

    def sign(self, assignment: Assignment, signer: LocalAccount | None = None) -> bytes:
        """The dispatcher's (or `signer`'s) signature of `assignment` for this hub."""
        return assignment.sign(signer or self.dispatcher, self.chain_id, self.hub.address)

    def consent(self, terms: JobTerms, nonce: int, expiry: int, owner: LocalAccount | None = None) -> dict:
        """The owner's consent (the `Consent` struct of executeFirst)."""
        signer = owner or self.owner.account
        signature = JobConsent(nonce, expiry, terms).sign(signer, self.chain_id, self.hub.address)
        return {"expiry": expiry, "signature": signature}

    async def execute(
        self,
        assignment: Assignment,
        terms: JobTerms,
        calldata: bytes,
        fee: int = FEE,
        *,
        signature: bytes | None = None,
        performer: TransactionSender | None = None,
        consent: dict | None = None,
    ) -> Receipt:
        """Send `execute` (or `executeFirst` with `consent`) as the performer."""
        if signature is None:
            signature = self.sign(assignment)
        args = [assignment.as_struct(), terms.as_struct(), calldata, fee, signature]
        function = "execute" if consent is None else "executeFirst"
        if consent is not None:
            args.append(consent)
        return await self.hub.transact(performer or self.performer, function, *args)

    async def increment_job(self) -> tuple[int, JobTerms, bytes]:
        """Register the owner's job 1 (counter.increment()): its id, terms and calldata."""
        calldata = self.counter.encode("increment")
        terms = self.terms(calldata)
        return await self.register(terms), terms, calldata

    async def balance(self, account: str) -> int:
        """`account`'s prepaid balance in the hub."""
        return await self.hub.call("balanceOf", account)
