"""TaskExecutionHub on anvil: signed, exactly-once, fee-capped execution of a task's call."""

from __future__ import annotations

import dataclasses

import pytest
from eth_utils import keccak

from node.chain.contracts import Contract, deploy, load_artifact, revert_decoder
from node.chain.errors import RevertError
from node.dispatcher.assignment import Assignment

from ..conftest import CHAIN_ID

ETH = 10**18
FEE = 10**15


@pytest.fixture
async def counter(core, accounts, sender_for) -> Contract:
    return await deploy(sender_for(accounts[0]), load_artifact("Counter"))


@pytest.fixture
async def setup(core, accounts, sender_for, counter, rpc):
    """The job owner (accounts[4]) has 1 ETH deposited; accounts[2] is the assigned performer."""
    owner = sender_for(accounts[4])
    await core.gas_registry.transact(owner, "deposit", value=ETH)
    latest = await rpc.call("eth_getBlockByNumber", "latest", False)
    assignment = Assignment(
        task_id=7,
        job_id=3,
        attempt=1,
        performer=accounts[2].address,
        owner=owner.address,
        target=counter.address,
        selector=counter.encode("increment")[:4],
        gas_limit=200_000,
        deadline=int(latest["timestamp"], 16) + 3600,
        max_fee=2 * FEE,
        trigger_evidence=keccak(b"interval tick 1"),
    )
    return assignment, sender_for(accounts[2])


def signed(assignment: Assignment, dispatcher, hub: Contract) -> bytes:
    return assignment.sign(dispatcher, CHAIN_ID, hub.address)


async def execute(
    hub: Contract, performer, assignment: Assignment, signature: bytes, calldata: bytes, fee=FEE
):
    return await hub.transact(performer, "execute", assignment.as_struct(), signature, calldata, fee)


async def test_python_digest_matches_the_contract(core, setup):
    assignment, _ = setup
    on_chain = await core.hub.call("assignmentDigest", assignment.as_struct())
    assert on_chain == assignment.digest(CHAIN_ID, core.hub.address)


async def test_executes_a_signed_assignment_exactly_once(core, accounts, setup, counter):
    assignment, performer = setup
    signature = signed(assignment, accounts[1], core.hub)
    receipt = await execute(core.hub, performer, assignment, signature, counter.encode("increment"))
    [event] = core.hub.events(receipt, "TaskExecuted")
    assert event.args["taskId"] == 7
    assert event.args["success"] is True
    assert event.args["fee"] == FEE
    assert await counter.call("count") == 1
    assert await core.hub.call("executedBy", 7) == performer.address
    assert await core.gas_registry.call("balanceOf", assignment.owner) == ETH - FEE
    assert await core.gas_registry.call("balanceOf", performer.address) == FEE

    # The same task id again, even as a fresh, correctly signed retry attempt, is refused.
    retry = dataclasses.replace(assignment, attempt=2)
    for again, again_signature in ((assignment, signature), (retry, signed(retry, accounts[1], core.hub))):
        with pytest.raises(RevertError) as caught:
            await execute(core.hub, performer, again, again_signature, counter.encode("increment"))
        assert caught.value.error_name == "AlreadyExecuted"
        assert caught.value.error_args == {"taskId": 7, "performer": performer.address}
    assert await counter.call("count") == 1
    assert await core.gas_registry.call("balanceOf", assignment.owner) == ETH - FEE


async def test_wrong_performer_is_rejected(core, accounts, setup, counter, sender_for):
    assignment, performer = setup
    intruder = sender_for(accounts[3])
    with pytest.raises(RevertError) as caught:
        await execute(
            core.hub,
            intruder,
            assignment,
            signed(assignment, accounts[1], core.hub),
            counter.encode("increment"),
        )
    assert caught.value.error_name == "WrongPerformer"
    assert caught.value.error_args == {"expected": performer.address, "caller": intruder.address}
    assert await counter.call("count") == 0


async def test_expired_deadline_is_rejected(core, accounts, setup, counter, rpc):
    assignment, performer = setup
    latest = await rpc.call("eth_getBlockByNumber", "latest", False)
    expired = dataclasses.replace(assignment, deadline=int(latest["timestamp"], 16) - 1)
    with pytest.raises(RevertError, match="AssignmentExpired"):
        await execute(
            core.hub, performer, expired, signed(expired, accounts[1], core.hub), counter.encode("increment")
        )
    assert await core.hub.call("executedBy", 7) == "0x" + "0" * 40


