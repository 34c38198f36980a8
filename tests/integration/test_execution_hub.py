"""TaskExecutionHub on anvil: exactly-once execution of what the owner consented to, through the
owner's forwarder, with the fee in escrow. Tests named `finding<N>` perform an attack from the
security review (issue 7) and show that it fails."""

from __future__ import annotations

import dataclasses

import pytest

from node.chain import Contract, RevertError, deploy, load_artifact, revert_decoder
from protocol import JobTerms, job_id_of

from ..conftest import CHAIN_ID
from ..hub_helpers import ETH, FEE, TASK_EXECUTED, TASK_OPEN, TRIGGER, HubWorld


async def test_python_digests_match_the_contract(world: HubWorld):
    terms = world.terms(world.counter.encode("increment"))
    assignment = world.assignment(7, job_id_of(world.owner.address, 1), terms)
    assert await world.hub.call("assignmentDigest", assignment.as_struct()) == assignment.digest(
        CHAIN_ID, world.hub.address
    )
    assert await world.hub.call("hashTerms", terms.as_struct()) == terms.hash()
    assert await world.hub.call("jobIdOf", world.owner.address, 5) == job_id_of(world.owner.address, 5)


async def test_executes_exactly_once_through_the_owners_forwarder(world: HubWorld):
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    job_id = await world.register(terms)
    assignment = world.assignment(7, job_id, terms)
    receipt = await world.execute(assignment, terms, calldata)
    [executed] = world.hub.events(receipt, "TaskExecuted")
    assert (executed.args["taskId"], executed.args["jobId"], executed.args["success"]) == (7, job_id, True)
    # The target is called by the owner's own forwarder, never by the hub.
    [incremented] = world.counter.events(receipt, "Incremented")
    forwarder = await world.hub.call("forwarderOf", world.owner.address)
    assert incremented.args["caller"] == forwarder != world.hub.address
    assert await world.counter.call("count") == 1
    # The fee left the owner's balance and waits in escrow; the performer has nothing yet.
    assert await world.balance(world.owner.address) == ETH - FEE
    assert await world.balance(world.performer.address) == 0
    assert await world.hub.call("escrowOf", 7, job_id, 1, world.performer.address) == (True, FEE, False)

    # The same task id again, even as a fresh, correctly signed retry attempt, is refused.
    retry = dataclasses.replace(assignment, attempt=2)
    for again in (assignment, retry):
        with pytest.raises(RevertError) as caught:
            await world.execute(again, terms, calldata)
        assert caught.value.error_name == "AlreadyExecuted"
    assert await world.counter.call("count") == 1
    assert await world.balance(world.owner.address) == ETH - FEE


async def test_a_script_job_may_skip_its_call_and_a_static_job_may_not(world: HubWorld):
    """A custom-logic script that says "not now" is a paid no-op: the fee goes into escrow as
    for a call, the hub records a skip and calls nothing. Static arguments allow no skip."""
    script = b"\x11" * 32  # the hub does not read a script's hash
    terms = JobTerms.dynamic_call(world.counter.address, "increment()", script, 200_000, 2 * FEE, TRIGGER)
    job_id = await world.register(terms)
    receipt = await world.execute(world.assignment(7, job_id, terms), terms, b"")
    [skipped] = world.hub.events(receipt, "TaskSkipped")
    assert (skipped.args["taskId"], skipped.args["jobId"]) == (7, job_id)
    assert world.hub.events(receipt, "TaskExecuted") == []
    assert world.counter.events(receipt, "Incremented") == []
    assert await world.counter.call("count") == 0
    assert await world.hub.call("escrowOf", 7, job_id, 1, world.performer.address) == (True, FEE, False)

    static = world.terms(world.counter.encode("increment"))
    static_job = await world.register(static, nonce=2)
    with pytest.raises(RevertError, match="CallNotAllowed"):
        await world.execute(world.assignment(8, static_job, static), static, b"")


