"""Provisioning a devnet chain deploys, wires, funds and registers everything."""

from __future__ import annotations

from eth_account import Account

from node.bls import choose_backend
from node.chain import Contract, load_artifact
from node.devnet import KeeperKeys, provision

# The devnet's stake per keeper, an internal the test checks.
from node.devnet.chain import KEEPER_STAKE
from protocol import load_operator_set

from ..consensus_helpers import bls_secret


async def test_provision_registers_funded_keepers(anvil, accounts, rpc):
    keepers = [Account.from_key(bytes([i + 1]) * 32) for i in range(3)]
    keys = [KeeperKeys(k.address, bls_secret(i), b"peer-%d" % i) for i, k in enumerate(keepers)]
    deployment = await provision(anvil.http_url, accounts[0], accounts[1].address, keys)
    assert deployment.operator_ids == {k.address: i for i, k in enumerate(keepers)}
    registry = Contract(rpc, load_artifact("OperatorRegistry"), deployment.operator_registry)
    operators = await load_operator_set(registry)
    assert operators.total_stake == 3 * KEEPER_STAKE
    assert [op.public_key for op in operators.active] == [
        choose_backend().secret_to_public(bls_secret(i)) for i in range(3)
    ]
    # Wired: the center settles the hub's escrows and penalises through the registry.
    hub = Contract(rpc, load_artifact("TaskExecutionHub"), deployment.hub)
    assert await hub.call("settler") == deployment.attestation_center
    assert await hub.call("dispatcher") == accounts[1].address
    assert await registry.call("attestationCenter") == deployment.attestation_center
    for keeper in keepers:
        assert int(await rpc.call("eth_getBalance", keeper.address, "latest"), 16) > 0
