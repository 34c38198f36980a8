"""Shared fixtures: a real anvil per test (it starts in ~50 ms), clients, accounts, deployed contracts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.chain import (
    Anvil,
    CoreContracts,
    RpcClient,
    TransactionSender,
    deploy,
    deploy_core,
    load_artifact,
    revert_decoder,
)

from .hub_helpers import ETH, HubWorld

ROOT = Path(__file__).resolve().parents[1]
CHAIN_ID = json.loads((ROOT / "genesis.json").read_text())["chainId"]


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """anvil with instant mining."""
    with Anvil(chain_id=CHAIN_ID) as node:
        yield node


@pytest.fixture
def timed_anvil() -> Iterator[Anvil]:
    """anvil that mines a block every second, for tests where pending transactions matter."""
    with Anvil(chain_id=CHAIN_ID, block_time=1) as node:
        yield node


@pytest.fixture
async def rpc(anvil: Anvil) -> AsyncIterator[RpcClient]:
    async with RpcClient(anvil.http_url, revert_decoder=revert_decoder()) as client:
        yield client


@pytest.fixture
def accounts(anvil: Anvil) -> list[LocalAccount]:
    """anvil's funded dev accounts: [0] deploys and governs, [1] dispatches, the rest are free."""
    return [Account.from_key(key) for key in anvil.private_keys]


@pytest.fixture
def sender_for(rpc: RpcClient) -> Callable[[LocalAccount], TransactionSender]:
    """Make a transaction sender for an account."""
    return lambda account: TransactionSender(rpc, account, CHAIN_ID)


@pytest.fixture
async def core(
    accounts: list[LocalAccount], sender_for: Callable[[LocalAccount], TransactionSender]
) -> CoreContracts:
    """TaskExecutionHub, deployed and governed by accounts[0]; accounts[1] dispatches."""
    return await deploy_core(sender_for(accounts[0]), dispatcher=accounts[1].address)


@pytest.fixture
async def world(
    core: CoreContracts, accounts: list[LocalAccount], sender_for: Callable[[LocalAccount], TransactionSender]
) -> HubWorld:
    """The hub with a Counter target; accounts[4] owns jobs (1 ETH deposited), accounts[2] performs."""
    counter = await deploy(sender_for(accounts[0]), load_artifact("Counter"))
    owner = sender_for(accounts[4])
    await core.hub.transact(owner, "deposit", value=ETH)
    return HubWorld(
        hub=core.hub,
        counter=counter,
        governor=sender_for(accounts[0]),
        dispatcher=accounts[1],
        owner=owner,
        performer=sender_for(accounts[2]),
        chain_id=CHAIN_ID,
    )
