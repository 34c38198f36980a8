"""Balances and escrow (TriggerGasRegistry, part of TaskExecutionHub) on anvil: deposits,
withdrawals, escrows released only by the settler, and time-locked governance."""

from __future__ import annotations

import pytest

from node.chain import RevertError

from ..hub_helpers import ETH, FEE, TASK_CLOSED, TASK_EXECUTED, TASK_OPEN


async def eth_balance(rpc, address: str) -> int:
    return int(await rpc.call("eth_getBalance", address, "latest"), 16)


async def test_deposit_credits_the_sender_or_a_named_account(core, accounts, sender_for):
    alice, bob = sender_for(accounts[2]), sender_for(accounts[3])
    registry = core.hub
    receipt = await registry.transact(alice, "deposit", value=ETH)
    [event] = registry.events(receipt, "Deposited")
    assert event.args == {"account": alice.address, "from": alice.address, "amount": ETH, "balance": ETH}
    await registry.transact(alice, "depositFor", bob.address, value=2 * ETH)
    assert await registry.call("balanceOf", alice.address) == ETH
    assert await registry.call("balanceOf", bob.address) == 2 * ETH


async def test_zero_deposit_is_rejected(core, accounts, sender_for):
    with pytest.raises(RevertError, match=r"ZeroAmount\(\)"):
        await core.hub.transact(sender_for(accounts[2]), "deposit", value=0)


async def test_withdraw_pays_out_and_never_overdraws(core, accounts, sender_for, rpc):
    alice = sender_for(accounts[2])
    payee = accounts[5].address
    registry = core.hub
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


async def test_only_the_settler_releases_an_escrow(world, accounts, sender_for):
    job_id, terms, calldata = await world.increment_job()
    await world.execute(world.assignment(1, job_id, terms), terms, calldata)
    settler = sender_for(accounts[7])
    for caller in (world.owner, world.performer, world.governor):
        with pytest.raises(RevertError, match="NotSettler"):
            await world.hub.transact(caller, "settle", 1, job_id, 1, world.performer.address, True, False)
    await world.hub.transact(world.governor, "proposeSettler", settler.address)  # unset: at once
    # An approval must name the execution exactly: job, attempt and performer.
    for wrong in ((job_id + 1, 1, world.performer.address), (job_id, 2, world.performer.address),
                  (job_id, 1, accounts[3].address)):  # fmt: skip
        with pytest.raises(RevertError, match="ExecutionMismatch"):
            await world.hub.transact(settler, "settle", 1, *wrong, True, False)
    with pytest.raises(RevertError, match="NotExecuted"):
        await world.hub.transact(settler, "settle", 2, job_id, 1, world.performer.address, True, False)
    await world.hub.transact(settler, "settle", 1, job_id, 1, world.performer.address, True, False)
    assert await world.balance(world.performer.address) == FEE
    assert await world.hub.call("escrowOf", 1, job_id, 1, world.performer.address) == (True, FEE, True)
    with pytest.raises(RevertError, match="AlreadySettled"):
        await world.hub.transact(settler, "settle", 1, job_id, 1, world.performer.address, False, False)


async def test_a_rejection_refunds_the_owner(world, accounts, sender_for):
    job_id, terms, calldata = await world.increment_job()
    await world.execute(world.assignment(1, job_id, terms), terms, calldata)
    settler = sender_for(accounts[7])
    await world.hub.transact(world.governor, "proposeSettler", settler.address)
    # A rejection, too, must name the execution.
    with pytest.raises(RevertError, match="ExecutionMismatch"):
        await world.hub.transact(settler, "settle", 1, job_id, 2, world.performer.address, False, False)
    assert await world.balance(world.owner.address) == ETH - FEE
    await world.hub.transact(settler, "settle", 1, job_id, 1, world.performer.address, False, False)
    assert await world.balance(world.owner.address) == ETH
    assert await world.balance(world.performer.address) == 0