async def test_finding1_a_job_cannot_reach_privileged_functions_or_other_owners(
    world: HubWorld, accounts, sender_for
):
    """The review drained a victim's balance with a job whose target was the gas registry's
    `charge`. Now nothing that moves money is callable by a job: an attacker's job aimed at
    the hub itself runs from the attacker's forwarder, which the hub trusts for nothing."""
    attacker = sender_for(accounts[6])
    await world.hub.transact(attacker, "deposit", value=FEE * 10)
    victim_before = await world.balance(world.owner.address)
    attacks = [
        # Release a (future) escrow to the attacker, as the settler would.
        world.hub.encode("settle", 1, job_id_of(world.owner.address, 1), 1, attacker.address, True, False),
        # Withdraw "its" balance: the forwarder's, which is zero.
        world.hub.encode("withdraw", 1, attacker.address),
        # Cancel the victim's job.
        world.hub.encode("cancelJob", job_id_of(world.owner.address, 1)),
    ]
    for task_id, calldata in enumerate(attacks, start=100):
        terms = JobTerms.static_call(world.hub.address, calldata, 200_000, FEE, TRIGGER)
        job_id = await world.register(terms, nonce=task_id, owner=attacker)
        receipt = await world.execute(world.assignment(task_id, job_id, terms), terms, calldata)
        [executed] = world.hub.events(receipt, "TaskExecuted")
        assert executed.args["success"] is False, calldata[:4].hex()
    assert await world.balance(world.owner.address) == victim_before
    assert await world.balance(attacker.address) == FEE * 10 - 3 * FEE

    # A target that trusts one owner's automation is not driven by another owner's job.
    trusting = await deploy(world.governor, load_artifact("Counter"))
    calldata = trusting.encode("increment")
    terms = JobTerms.static_call(trusting.address, calldata, 200_000, FEE, TRIGGER)
    job_id = await world.register(terms, nonce=1, owner=attacker)
    receipt = await world.execute(world.assignment(200, job_id, terms), terms, calldata)
    [incremented] = trusting.events(receipt, "Incremented")
    assert incremented.args["caller"] == await world.hub.call("forwarderOf", attacker.address)
    assert incremented.args["caller"] != await world.hub.call("forwarderOf", world.owner.address)


async def test_finding1_the_forwarder_obeys_the_hub_only(world: HubWorld):
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    await world.execute(world.assignment(1, await world.register(terms), terms), terms, calldata)
    forwarder_address = await world.hub.call("forwarderOf", world.owner.address)
    forwarder = Contract(world.hub.rpc, load_artifact("Forwarder"), forwarder_address)
    assert await forwarder.call("hub") == world.hub.address
    with pytest.raises(RevertError, match="NotHub"):
        await forwarder.transact(world.owner, "forward", world.counter.address, 100_000, calldata)


async def test_finding3_the_call_arguments_are_bound_on_chain(world: HubWorld):
    """A job signed for incrementBy(5) ran as incrementBy(10**70) and the keeper was paid."""
    signed_call = world.counter.encode("incrementBy", 5)
    terms = world.terms(signed_call)
    job_id = await world.register(terms)
    for other in (world.counter.encode("incrementBy", 10**70), world.counter.encode("increment"), b"\x01"):
        with pytest.raises(RevertError, match="CallNotAllowed"):
            await world.execute(world.assignment(1, job_id, terms), terms, other)
    # Terms other than the registered ones (a bigger gas limit, another target) are refused.
    other_terms = (
        dataclasses.replace(terms, gas_limit=900_000),
        dataclasses.replace(terms, target=world.owner.address),
    )
    for changed in other_terms:
        with pytest.raises(RevertError, match="TermsMismatch"):
            await world.execute(world.assignment(1, job_id, changed), changed, signed_call)
    # The fee cap the owner signed holds.
    with pytest.raises(RevertError) as caught:
        await world.execute(world.assignment(1, job_id, terms), terms, signed_call, fee=2 * FEE + 1)
    assert caught.value.error_args == {"fee": 2 * FEE + 1, "maxFee": 2 * FEE}
    await world.execute(world.assignment(1, job_id, terms), terms, signed_call)
    assert await world.counter.call("count") == 5


async def test_finding7_no_zero_dispatcher_and_no_empty_signature(world: HubWorld, accounts, sender_for):
    """With dispatcher = address(0), an empty signature recovered as zero and a stranger moved
    an owner's whole balance. The hub refuses a zero dispatcher, and a malformed signature."""
    governor = sender_for(accounts[0])
    with pytest.raises(RevertError, match="ZeroAddress"):
        await deploy(governor, load_artifact("TaskExecutionHub"), accounts[0].address, "0x" + "00" * 20)
    with pytest.raises(RevertError, match="ZeroAddress"):
        await world.hub.transact(governor, "proposeDispatcher", "0x" + "00" * 20)
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    assignment = world.assignment(1, await world.register(terms), terms)
    for signature in (b"", b"\x00" * 65, b"\x01" * 64, world.sign(assignment, accounts[3])):
        with pytest.raises(RevertError, match="BadDispatcherSignature"):
            await world.execute(assignment, terms, calldata, signature=signature)
    # A dispatcher signature for another hub (another EIP-712 domain) does not work here.
    foreign = assignment.sign(world.dispatcher, CHAIN_ID, world.counter.address)
    with pytest.raises(RevertError, match="BadDispatcherSignature"):
        await world.execute(assignment, terms, calldata, signature=foreign)
    assert await world.balance(world.owner.address) == ETH


