"""TriggerGasRegistry on anvil: deposits, withdrawals, and charges only by the hub."""

from __future__ import annotations

import pytest

from node.chain.errors import RevertError

ETH = 10**18


async def eth_balance(rpc, address: str) -> int:
    return int(await rpc.call("eth_getBalance", address, "latest"), 16)


async def test_deposit_credits_the_sender_or_a_named_account(core, accounts, sender_for):
    alice, bob = sender_for(accounts[2]), sender_for(accounts[3])
    registry = core.gas_registry
    receipt = await registry.transact(alice, "deposit", value=ETH)
    [event] = registry.events(receipt, "Deposited")
    assert event.args == {"account": alice.address, "from": alice.address, "amount": ETH, "balance": ETH}
    await registry.transact(alice, "depositFor", bob.address, value=2 * ETH)
    assert await registry.call("balanceOf", alice.address) == ETH
    assert await registry.call("balanceOf", bob.address) == 2 * ETH


async def test_zero_deposit_is_rejected(core, accounts, sender_for):
    with pytest.raises(RevertError, match=r"ZeroAmount\(\)"):
        await core.gas_registry.transact(sender_for(accounts[2]), "deposit", value=0)


async def test_withdraw_pays_out_and_never_overdraws(core, accounts, sender_for, rpc):
    alice = sender_for(accounts[2])
    payee = accounts[5].address
    registry = core.gas_registry
    await registry.transact(alice, "deposit", value=3 * ETH)
    before = await eth_balance(rpc, payee)
    receipt = await registry.transact(alice, "withdraw", ETH, payee)
    assert registry.events(receipt, "Withdrawn")[0].args["balance"] == 2 * ETH
    assert await eth_balance(rpc, payee) == before + ETH
    assert await registry.call("balanceOf", alice.address) == 2 * ETH

    with pytest.raises(RevertError) as caught:
        await registry.transact(alice, "withdraw", 5 * ETH, payee)
    assert caught.value.error_name == "InsufficientBalance"
    assert caught.value.error_args == {"account": alice.address, "balance": 2 * ETH, "needed": 5 * ETH}
    # Another account cannot withdraw what it never deposited.
    with pytest.raises(RevertError, match="InsufficientBalance"):
        await registry.transact(sender_for(accounts[3]), "withdraw", 1, accounts[3].address)
    assert await registry.call("balanceOf", alice.address) == 2 * ETH


async def test_only_the_hub_may_charge(core, accounts, sender_for):
    alice, governor = sender_for(accounts[2]), sender_for(accounts[0])
    registry = core.gas_registry
    await registry.transact(alice, "deposit", value=ETH)
    for caller in (alice, governor):
        with pytest.raises(RevertError) as caught:
            await registry.transact(caller, "charge", alice.address, caller.address, 1, ETH)
        assert caught.value.error_name == "NotHub"
    assert await registry.call("balanceOf", alice.address) == ETH
    assert await registry.call("hub") == core.hub.address


async def test_only_the_governor_may_change_the_hub(core, accounts, sender_for):
    with pytest.raises(RevertError, match="NotGovernor"):
        await core.gas_registry.transact(sender_for(accounts[2]), "setHub", accounts[2].address)
    assert await core.gas_registry.call("hub") == core.hub.address
