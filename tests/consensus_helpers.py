"""A small operator network on anvil for consensus tests and benchmarks: keys, registration, votes."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache

from eth_account import Account
from eth_account.signers.local import LocalAccount

from consensus.aggregator import Submission, VoteCollector
from consensus.attestation import TaskInfo, Vote
from consensus.bls.backend import CURVE_ORDER, BlsBackend, choose_backend
from consensus.operators import OperatorSet, load_operator_set, registration_proof
from node.chain.contracts import Contract, load_artifact, revert_decoder
from node.chain.deployment import deploy_consensus
from node.chain.rpc import RpcClient
from node.chain.transactions import TransactionSender

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


@dataclass
class Network:
    """Deployed consensus contracts with registered operators."""

    registry: Contract
    center: Contract
    governor: TransactionSender
    operators: list[LocalAccount]
    chain_id: int

    async def operator_set(self) -> OperatorSet:
        return await load_operator_set(self.registry)

    def task(self, task_id: int = 1, attempt: int = 1, performer_id: int = 0) -> TaskInfo:
        result_hash = hashlib.sha256(b"result of %d/%d" % (task_id, attempt)).digest()
        return TaskInfo(
            task_id, job_id=42, attempt=attempt, performer_id=performer_id, result_hash=result_hash
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
    url: str, addresses: tuple[str, str], governor: LocalAccount, operators: int, chain_id: int
) -> AsyncIterator[Network]:
    """A `Network` over already deployed contracts, with its own client (one per `trio.run`)."""
    async with RpcClient(url, revert_decoder=revert_decoder()) as rpc:
        registry = Contract(rpc, load_artifact("OperatorRegistry"), addresses[0])
        center = Contract(rpc, load_artifact("AttestationCenter"), addresses[1])
        sender = TransactionSender(rpc, governor, chain_id)
        yield Network(registry, center, sender, [operator_account(i) for i in range(operators)], chain_id)


async def deploy_network(
    governor: TransactionSender, operators: Sequence[LocalAccount], stakes: Sequence[int], chain_id: int
) -> Network:
    """Deploy the consensus contracts and register one operator per stake."""
    contracts = await deploy_consensus(governor)
    registry = contracts.operator_registry
    for index, (account, stake) in enumerate(zip(operators, stakes, strict=False)):
        public_key, proof = proof_for(index)
        args = (account.address, public_key, proof, b"peer-%d" % index, stake)
        await registry.transact(governor, "registerOperator", *args)
    return Network(registry, contracts.attestation_center, governor, list(operators), chain_id)