async def test_only_the_assigned_performer_before_the_deadline(world: HubWorld, accounts, sender_for, rpc):
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    job_id = await world.register(terms)
    intruder = sender_for(accounts[3])
    with pytest.raises(RevertError) as caught:
        await world.execute(world.assignment(1, job_id, terms), terms, calldata, performer=intruder)
    assert caught.value.error_name == "WrongPerformer"
    latest = await rpc.call("eth_getBlockByNumber", "latest", False)
    expired = world.assignment(1, job_id, terms, deadline=int(latest["timestamp"], 16) - 1)
    with pytest.raises(RevertError, match="AssignmentExpired"):
        await world.execute(expired, terms, calldata)
    assert await world.hub.call("taskState", 1) == TASK_OPEN


async def test_an_owner_without_balance_cannot_be_charged(world: HubWorld, accounts, sender_for):
    broke = sender_for(accounts[6])
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    job_id = await world.register(terms, owner=broke)
    with pytest.raises(RevertError) as caught:
        await world.execute(world.assignment(1, job_id, terms), terms, calldata)
    assert caught.value.error_name == "InsufficientBalance"
    big = world.terms(calldata, max_fee=2**100)
    big_job = await world.register(big, nonce=2)
    with pytest.raises(RevertError, match="FeeTooLarge"):
        await world.execute(world.assignment(2, big_job, big), big, calldata, fee=2**88)


async def test_a_reverting_target_is_recorded_as_failed(world: HubWorld):
    calldata = world.counter.encode("fail")
    terms = world.terms(calldata)
    receipt = await world.execute(world.assignment(7, await world.register(terms), terms), terms, calldata)
    assert receipt.status
    [executed] = world.hub.events(receipt, "TaskExecuted")
    assert executed.args["success"] is False
    [reverted] = world.hub.events(receipt, "TargetReverted")
    recorded = revert_decoder().decode(reverted.args["revertData"])
    assert (recorded.error_name, recorded.error_args) == ("ForcedFailure", {"count": 0})
    assert await world.hub.call("taskState", 7) == TASK_EXECUTED


async def test_a_performer_cannot_starve_the_target_of_gas(world: HubWorld):
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata, gas_limit=5_000_000)
    assignment = world.assignment(7, await world.register(terms), terms)
    data = world.hub.encode(
        "execute", assignment.as_struct(), terms.as_struct(), calldata, FEE, world.sign(assignment)
    )
    with pytest.raises(RevertError, match="InsufficientGasForTarget"):
        await world.performer.transact(world.hub.address, data, gas=400_000)
    assert await world.hub.call("taskState", 7) == TASK_OPEN


async def test_review_large_call_data_does_not_eat_into_the_targets_gas(world: HubWorld):
    """With 64 KB of call data the target got 55k of a 100k gas limit: the forwarder's copy of
    the call data came out of the target's share. The hub now budgets it: with the least
    transaction gas that goes through (what a performer starving the target would send, as
    the node's own gas estimate finds it), the target still gets its whole limit."""
    recorder = await deploy(world.governor, load_artifact("Recorder"))
    for task_id, size in enumerate((4, 8_192, 32_768), start=1):
        calldata = b"\x01\x02\x03\x04" + b"\x07" * (size - 4)
        terms = JobTerms.static_call(recorder.address, calldata, 100_000, 2 * FEE, TRIGGER)
        job_id = await world.register(terms, nonce=task_id)
        assignment = world.assignment(task_id, job_id, terms)
        data = world.hub.encode(
            "execute", assignment.as_struct(), terms.as_struct(), calldata, FEE, world.sign(assignment)
        )
        call = {"from": world.performer.address, "to": world.hub.address, "data": "0x" + data.hex()}
        least = int(await world.hub.rpc.call("eth_estimateGas", call), 16)
        receipt = await world.performer.transact(world.hub.address, data, gas=least)
        [called] = recorder.events(receipt, "Called")
        assert called.args["gasAtEntry"] >= terms.gas_limit - 1_000, (size, called.args["gasAtEntry"])
