"""Which libp2p peers a node admits (security review finding 8: any peer could connect): the
registry's active operators, and the network's aggregators and gateway from the genesis."""

from __future__ import annotations

from eth_account import Account
from libp2p.peer.id import ID

from node.chain import Contract, TransactionSender, load_artifact
from node.devnet import KeeperKeys, provision
from node.mesh import identity_from_seed
from protocol import OperatorDirectory, load_operator_set

from ..conftest import CHAIN_ID
from ..consensus_helpers import bls_secret


def peer(seed: int) -> ID:
    return ID.from_pubkey(identity_from_seed(bytes([seed]) * 32).public_key)


async def test_only_active_operators_and_the_infrastructure_are_admitted(anvil, accounts, rpc):
    keepers = [Account.from_key(bytes([i + 1]) * 32) for i in range(3)]
    keys = [KeeperKeys(k.address, bls_secret(i), peer(i + 1).to_bytes()) for i, k in enumerate(keepers)]
    deployment = await provision(anvil.http_url, accounts[0], accounts[1].address, keys)
    registry = Contract(rpc, load_artifact("OperatorRegistry"), deployment.operator_registry)
    gateway, aggregator, stranger = peer(50), peer(51), peer(52)
    directory = OperatorDirectory(registry, set(), frozenset({gateway.to_base58(), aggregator.to_base58()}))
    await directory.refresh()
    admitted = [directory.allows_peer(peer(i + 1).to_base58()) for i in range(3)]
    assert admitted == [True, True, True]
    assert directory.allows_peer(gateway.to_base58())
    assert directory.allows_peer(aggregator.to_base58())
    assert not directory.allows_peer(stranger.to_base58())
    # A deactivated operator is no longer admitted once the directory is refreshed (the mesh
    # rechecks open connections and drops it).
    await registry.transact(TransactionSender(rpc, accounts[0], CHAIN_ID), "deactivate", 0)
    await directory.refresh()
    assert not directory.allows_peer(peer(1).to_base58())
    assert [op.id for op in (await load_operator_set(registry)).active] == [1, 2]
