"""A small operator network on anvil for consensus tests and benchmarks: keys, registration, votes,
and real executions through the hub (an approval must name an execution the hub recorded)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from node.bls import CURVE_ORDER, BlsBackend, choose_backend
from node.chain import (
    Contract,
    Receipt,
    RpcClient,
    TransactionSender,
    deploy,
    deploy_consensus,
    deploy_core,
    load_artifact,
    revert_decoder,
)
from node.keeper import TaskExecutor
from protocol import (
    Assignment,
    JobTerms,
    OperatorSet,
    Submission,
    TaskInfo,
    Vote,
    VoteCollector,
    job_id_of,
    load_operator_set,
    registration_proof,
)
from protocol.triggers import TriggerFire, interval_trigger

from .conftest import CHAIN_ID

BACKEND = choose_backend()


def bls_secret(index: int) -> bytes:
    """A deterministic BLS secret key for operator `index`."""
    digest = int.from_bytes(hashlib.sha256(b"triggerx test operator %d" % index).digest(), "big")
    return (digest % (CURVE_ORDER - 1) + 1).to_bytes(32, "big")


def operator_account(index: int) -> LocalAccount:
    """A deterministic operator (ECDSA) account; operators sign but need no ether here."""
    return Account.from_key(hashlib.sha256(b"triggerx test operator account %d" % index).digest())


@cache
def proof_for(index: int) -> tuple[bytes, bytes]:
    """The registration key and PoP of operator `index` (py_ecc PoP is slow: compute once)."""
    return registration_proof(BACKEND, bls_secret(index))


JOB_OWNER = Account.from_key(hashlib.sha256(b"triggerx test job owner").digest())
JOB_FEE = 10**15
# A fire of test_job's trigger (every 60 s), for assignment messages.
FIRE = TriggerFire("interval", {"everySeconds": 60}, 0.0)
ETHER = 10**18


@dataclass
class Network:
    """Deployed contracts (the governor also dispatches) with registered operators and one
    registered job of JOB_OWNER's (incrementing a Counter), funded for many tasks."""

    registry: Contract
    center: Contract
    hub: Contract
    governor: TransactionSender
    operators: list[LocalAccount]
    chain_id: int
    job_id: int
    terms: JobTerms
    calldata: bytes

    async def operator_set(self) -> OperatorSet:
        return await load_operator_set(self.registry)

    @property
    def addresses(self) -> tuple[str, str, str, str]:
        """What `attach_network` needs: the registry, center, hub and the job's counter."""
        return self.registry.address, self.center.address, self.hub.address, self.terms.target

    def task(self, task_id: int = 1, attempt: int = 1, performer_id: int = 0) -> TaskInfo:
        result_hash = hashlib.sha256(b"result of %d/%d" % (task_id, attempt)).digest()
        return TaskInfo(
            task_id, job_id=self.job_id, attempt=attempt, performer_id=performer_id, result_hash=result_hash
        )

    async def execute(self, task: TaskInfo) -> Receipt:
        """Execute `task` through the hub as its performer would (assigned by the governor)."""
        performer = self.operators[task.performer_id]
        await self.hub.rpc.call("anvil_setBalance", performer.address, hex(ETHER))
        assignment = Assignment(
            task_id=task.task_id,
            job_id=task.job_id,
            attempt=task.attempt,
            performer=performer.address,
            deadline=2**40,
            terms_hash=self.terms.hash(),
            trigger_evidence=keccak(b"tick %d" % task.task_id),
        )
        signature = assignment.sign(self.governor.account, self.chain_id, self.hub.address)
        sender = TransactionSender(self.hub.rpc, performer, self.chain_id)
        return await self.hub.transact(
            sender,
            "execute",
            assignment.as_struct(),
            self.terms.as_struct(),
            self.calldata,
            JOB_FEE,
            signature,
        )

    def performer_signature(self, task: TaskInfo) -> bytes:
        return task.sign_as_performer(self.operators[task.performer_id], self.chain_id, self.center.address)

    def vote(self, operator_id: int, task: TaskInfo, approve: bool, backend: BlsBackend = BACKEND) -> Vote:
        return Vote.cast(
            backend, bls_secret(operator_id), operator_id, task, approve, self.chain_id, self.center.address
        )

    async def collector(self, task: TaskInfo) -> VoteCollector:
        return VoteCollector(
            task,
            self.performer_signature(task),
            await self.operator_set(),
            BACKEND,
            chain_id=self.chain_id,
            center=self.center.address,
        )

    def submission(self, task: TaskInfo, approve: bool, signer_ids: Sequence[int]) -> Submission:
        """What a submitter holding the votes of `signer_ids` sends, whether or not they reach quorum."""
        signers = sorted(signer_ids)
        signature = BACKEND.aggregate([self.vote(i, task, approve).signature for i in signers])
        return Submission(task, approve, self.performer_signature(task), signature, tuple(signers))


