"""The event-trigger service on anvil and LevelDB: each matching log is one task, with the
log's evidence; a restart from the store neither misses nor repeats one, even when the
writer died between two tasks of one poll."""

from __future__ import annotations

import msgspec
import pytest
import trio

from gateway import FiredLog, GatewayStorage, TaskLedger
from gateway.triggers import EventTriggers, HeadSignal, WatchedChain
from gateway.triggers.events import checkpoint_name
from node.chain import deploy, load_artifact
from node.store import Store
from protocol.triggers.event import KIND, LogEvidence

from ..gateway_helpers import DyingLedger, ProcessKilledError, watching_job

CHAIN = 31337


@pytest.fixture
async def token(accounts, sender_for):
    return await deploy(sender_for(accounts[0]), load_artifact("TestToken"), "T", "T")


@pytest.fixture
def storage(tmp_path):
    with Store.open(tmp_path / "gateway.db") as store:
        yield GatewayStorage(store)


def event_job(token: str, receiver: str):
    """Job 1: an event job on `token`'s transfers to `receiver`, one confirmation."""
    schedule = {
        "chainId": CHAIN,
        "addresses": [token],
        "event": "Transfer(address indexed from, address indexed to, uint256 value)",
        "where": [f"to = {receiver}"],
        "confirmations": 1,
    }
    return watching_job("event", schedule)


def service(storage, rpc) -> EventTriggers:
    """The service as a (re)started gateway builds it: its chain's follower starts from the
    checkpoint in the store, and every stored job is scheduled."""
    triggers = EventTriggers(
        storage, TaskLedger(storage), lambda task_id: None, [WatchedChain(CHAIN, rpc, 2, 0.05)]
    )
    for job in storage.jobs.records():
        triggers.schedule(job)
    return triggers


async def test_each_matching_log_is_one_task_with_its_evidence(rpc, accounts, sender_for, token, storage):
    minter, receiver = sender_for(accounts[0]), accounts[2].address
    storage.jobs.put(event_job(token.address, receiver))
    triggers = service(storage, rpc)
    assert await triggers.poll(CHAIN) == []
    sent = [
        await token.transact(minter, "mint", to, value)
        for to, value in ((receiver, 5), (accounts[3].address, 6), (receiver, 7))
    ]
    await rpc.call("anvil_mine", "0x1")
    created = await triggers.poll(CHAIN)
    assert len(created) == 2
    for task_id, receipt in zip(created, (sent[0], sent[2]), strict=True):
        task = storage.tasks.get(task_id)
        evidence = LogEvidence.decode(task.trigger_detail)
        assert ("0x" + evidence.tx_hash.hex(), evidence.block_number) == (
            receipt.tx_hash,
            receipt.block_number,
        )
        block = await rpc.call("eth_getBlockByNumber", hex(receipt.block_number), False)
        assert task.fire_at == int(block["timestamp"], 16)
        job = storage.jobs.get(1)
        assert (
            KIND.check(task.fire_of(job), KIND.trigger_hash(KIND.decode(job.spec.schedule)), task.fire_at)
            is None
        )
    assert await triggers.poll(CHAIN) == []
    assert await service(storage, rpc).poll(CHAIN) == []  # restarted: nothing again


async def test_a_writer_killed_between_two_tasks_of_one_poll_misses_and_repeats_nothing(
    rpc, accounts, sender_for, token, storage
):
    minter, receiver = sender_for(accounts[0]), accounts[2].address
    storage.jobs.put(event_job(token.address, receiver))
    dying = EventTriggers(
        storage, DyingLedger(storage, dies_at=2), lambda task_id: None, [WatchedChain(CHAIN, rpc, 2, 0.05)]
    )
    dying.schedule(storage.jobs.get(1))
    await dying.poll(CHAIN)
    first = await token.transact(minter, "mint", receiver, 5)
    second = await token.transact(minter, "mint", receiver, 7)
    await rpc.call("anvil_mine", "0x1")
    with pytest.raises(ProcessKilledError):
        await dying.poll(CHAIN)
    [written] = [t for t in storage.tasks.scan(limit=10).items]
    assert LogEvidence.decode(written.trigger_detail).tx_hash.hex() == first.tx_hash[2:]
    # Restarted from the store: the second log fires, the first does not again.
    again = await service(storage, rpc).poll(CHAIN)
    assert [LogEvidence.decode(storage.tasks.get(t).trigger_detail).tx_hash.hex() for t in again] == [
        second.tx_hash[2:]
    ]
    # And from further back (a checkpoint older than both): the logs' keys keep both from repeating.
    stored = storage.checkpoints.get(checkpoint_name(CHAIN))
    storage.checkpoints.put(msgspec.structs.replace(stored, next_block=first.block_number - 1))
    assert await service(storage, rpc).poll(CHAIN) == []


async def test_a_new_head_wakes_the_pollers_at_once(anvil, rpc):
    heads = HeadSignal(anvil.ws_url)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(heads.run)
        while heads.heads == 0:  # subscribed once a head arrives
            await rpc.call("anvil_mine", "0x1")
            await heads.wait(0.2)
        for _ in range(3):
            seen = heads.heads
            nursery.start_soon(rpc.call, "anvil_mine", "0x1")
            await heads.wait(600)
            assert heads.heads == seen + 1  # woken by the head (a timeout would have seen none)
        nursery.cancel_scope.cancel()
    assert await HeadSignal().run() is None  # without a URL there is nothing to follow


async def test_old_fired_logs_are_forgotten_oldest_first(rpc, storage):
    triggers = service(storage, rpc)
    keys = [f"{CHAIN}/{block:012d}/0x{'ab' * 32}/0/1" for block in (5, 9, 10, 100, 1000)]
    for task_id, key in enumerate(keys, start=1):
        storage.fired_logs.put(FiredLog(key=key, task_id=task_id))
    storage.fired_logs.put(
        FiredLog(key=f"{CHAIN + 1}/{1:012d}/0x{'ab' * 32}/0/1", task_id=9)
    )  # another chain
    assert triggers.prune(CHAIN, 100) == 3
    assert [f.key for f in storage.fired_logs.scan(limit=10).items] == [
        *keys[3:],
        f"{CHAIN + 1}/{1:012d}/0x{'ab' * 32}/0/1",
    ]
