"""Provisioning a devnet chain: deploy every contract, fund and register the keepers."""

from __future__ import annotations

from dataclasses import dataclass

import trio
from eth_account.signers.local import LocalAccount

from node.bls import choose_backend
from node.chain import RpcClient, TransactionSender, deploy_consensus, deploy_core, revert_decoder
from protocol import register_operator

KEEPER_FUNDING = 100 * 10**18
KEEPER_STAKE = 1_000 * 10**18


@dataclass(frozen=True)
class KeeperKeys:
    """What the chain needs to know of a keeper: its operator account, BLS secret and peer id."""

    account: str
    bls_secret: bytes
    peer_id: bytes


@dataclass(frozen=True)
class Deployment:
    """The addresses of a provisioned network."""

    chain_id: int
    hub: str
    operator_registry: str
    attestation_center: str
    dispatcher: str
    operator_ids: dict[str, int]


async def provision(
    rpc_url: str, deployer: LocalAccount, dispatcher: str, keepers: list[KeeperKeys]
) -> Deployment:
    """Deploy and wire every contract, give each keeper ether for gas, and register it with equal stake."""
    async with RpcClient(rpc_url, revert_decoder=revert_decoder()) as rpc:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        sender = TransactionSender(rpc, deployer, chain_id)
        core = await deploy_core(sender, dispatcher=dispatcher)
        consensus = await deploy_consensus(sender, core.hub)
        async with trio.open_nursery() as nursery:
            for keeper in keepers:
                nursery.start_soon(sender.transact, keeper.account, b"", KEEPER_FUNDING)
        backend = choose_backend()
        operator_ids = {}
        for keeper in keepers:
            operator_ids[keeper.account] = await register_operator(
                consensus.operator_registry,
                sender,
                backend,
                account=keeper.account,
                secret=keeper.bls_secret,
                peer_id=keeper.peer_id,
                stake=KEEPER_STAKE,
            )
    return Deployment(
        chain_id=chain_id,
        hub=core.hub.address,
        operator_registry=consensus.operator_registry.address,
        attestation_center=consensus.attestation_center.address,
        dispatcher=dispatcher,
        operator_ids=operator_ids,
    )
