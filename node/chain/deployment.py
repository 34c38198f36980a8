"""Deploying the protocol's contracts as one set, wired together."""

from __future__ import annotations

from dataclasses import dataclass

from node.chain.contracts import Contract, deploy, load_artifact
from node.chain.transactions import TransactionSender


@dataclass(frozen=True)
class ConsensusContracts:
    """The contracts that hold the operator set and verify attestations."""

    operator_registry: Contract
    attestation_center: Contract


@dataclass(frozen=True)
class CoreContracts:
    """The execution-side contracts of one network."""

    job_registry: Contract
    gas_registry: Contract
    hub: Contract


async def deploy_core(deployer: TransactionSender, *, dispatcher: str) -> CoreContracts:
    """Deploy JobRegistry, TriggerGasRegistry and TaskExecutionHub, and let the hub charge fees.

    The deployer becomes the governor of the registry and the hub; hand governance
    over afterwards with `proposeGovernor` / `acceptGovernor`.
    """
    job_registry = await deploy(deployer, load_artifact("JobRegistry"))
    gas_registry = await deploy(deployer, load_artifact("TriggerGasRegistry"), deployer.address)
    hub = await deploy(
        deployer, load_artifact("TaskExecutionHub"), deployer.address, gas_registry.address, dispatcher
    )
    await gas_registry.transact(deployer, "setHub", hub.address)
    return CoreContracts(job_registry=job_registry, gas_registry=gas_registry, hub=hub)


async def deploy_consensus(deployer: TransactionSender) -> ConsensusContracts:
    """Deploy OperatorRegistry (governed by the deployer) and the AttestationCenter that reads it."""
    registry = await deploy(deployer, load_artifact("OperatorRegistry"), deployer.address)
    center = await deploy(deployer, load_artifact("AttestationCenter"), registry.address)
    return ConsensusContracts(operator_registry=registry, attestation_center=center)
