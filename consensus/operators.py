"""The operator set as OperatorRegistry holds it: reading it, and admitting an operator."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_utils import to_checksum_address
from py_ecc.bls import G2ProofOfPossession

from consensus.bls.backend import BlsBackend
from consensus.bls.points import public_key_from_eip2537, public_key_to_eip2537, signature_to_eip2537
from node.chain.contracts import Contract
from node.chain.transactions import TransactionSender


@dataclass(frozen=True)
class Operator:
    """One registered operator."""

    id: int
    account: str
    stake: int
    active: bool
    public_key: bytes
    peer_id: bytes


@dataclass(frozen=True)
class OperatorSet:
    """A snapshot of every registered operator, by id."""

    operators: dict[int, Operator]

    @property
    def active(self) -> list[Operator]:
        """The active operators, by id."""
        return [op for op in self.operators.values() if op.active]

    @property
    def total_stake(self) -> int:
        """The stake of all active operators: the denominator of every quorum."""
        return sum(op.stake for op in self.active)

    def stake_of(self, ids: Iterable[int]) -> int:
        """The summed stake of the operators `ids`."""
        return sum(self.operators[i].stake for i in ids)


async def load_operator_set(registry: Contract) -> OperatorSet:
    """Read every operator from `registry`."""
    count = await registry.call("operatorCount")
    operators = {}
    for operator_id in range(count):
        record = await registry.call("getOperator", operator_id)
        public_key, _ = await registry.call("keyAndStake", operator_id)
        operators[operator_id] = Operator(
            id=operator_id,
            account=to_checksum_address(record["account"]),
            stake=record["stake"],
            active=record["active"],
            public_key=public_key_from_eip2537(public_key),
            peer_id=record["peerId"],
        )
    return OperatorSet(operators)


def registration_proof(backend: BlsBackend, secret: bytes) -> tuple[bytes, bytes]:
    """The public key and proof of possession of `secret`, encoded for `registerOperator`."""
    public_key = backend.secret_to_public(secret)
    proof = G2ProofOfPossession.PopProve(int.from_bytes(secret, "big"))
    return public_key_to_eip2537(public_key), signature_to_eip2537(proof)


async def register_operator(
    registry: Contract,
    governor: TransactionSender,
    backend: BlsBackend,
    *,
    account: str,
    secret: bytes,
    peer_id: bytes,
    stake: int,
) -> int:
    """Admit `account` with the BLS key of `secret`; returns its operator id."""
    public_key, proof = registration_proof(backend, secret)
    receipt = await registry.transact(
        governor, "registerOperator", account, public_key, proof, peer_id, stake
    )
    [event] = registry.events(receipt, "OperatorRegistered")
    return event.args["id"]