async def test_bad_signatures_are_rejected(core, accounts, setup, counter):
    assignment, performer = setup
    calldata = counter.encode("increment")
    not_dispatcher = signed(assignment, accounts[3], core.hub)
    with pytest.raises(RevertError) as caught:
        await execute(core.hub, performer, assignment, not_dispatcher, calldata)
    assert caught.value.error_name == "BadDispatcherSignature"
    assert caught.value.error_args == {"recovered": accounts[3].address}

    # The performer raises its own fee cap: the dispatcher's signature no longer matches.
    tampered = dataclasses.replace(assignment, max_fee=ETH)
    with pytest.raises(RevertError, match="BadDispatcherSignature"):
        await execute(core.hub, performer, tampered, signed(assignment, accounts[1], core.hub), calldata)
    # A signature for another hub (another domain) does not work here either.
    other_domain = assignment.sign(accounts[1], CHAIN_ID, counter.address)
    with pytest.raises(RevertError, match="BadDispatcherSignature"):
        await execute(core.hub, performer, assignment, other_domain, calldata)
    with pytest.raises(RevertError, match="BadDispatcherSignature"):
        await execute(core.hub, performer, assignment, b"\x01" * 64, calldata)
    assert await counter.call("count") == 0


async def test_fee_above_the_signed_max_is_rejected(core, accounts, setup, counter):
    assignment, performer = setup
    signature = signed(assignment, accounts[1], core.hub)
    with pytest.raises(RevertError) as caught:
        await execute(
            core.hub, performer, assignment, signature, counter.encode("increment"), fee=2 * FEE + 1
        )
    assert caught.value.error_args == {"fee": 2 * FEE + 1, "maxFee": 2 * FEE}
    await execute(core.hub, performer, assignment, signature, counter.encode("increment"), fee=2 * FEE)
    assert await core.gas_registry.call("balanceOf", performer.address) == 2 * FEE


async def test_calldata_must_match_the_signed_selector(core, accounts, setup, counter):
    assignment, performer = setup
    signature = signed(assignment, accounts[1], core.hub)
    with pytest.raises(RevertError, match="SelectorMismatch"):
        await execute(core.hub, performer, assignment, signature, counter.encode("incrementBy", 100))


async def test_owner_without_balance_cannot_be_charged(core, accounts, setup, counter):
    assignment, performer = setup
    broke = dataclasses.replace(assignment, owner=accounts[6].address)
    with pytest.raises(RevertError) as caught:
        await execute(
            core.hub, performer, broke, signed(broke, accounts[1], core.hub), counter.encode("increment")
        )
    # The registry's error surfaces, decoded, through the hub.
    assert caught.value.error_name == "InsufficientBalance"
    assert await core.hub.call("executedBy", 7) == "0x" + "0" * 40


async def test_a_reverting_target_is_recorded_as_failed(core, accounts, setup, counter):
    assignment, performer = setup
    failing = dataclasses.replace(assignment, selector=counter.encode("fail")[:4])
    receipt = await execute(
        core.hub, performer, failing, signed(failing, accounts[1], core.hub), counter.encode("fail")
    )
    assert receipt.status
    [executed] = core.hub.events(receipt, "TaskExecuted")
    assert executed.args["success"] is False
    [reverted] = core.hub.events(receipt, "TargetReverted")
    recorded = revert_decoder().decode(reverted.args["revertData"])
    assert (recorded.error_name, recorded.error_args) == ("ForcedFailure", {"count": 0})
    assert await core.hub.call("executedBy", 7) == performer.address
    assert await core.gas_registry.call("balanceOf", performer.address) == FEE


async def test_a_performer_cannot_starve_the_target_of_gas(core, accounts, setup, counter):
    assignment, performer = setup
    hungry = dataclasses.replace(assignment, gas_limit=5_000_000)
    signature = signed(hungry, accounts[1], core.hub)
    calldata = core.hub.encode("execute", hungry.as_struct(), signature, counter.encode("increment"), FEE)
    with pytest.raises(RevertError, match="InsufficientGasForTarget"):
        await performer.transact(core.hub.address, calldata, gas=400_000)
    assert await core.hub.call("executedBy", 7) == "0x" + "0" * 40
