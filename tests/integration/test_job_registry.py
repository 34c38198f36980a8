"""JobRegistry on anvil: only a job's owner changes or cancels it."""

from __future__ import annotations

import pytest

from node.chain.errors import RevertError

SPEC = b"\x11" * 32
NEW_SPEC = b"\x22" * 32
ACTIVE, CANCELLED = 1, 2


async def test_owner_creates_updates_and_cancels(core, accounts, sender_for):
    owner = sender_for(accounts[2])
    jobs = core.job_registry
    receipt = await jobs.transact(owner, "createJob", SPEC)
    [created] = jobs.events(receipt, "JobCreated")
    job_id = created.args["jobId"]
    assert created.args == {"jobId": job_id, "owner": owner.address, "specHash": SPEC}
    job = await jobs.call("getJob", job_id)
    assert (job["owner"], job["status"], job["specHash"]) == (owner.address, ACTIVE, SPEC)

    receipt = await jobs.transact(owner, "updateJob", job_id, NEW_SPEC)
    [updated] = jobs.events(receipt, "JobUpdated")
    assert updated.args == {"jobId": job_id, "previousSpecHash": SPEC, "specHash": NEW_SPEC}
    assert (await jobs.call("getJob", job_id))["specHash"] == NEW_SPEC

    receipt = await jobs.transact(owner, "cancelJob", job_id)
    assert [e.name for e in jobs.events(receipt)] == ["JobCancelled"]
    assert (await jobs.call("getJob", job_id))["status"] == CANCELLED


async def test_ids_are_sequential_from_one(core, accounts, sender_for):
    owner = sender_for(accounts[2])
    ids = []
    for _ in range(3):
        receipt = await core.job_registry.transact(owner, "createJob", SPEC)
        ids.append(core.job_registry.events(receipt, "JobCreated")[0].args["jobId"])
    assert ids == [1, 2, 3]


async def test_only_the_owner_may_update_or_cancel(core, accounts, sender_for):
    owner, stranger = sender_for(accounts[2]), sender_for(accounts[3])
    receipt = await core.job_registry.transact(owner, "createJob", SPEC)
    job_id = core.job_registry.events(receipt)[0].args["jobId"]
    for function, args in (("updateJob", (job_id, NEW_SPEC)), ("cancelJob", (job_id,))):
        with pytest.raises(RevertError) as caught:
            await core.job_registry.transact(stranger, function, *args)
        assert caught.value.error_name == "NotJobOwner"
        assert caught.value.error_args == {"jobId": job_id, "caller": stranger.address}
    job = await core.job_registry.call("getJob", job_id)
    assert (job["status"], job["specHash"]) == (ACTIVE, SPEC)


async def test_a_cancelled_job_cannot_change(core, accounts, sender_for):
    owner = sender_for(accounts[2])
    receipt = await core.job_registry.transact(owner, "createJob", SPEC)
    job_id = core.job_registry.events(receipt)[0].args["jobId"]
    await core.job_registry.transact(owner, "cancelJob", job_id)
    for function, args in (("updateJob", (job_id, NEW_SPEC)), ("cancelJob", (job_id,))):
        with pytest.raises(RevertError, match=rf"JobNotActive\(jobId={job_id}\)"):
            await core.job_registry.transact(owner, function, *args)


async def test_unknown_job_and_empty_spec_are_rejected(core, accounts, sender_for):
    owner = sender_for(accounts[2])
    with pytest.raises(RevertError, match=r"UnknownJob\(jobId=42\)"):
        await core.job_registry.call("getJob", 42)
    with pytest.raises(RevertError, match=r"UnknownJob\(jobId=42\)"):
        await core.job_registry.transact(owner, "cancelJob", 42)
    with pytest.raises(RevertError, match=r"EmptySpecHash\(\)"):
        await core.job_registry.transact(owner, "createJob", b"\x00" * 32)