@asynccontextmanager
async def attach_network(
    url: str, addresses: tuple[str, str, str, str], governor: LocalAccount, operators: int, chain_id: int
) -> AsyncIterator[Network]:
    """A `Network` over already deployed contracts (registry, center, hub, counter: see
    `Network.addresses`), with its own client (one per `trio.run`)."""
    async with RpcClient(url, revert_decoder=revert_decoder()) as rpc:
        registry = Contract(rpc, load_artifact("OperatorRegistry"), addresses[0])
        center = Contract(rpc, load_artifact("AttestationCenter"), addresses[1])
        hub = Contract(rpc, load_artifact("TaskExecutionHub"), addresses[2])
        sender = TransactionSender(rpc, governor, chain_id)
        operator_accounts = [operator_account(i) for i in range(operators)]
        job = test_job(addresses[3])
        yield Network(registry, center, hub, sender, operator_accounts, chain_id, *job)


async def deploy_network(
    governor: TransactionSender, operators: Sequence[LocalAccount], stakes: Sequence[int], chain_id: int
) -> Network:
    """Deploy every contract (the governor dispatches), register one operator per stake, and
    register and fund JOB_OWNER's job."""
    hub = (await deploy_core(governor, dispatcher=governor.address)).hub
    contracts = await deploy_consensus(governor, hub)
    registry = contracts.operator_registry
    for index, (account, stake) in enumerate(zip(operators, stakes, strict=False)):
        public_key, proof = proof_for(index)
        args = (account.address, public_key, proof, b"peer-%d" % index, stake)
        await registry.transact(governor, "registerOperator", *args)
    counter = await deploy(governor, load_artifact("Counter"))
    job_id, terms, calldata = test_job(counter.address)
    await governor.rpc.call("anvil_setBalance", JOB_OWNER.address, hex(1_000 * ETHER))
    owner = TransactionSender(governor.rpc, JOB_OWNER, chain_id)
    await hub.transact(owner, "registerJob", 1, terms.as_struct())
    await hub.transact(owner, "deposit", value=100 * ETHER)
    center = contracts.attestation_center
    return Network(registry, center, hub, governor, list(operators), chain_id, job_id, terms, calldata)


def test_job(counter: str) -> tuple[int, JobTerms, bytes]:
    """JOB_OWNER's job number 1: call `counter.increment()`, at most JOB_FEE per task."""
    calldata = keccak(text="increment()")[:4]
    terms = JobTerms.static_call(counter, calldata, 100_000, JOB_FEE, interval_trigger(60, 0, 0))
    return job_id_of(JOB_OWNER.address, 1), terms, calldata


class CarelessExecutor(TaskExecutor):
    """A performer that does not check its fire against the chain before it executes (the
    attesters must catch what it lets through)."""

    async def _trigger_problem(self, order, mined_in):
        return None


async def four_keeper_network(accounts: list[LocalAccount], sender_for) -> tuple[Network, list[LocalAccount]]:
    """A network of four keepers (accounts 2 to 5, stake 100 each), deployed by accounts[0]."""
    keepers = accounts[2:6]
    return await deploy_network(sender_for(accounts[0]), keepers, [100] * 4, CHAIN_ID), keepers