async def test_a_proven_rejection_reopens_the_task_for_later_attempts_only(world, accounts, sender_for):
    """A rejection that proved the execution wrong (`reopen`) lets a later attempt of the task
    execute, once; the rejected attempt, and any earlier, stay refused. A rejection that
    proves nothing (a third of the stake) refunds but reopens nothing."""
    job_id, terms, calldata = await world.increment_job()
    settler = sender_for(accounts[7])
    await world.hub.transact(world.governor, "proposeSettler", settler.address)
    await world.execute(world.assignment(1, job_id, terms, attempt=2), terms, calldata)
    receipt = await world.hub.transact(settler, "settle", 1, job_id, 2, world.performer.address, False, True)
    [reopened] = world.hub.events(receipt, "TaskReopened")
    assert (reopened.args["taskId"], reopened.args["attempt"]) == (1, 2)
    assert await world.balance(world.owner.address) == ETH  # refunded
    assert await world.hub.call("taskState", 1) == TASK_OPEN
    for stale in (1, 2):
        with pytest.raises(RevertError, match="AlreadyExecuted"):
            await world.execute(world.assignment(1, job_id, terms, attempt=stale), terms, calldata)
    other = sender_for(accounts[6])
    retry = world.assignment(1, job_id, terms, attempt=3, performer=other.address)
    await world.execute(retry, terms, calldata, performer=other)
    assert await world.hub.call("escrowOf", 1, job_id, 3, other.address) == (True, FEE, False)
    with pytest.raises(RevertError, match="AlreadyExecuted"):  # once again, until decided
        await world.execute(world.assignment(1, job_id, terms, attempt=4), terms, calldata)
    # Approved, it is done for good.
    await world.hub.transact(settler, "settle", 1, job_id, 3, other.address, True, False)
    with pytest.raises(RevertError, match="AlreadyExecuted"):
        await world.execute(world.assignment(1, job_id, terms, attempt=5), terms, calldata)
    # A rejection that does not reopen closes the task as before.
    await world.execute(world.assignment(2, job_id, terms), terms, calldata)
    closed = await world.hub.transact(settler, "settle", 2, job_id, 1, world.performer.address, False, False)
    assert world.hub.events(closed, "TaskReopened") == []
    with pytest.raises(RevertError, match="AlreadyExecuted"):
        await world.execute(world.assignment(2, job_id, terms, attempt=2), terms, calldata)


async def test_a_reopened_task_keeps_its_word_from_older_tasks(world, accounts, sender_for):
    """An older task never takes the word of a newer reopened one (it could then run twice)."""
    job_id, terms, calldata = await world.increment_job()
    ring = await world.hub.call("EXECUTION_RING")
    settler = sender_for(accounts[7])
    await world.hub.transact(world.governor, "proposeSettler", settler.address)
    await world.execute(world.assignment(1, job_id, terms), terms, calldata)
    await world.hub.transact(settler, "settle", 1, job_id, 1, world.performer.address, True, False)
    await world.execute(world.assignment(1 + ring, job_id, terms), terms, calldata)
    await world.hub.transact(settler, "settle", 1 + ring, job_id, 1, world.performer.address, False, True)
    with pytest.raises(RevertError, match="TaskSuperseded"):
        await world.execute(world.assignment(1, job_id, terms, attempt=2), terms, calldata)
    assert [await world.hub.call("taskState", t) for t in (1, 1 + ring)] == [TASK_CLOSED, TASK_OPEN]


async def test_low_dispatcher_and_settler_changes_are_time_locked(world, accounts, sender_for, rpc):
    """The governor could redirect the hub and the dispatcher and drain balances at once.
    Now a change waits GOVERNANCE_DELAY, in public, so owners can withdraw first."""
    hub, governor = world.hub, world.governor
    with pytest.raises(RevertError, match="NotGovernor"):
        await hub.transact(world.owner, "proposeDispatcher", accounts[5].address)
    receipt = await hub.transact(governor, "proposeDispatcher", accounts[5].address)
    [proposed] = hub.events(receipt, "ChangeProposed")
    assert proposed.args["value"] == accounts[5].address
    assert await hub.call("dispatcher") == accounts[1].address
    with pytest.raises(RevertError, match="ChangeNotReady"):
        await hub.transact(governor, "applyDispatcher")
    delay = await hub.call("GOVERNANCE_DELAY")
    await rpc.call("evm_increaseTime", hex(delay))
    await rpc.call("evm_mine")
    await hub.transact(governor, "applyDispatcher")
    assert await hub.call("dispatcher") == accounts[5].address
    with pytest.raises(RevertError, match="NoPendingChange"):
        await hub.transact(governor, "applyDispatcher")
    # The settler: set at once while unset (deployment wiring), then only after the delay.
    await hub.transact(governor, "proposeSettler", accounts[6].address)
    await hub.transact(governor, "proposeSettler", accounts[7].address)
    assert await hub.call("settler") == accounts[6].address
    with pytest.raises(RevertError, match="ZeroAddress"):
        await hub.transact(governor, "proposeSettler", "0x" + "00" * 20)


