"""Jobs on chain (JobRegistry, part of TaskExecutionHub): the owner's consent, unique ids, updates
and cancellation. Tests named `finding2` replay signed jobs, as the security review did."""

from __future__ import annotations

import dataclasses

import pytest

from node.chain import RevertError
from protocol import CANCELLED_TERMS, JobConsent, cancel_message, job_id_of

from ..conftest import CHAIN_ID
from ..hub_helpers import HubWorld


async def now(world: HubWorld) -> int:
    return int((await world.hub.rpc.call("eth_getBlockByNumber", "latest", False))["timestamp"], 16)


async def test_the_first_task_registers_the_job_with_the_owners_consent(world: HubWorld):
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    job_id = job_id_of(world.owner.address, 9)
    consent = world.consent(terms, nonce=9, expiry=await now(world) + 3600)
    receipt = await world.execute(world.assignment(1, job_id, terms), terms, calldata, consent=consent)
    [registered] = world.hub.events(receipt, "JobRegistered")
    assert registered.args == {"jobId": job_id, "owner": world.owner.address, "termsHash": terms.hash()}
    assert await world.hub.call("jobTermsHash", job_id) == terms.hash()
    assert await world.counter.call("count") == 1
    # Later tasks run on the registered job, without the consent.
    await world.execute(world.assignment(2, job_id, terms), terms, calldata)
    assert await world.counter.call("count") == 2


async def test_finding2_a_signed_job_cannot_be_replayed(world: HubWorld):
    """Re-posting the same signed job made a new job each time. On chain a job id is the
    owner's address and nonce: the consent registers it once, and never again."""
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    job_id = job_id_of(world.owner.address, 3)
    consent = world.consent(terms, nonce=3, expiry=await now(world) + 3600)
    registration = (job_id, consent["expiry"], terms.as_struct(), consent["signature"])
    await world.hub.transact(world.performer, "registerJobWithConsent", *registration)
    with pytest.raises(RevertError, match="JobExists"):
        await world.hub.transact(world.performer, "registerJobWithConsent", *registration)
    # The job's first task, sent with the consent after someone registered it, simply runs:
    # the job exists once, and a front-run registration cannot make the keeper's call fail.
    await world.execute(world.assignment(5, job_id, terms), terms, calldata, consent=consent)
    assert await world.counter.call("count") == 1


async def test_finding2_a_consent_is_bound_to_its_owner_terms_domain_and_time(world: HubWorld, accounts):
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    job_id = job_id_of(world.owner.address, 4)
    expiry = await now(world) + 3600
    assignment = world.assignment(1, job_id, terms)
    # Signed by someone else than the owner encoded in the job id.
    stranger = world.consent(terms, nonce=4, expiry=expiry, owner=accounts[5])
    with pytest.raises(RevertError, match="BadOwnerSignature"):
        await world.execute(assignment, terms, calldata, consent=stranger)
    # For other terms (a higher fee cap) than those submitted.
    richer = world.consent(dataclasses.replace(terms, max_fee_per_task=10**18), nonce=4, expiry=expiry)
    with pytest.raises(RevertError, match="BadOwnerSignature"):
        await world.execute(assignment, terms, calldata, consent=richer)
    # For another hub (the EIP-712 domain names the verifying contract).
    foreign = JobConsent(4, expiry, terms).sign(world.owner.account, CHAIN_ID, world.counter.address)
    with pytest.raises(RevertError, match="BadOwnerSignature"):
        await world.execute(assignment, terms, calldata, consent={"expiry": expiry, "signature": foreign})
    # Expired.
    expired = world.consent(terms, nonce=4, expiry=await now(world) - 1)
    with pytest.raises(RevertError, match="ConsentExpired"):
        await world.execute(assignment, terms, calldata, consent=expired)
    # Without any consent, an unregistered job does not run.
    with pytest.raises(RevertError, match="TermsMismatch"):
        await world.execute(assignment, terms, calldata)
    assert await world.hub.call("jobTermsHash", job_id) == bytes(32)


async def test_finding2_the_owner_cancels_on_chain_and_tasks_stop_at_once(
    world: HubWorld, sender_for, accounts
):
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    job_id = await world.register(terms)
    with pytest.raises(RevertError, match="NotJobOwner"):
        await world.hub.transact(sender_for(accounts[5]), "cancelJob", job_id)
    receipt = await world.hub.transact(world.owner, "cancelJob", job_id)
    assert [e.args["jobId"] for e in world.hub.events(receipt, "JobCancelled")] == [job_id]
    assert await world.hub.call("jobTermsHash", job_id) == CANCELLED_TERMS
    with pytest.raises(RevertError, match="TermsMismatch"):
        await world.execute(world.assignment(1, job_id, terms), terms, calldata)
    with pytest.raises(RevertError, match="JobNotActive"):
        await world.hub.transact(world.owner, "updateJob", job_id, terms.as_struct())
    with pytest.raises(RevertError, match="JobNotActive"):
        await world.hub.transact(world.owner, "cancelJob", job_id)


async def test_finding2_cancelling_an_unregistered_job_voids_its_consent(world: HubWorld):
    """A signed job posted to a gateway can be killed before its first task, by anyone who
    relays the owner's CancelJob signature (the gateway's DELETE does this)."""
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    job_id = job_id_of(world.owner.address, 7)
    consent = world.consent(terms, nonce=7, expiry=await now(world) + 3600)
    signature = cancel_message(job_id, CHAIN_ID, world.hub.address).sign(world.owner.account)
    forged = cancel_message(job_id, CHAIN_ID, world.hub.address).sign(world.performer.account)
    with pytest.raises(RevertError, match="BadOwnerSignature"):
        await world.hub.transact(world.performer, "cancelJobWithSignature", job_id, forged)
    await world.hub.transact(world.performer, "cancelJobWithSignature", job_id, signature)
    with pytest.raises(RevertError, match="TermsMismatch"):
        await world.execute(world.assignment(1, job_id, terms), terms, calldata, consent=consent)
    assert await world.counter.call("count") == 0


async def test_the_owner_updates_the_terms_and_old_assignments_stop(world: HubWorld):
    calldata = world.counter.encode("increment")
    terms = world.terms(calldata)
    job_id = await world.register(terms)
    stale = world.assignment(1, job_id, terms)
    updated = world.terms(world.counter.encode("incrementBy", 2))
    receipt = await world.hub.transact(world.owner, "updateJob", job_id, updated.as_struct())
    [event] = world.hub.events(receipt, "JobUpdated")
    assert (event.args["previousTermsHash"], event.args["termsHash"]) == (terms.hash(), updated.hash())
    with pytest.raises(RevertError, match="TermsMismatch"):
        await world.execute(stale, terms, calldata)
    await world.execute(world.assignment(1, job_id, updated), updated, world.counter.encode("incrementBy", 2))
    assert await world.counter.call("count") == 2
