"""Dispatch never reassigns a task whose earlier attempt executed on chain (the hub would refuse
it, and the fired task would end `failed` although it ran and was paid for): it follows the
attempt's decision, and refunds the owner when none comes within the escrow timeout. On a
real hub on anvil; these paths never reach the mesh (the dispatcher gets none: any use of it
would fail the test)."""

from __future__ import annotations

import time

import pytest
import trio

from gateway import AttemptRecord, Dispatcher, GatewayStorage, TaskDecision, TaskEvent, TaskLedger, TaskRecord
from node.config import load_genesis
from node.devnet import REPO_GENESIS
from node.store import Store

from ..gateway_helpers import counter_job
from ..hub_helpers import ETH, FEE, HubWorld


@pytest.fixture
async def executed_task(world: HubWorld, tmp_path):
    """A gateway store with the owner's registered Counter job and one task whose attempt 1
    the performer executed on chain; the ledger over that store."""
    job_id, terms, calldata = await world.increment_job()
    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        job = counter_job(world.owner.address, job_id, terms, calldata, created_at=time.time())
        storage.jobs.put(job)
        ledger = TaskLedger(storage)
        task = ledger.create(job, fire_at=time.time())
        attempt = AttemptRecord(
            number=1,
            performer=world.performer.address,
            assigned_at=time.time(),
            deadline=int(time.time()) + 60,
        )
        ledger.attempt_assigned(task.id, attempt)
        await world.execute(world.assignment(task.id, job_id, terms), terms, calldata)
        yield ledger, task


def dispatcher_for(world: HubWorld, ledger: TaskLedger, escrow_timeout: float, **options) -> Dispatcher:
    return Dispatcher(
        ledger=ledger,
        storage=ledger.storage,
        hub=world.hub,
        chain_id=world.chain_id,
        sender=world.governor,  # anyone may send the refund; assignments are never signed here
        mesh=None,  # type: ignore[arg-type]
        directory=None,  # type: ignore[arg-type]
        keepers=None,  # type: ignore[arg-type]
        intake=None,  # type: ignore[arg-type]
        protocol=load_genesis(REPO_GENESIS).protocol,
        escrow_timeout=escrow_timeout,
        **options,
    )


async def next_status(events: trio.MemoryReceiveChannel[TaskEvent], status: str) -> TaskRecord:
    """The task of the first event that moves a task to `status` (the ledger's stream)."""
    with trio.fail_after(20):
        async for event in events:
            if event.task.status == status:
                return event.task
    raise AssertionError(f"the ledger's stream ended before a task became {status}")


async def test_an_executed_attempt_is_followed_to_its_decision_never_reassigned(world, executed_task):
    ledger, task = executed_task
    dispatcher = dispatcher_for(world, ledger, escrow_timeout=3600)
    events = ledger.subscribe()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatcher.dispatch, task.id)
        executed = await next_status(events, "executed")
        assert len(executed.attempts) == 1
        decision = TaskDecision(task.id, executed_task[1].job_id, 1, True, 0, "0xab", 9)
        ledger.record_decision(decision, next_block=10)
        dispatcher.decided(decision)
    done = ledger.storage.tasks.get(task.id)
    assert (done.status, [a.outcome for a in done.attempts]) == ("completed", ["approved"])


async def test_an_execution_nobody_decides_is_refunded_to_its_owner(world, executed_task, rpc):
    ledger, task = executed_task
    assert await world.balance(world.owner.address) == ETH - FEE
    await rpc.call("evm_increaseTime", hex(await world.hub.call("ESCROW_TIMEOUT")))
    await rpc.call("evm_mine")
    with trio.fail_after(30):
        await dispatcher_for(world, ledger, escrow_timeout=0.5).dispatch(task.id)
    failed = ledger.storage.tasks.get(task.id)
    assert failed.status == "failed"
    assert failed.reason == "attempt 1 executed, but no decision came in time: fee refunded to the owner"
    assert len(failed.attempts) == 1
    assert await world.balance(world.owner.address) == ETH


async def test_tasks_beyond_the_in_flight_cap_wait_created_in_order(world, executed_task):
    """Back-pressure: while the capped number of tasks await their decision, the next one is
    not assigned (it stays `created`); it goes as soon as one ends."""
    ledger, first = executed_task
    job = ledger.storage.jobs.get(first.job_id)
    second = ledger.create(job, fire_at=time.time())
    attempt = AttemptRecord(
        number=1, performer=world.performer.address, assigned_at=time.time(), deadline=int(time.time()) + 60
    )
    ledger.attempt_started(second.id, attempt)  # recorded before it is sent: still `created`
    await world.execute(world.assignment(second.id, job.chain_job_id, job.terms), job.terms, job.calldata)
    dispatcher = dispatcher_for(world, ledger, escrow_timeout=3600, max_in_flight=1)
    events = ledger.subscribe()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatcher.dispatch, first.id)
        assert (await next_status(events, "executed")).id == first.id
        nursery.start_soon(dispatcher.dispatch, second.id)
        await trio.sleep(1)  # room to run, were it not held
        assert ledger.storage.tasks.get(second.id).status == "created"
        for task in (first, second):
            decision = TaskDecision(task.id, job.chain_job_id, 1, True, 0, "0xab", 9)
            if task is second:
                assert (await next_status(events, "executed")).id == second.id
            ledger.record_decision(decision, next_block=10)
            dispatcher.decided(decision)
    assert [ledger.storage.tasks.get(t.id).status for t in (first, second)] == ["completed", "completed"]