async def test_an_undecided_escrow_is_refunded_to_the_owner_after_the_timeout(world, rpc):
    """A task nobody decides (no quorum, aggregators down) must not lock the owner's fee forever."""
    job_id, terms, calldata = await world.increment_job()
    await world.execute(world.assignment(1, job_id, terms), terms, calldata)
    key = (1, job_id, 1, world.performer.address)
    with pytest.raises(RevertError, match="EscrowNotExpired"):
        await world.hub.transact(world.performer, "refundExpired", *key)
    await rpc.call("evm_increaseTime", hex(await world.hub.call("ESCROW_TIMEOUT")))
    await rpc.call("evm_mine")
    with pytest.raises(RevertError, match="ExecutionMismatch"):  # it must name the execution
        await world.hub.transact(world.performer, "refundExpired", 1, job_id, 2, world.performer.address)
    await world.hub.transact(world.performer, "refundExpired", *key)  # anyone: it goes to the owner
    assert await world.balance(world.owner.address) == ETH
    assert await world.hub.call("escrowOf", *key) == (True, FEE, True)
    with pytest.raises(RevertError, match="AlreadySettled"):
        await world.hub.transact(world.performer, "refundExpired", *key)


async def test_a_ring_word_passes_to_a_newer_task_and_exactly_once_outlives_the_record(
    world, accounts, sender_for
):
    """Task t records its execution in word t % EXECUTION_RING, shared by every performer. A
    newer task takes the word; a settled record is then gone, and task t can never execute
    again (exactly once outlives the record)."""
    job_id, terms, calldata = await world.increment_job()
    ring = await world.hub.call("EXECUTION_RING")
    await world.execute(world.assignment(1, job_id, terms), terms, calldata)
    settler = sender_for(accounts[7])
    await world.hub.transact(world.governor, "proposeSettler", settler.address)
    await world.hub.transact(settler, "settle", 1, job_id, 1, world.performer.address, True, False)
    other = sender_for(accounts[6])
    later = world.assignment(1 + ring, job_id, terms, performer=other.address)
    await world.execute(later, terms, calldata, performer=other)
    assert await world.hub.call("escrowOf", 1 + ring, job_id, 1, other.address) == (True, FEE, False)
    assert await world.hub.call("escrowOf", 1, job_id, 1, world.performer.address) == (False, 0, False)
    states = [await world.hub.call("taskState", t) for t in (1, 1 + ring, 1 + 2 * ring, 2**64)]
    assert states == [TASK_CLOSED, TASK_EXECUTED, TASK_OPEN, TASK_CLOSED]
    # Task 1, even as a fresh attempt, and a decision naming it are refused for good.
    with pytest.raises(RevertError) as caught:
        await world.execute(world.assignment(1, job_id, terms, attempt=2), terms, calldata)
    assert (caught.value.error_name, caught.value.error_args) == ("TaskSuperseded", {"taskId": 1})
    with pytest.raises(RevertError, match="TaskSuperseded"):
        await world.hub.transact(settler, "settle", 1, job_id, 1, world.performer.address, False, False)


async def test_an_undecided_escrow_blocks_nobody(world, accounts, sender_for, rpc):
    """Review: a keeper that executes and never reports leaves its escrow undecided. The newer
    task of another owner and performer still takes the word; the old escrow moves aside, where
    its decision or its refund after ESCROW_TIMEOUT still finds it."""
    job_id, terms, calldata = await world.increment_job()
    ring = await world.hub.call("EXECUTION_RING")
    await world.execute(world.assignment(5, job_id, terms), terms, calldata)  # never decided
    stranger = sender_for(accounts[8])
    await world.hub.transact(stranger, "deposit", value=ETH)
    other_job = await world.register(terms, owner=stranger)
    other = sender_for(accounts[6])
    for round_ in (1, 2):
        task = 5 + round_ * ring
        assignment = world.assignment(task, other_job, terms, performer=other.address)
        await world.execute(assignment, terms, calldata, performer=other)
        assert await world.hub.call("escrowOf", task, other_job, 1, other.address) == (True, FEE, False)
    key = (5, job_id, 1, world.performer.address)
    assert await world.hub.call("taskState", 5) == TASK_EXECUTED
    assert await world.hub.call("escrowOf", *key) == (True, FEE, False)
    with pytest.raises(RevertError, match="TaskSuperseded"):
        await world.execute(world.assignment(5, job_id, terms, attempt=2), terms, calldata)
    await rpc.call("evm_increaseTime", hex(await world.hub.call("ESCROW_TIMEOUT")))
    await rpc.call("evm_mine")
    await world.hub.transact(stranger, "refundExpired", *key)
    assert await world.balance(world.owner.address) == ETH
    assert await world.hub.call("escrowOf", *key) == (True, FEE, True)
    with pytest.raises(RevertError, match="AlreadySettled"):
        await world.hub.transact(stranger, "refundExpired", *key)


async def test_a_task_id_beyond_64_bits_is_refused(world):
    job_id, terms, calldata = await world.increment_job()
    with pytest.raises(RevertError, match="TaskIdTooLarge"):
        await world.execute(world.assignment(2**64, job_id, terms), terms, calldata)
