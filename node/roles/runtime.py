"""What every role needs: the chain and its contracts, the operator directory, the mesh."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from node.chain import Contract, RpcClient, TransactionSender, load_artifact, revert_decoder
from node.config import NodeSetup
from node.mesh import MeshConfig, MeshNode, parse_peer_addr
from protocol import OperatorDirectory

log = logging.getLogger(__name__)


@dataclass
class Chain:
    """The chain client and the network's contracts, from the genesis."""

    rpc: RpcClient
    chain_id: int
    sender: TransactionSender
    hub: Contract
    registry: Contract
    center: Contract


async def load_directory(setup: NodeSetup, chain: Chain) -> OperatorDirectory:
    """The operator directory, read once: active operators plus the genesis's dispatcher and aggregators."""
    genesis = setup.genesis
    peers = {parse_peer_addr(address).peer_id.to_base58() for address in genesis.aggregator_bootstrap}
    if genesis.dispatcher_peer_id is not None:
        peers.add(genesis.dispatcher_peer_id)
    directory = OperatorDirectory(
        chain.registry, {genesis.dispatcher, *genesis.aggregators}, frozenset(peers)
    )
    await directory.refresh()
    return directory


@asynccontextmanager
async def open_chain(setup: NodeSetup) -> AsyncIterator[Chain]:
    """The chain client bound to the genesis's contracts, signing as this node's operator."""
    genesis, settings = setup.genesis, setup.config.settings
    contracts = genesis.contracts
    async with RpcClient(settings.chain.rpc_url, revert_decoder=revert_decoder()) as rpc:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        if chain_id != genesis.chain_id:
            raise RuntimeError(f"chain.rpc_url serves chain {chain_id}, the genesis says {genesis.chain_id}")

        def bound(name: str, address: str | None) -> Contract:
            if address is None:
                raise RuntimeError(f"the genesis has no address for {name}: deploy the contracts first")
            return Contract(rpc, load_artifact(name), address)

        yield Chain(
            rpc=rpc,
            chain_id=chain_id,
            sender=TransactionSender(rpc, setup.operator, chain_id),
            hub=bound("TaskExecutionHub", contracts.task_execution_hub),
            registry=bound("OperatorRegistry", contracts.operator_registry),
            center=bound("AttestationCenter", contracts.attestation_center),
        )


@asynccontextmanager
async def open_mesh(setup: NodeSetup, directory: OperatorDirectory) -> AsyncIterator[MeshNode]:
    """This node's mesh host, bootstrapped to the genesis's aggregators."""
    settings = setup.config.settings
    config = MeshConfig(
        chain_id=setup.genesis.chain_id,
        listen=settings.mesh.listen,
        bootstrap=tuple(settings.mesh.bootstrap or setup.genesis.aggregator_bootstrap),
    )
    # Peer admission needs every peer id of the network, the gateway's included (see Genesis).
    admits = directory.allows_peer if setup.genesis.dispatcher_peer_id is not None else None
    async with MeshNode(
        setup.identity, setup.operator, directory.is_active, config, allowed_peers=admits
    ) as mesh:
        yield mesh


def aggregator_peers(setup: NodeSetup) -> list[str]:
    """The peer ids of the aggregators (from the genesis's bootstrap multiaddrs)."""
    return [parse_peer_addr(address).peer_id.to_base58() for address in setup.genesis.aggregator_bootstrap]
