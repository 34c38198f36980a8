"""Deploying the protocol's contracts as one set, wired together."""

from __future__ import annotations

from dataclasses import dataclass

from node.chain.contracts import Contract, deploy, load_artifact
from node.chain.transactions import TransactionSender


@dataclass(frozen=True)
class CoreContracts:
    """The execution side of one network: TaskExecutionHub (jobs, balances, escrow, execution)."""

    hub: Contract


@dataclass(frozen=True)
class ConsensusContracts:
    """The contracts that hold the operator set and verify attestations."""

    operator_registry: Contract
    attestation_center: Contract


async def deploy_core(deployer: TransactionSender, *, dispatcher: str) -> CoreContracts:
    """Deploy TaskExecutionHub with `dispatcher`; the deployer becomes its governor (hand it
    over afterwards with `proposeGovernor` / `acceptGovernor`)."""
    hub = await deploy(deployer, load_artifact("TaskExecutionHub"), deployer.address, dispatcher)
    return CoreContracts(hub=hub)


async def deploy_consensus(deployer: TransactionSender, hub: Contract) -> ConsensusContracts:
    """Deploy OperatorRegistry and the AttestationCenter that reads it and settles `hub`'s
    escrows, and wire them: the center becomes the hub's settler and the registry's penaliser.

    The deployer must govern `hub`; it becomes the registry's governor.
    """
    registry = await deploy(deployer, load_artifact("OperatorRegistry"), deployer.address)
    center = await deploy(deployer, load_artifact("AttestationCenter"), registry.address, hub.address)
    await hub.transact(deployer, "proposeSettler", center.address)
    await registry.transact(deployer, "proposeAttestationCenter", center.address)
    return ConsensusContracts(operator_registry=registry, attestation_center=center)
