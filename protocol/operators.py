"""The operator set as OperatorRegistry holds it: reading it, admitting an operator, and the
directory every role keeps of who may talk on the mesh."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import trio
from eth_utils import to_checksum_address
from py_ecc.bls import G2ProofOfPossession

from node.bls import BlsBackend, public_key_from_eip2537, public_key_to_eip2537, signature_to_eip2537
from node.chain import Contract, TransactionSender
from node.mesh import peer_id_text

log = logging.getLogger(__name__)


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


class OperatorDirectory:
    """The registered operators, re-read from the registry now and then; who may talk on the mesh.

    Besides active operators, the dispatcher and the aggregators named in the genesis are
    known senders: they sign mesh messages but hold no stake.
    """

    def __init__(
        self, registry: Contract, infrastructure: set[str], infrastructure_peers: frozenset[str] = frozenset()
    ) -> None:
        self.registry = registry
        self.infrastructure = {to_checksum_address(a) for a in infrastructure}
        self.infrastructure_peers = set(infrastructure_peers)
        self.operators = OperatorSet({})
        self._by_account: dict[str, Operator] = {}
        self._active_peers: set[str | None] = set()

    async def refresh(self) -> None:
        """Read the operator set again."""
        self.operators = await load_operator_set(self.registry)
        self._by_account = {op.account: op for op in self.operators.operators.values()}
        self._active_peers = {peer_id_text(op.peer_id) for op in self.operators.active} - {None}

    def allows_peer(self, peer_id: str) -> bool:
        """Whether the mesh admits connections from `peer_id` (base58): the active operators'
        registered peers, the aggregators and the gateway."""
        return peer_id in self._active_peers or peer_id in self.infrastructure_peers

    async def keep_fresh(self, interval: float) -> None:
        """Refresh every `interval` seconds, forever (a failed read keeps the last set)."""
        while True:
            await trio.sleep(interval)
            try:
                await self.refresh()
            except Exception as error:  # the chain may be briefly unreachable; keep what we have
                log.warning("operator set refresh failed: %s", error)

    def is_active(self, address: str) -> bool:
        """Whether envelopes signed by `address` are accepted."""
        operator = self._by_account.get(address)
        return address in self.infrastructure or (operator is not None and operator.active)

    def operator(self, address: str) -> Operator | None:
        """The operator whose account is `address`."""
        return self._by_account.get(address)
