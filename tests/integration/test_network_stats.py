"""The network's recent pace, from the ledger's events (gateway.stats) and at GET /api/stats."""

from __future__ import annotations

import pytest
import trio

from gateway import AttemptRecord, GatewayStorage, TaskDecision, TaskLedger
from gateway.api import create_app
from gateway.stats import TaskStats
from node.store import Store

from ..gateway_helpers import watching_job

KEEPER = "0x" + "77" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path):
    with Store.open(tmp_path / "db") as store:
        storage = GatewayStorage(store)
        storage.jobs.put(watching_job("interval", {"everySeconds": 60}))
        yield TaskLedger(storage)


def complete(ledger: TaskLedger, fire_at: float, fee: int, *, fee_after: bool = False) -> None:
    """A task that fired at `fire_at`, executed for `fee` and was approved; with `fee_after`
    the execution is noted after the approval (as the dispatcher notes it on a devnet)."""
    task = ledger.create(ledger.storage.jobs.get(1), fire_at=fire_at)
    ledger.attempt_assigned(
        task.id, AttemptRecord(number=1, performer=KEEPER, assigned_at=fire_at, deadline=0)
    )
    if not fee_after:
        ledger.executed(task.id, 1, "0x" + "ab" * 32, fee)
    ledger.record_decision(TaskDecision(task.id, 1, 1, True, 0, "0xcd", 9, signer_bitmap=0b101), 10)
    if fee_after:
        ledger.executed(task.id, 1, "0x" + "ab" * 32, fee)


async def test_tasks_latencies_and_fees_of_the_last_minute_and_hour(ledger):
    clock = Clock()
    stats = TaskStats(ledger, keepers_online=lambda: 3, clock=clock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stats.run)
        await trio.testing.wait_all_tasks_blocked()
        for latency, fee, fee_after in ((2.0, 100, False), (4.0, 300, True), (30.0, 200, False)):
            complete(ledger, clock.now - latency, fee, fee_after=fee_after)
        failed = ledger.create(ledger.storage.jobs.get(1), fire_at=clock.now)
        ledger.fail(failed.id, "no keeper online")
        await trio.testing.wait_all_tasks_blocked()
        now = stats.snapshot()
        assert (now.tasks_created_last_minute, now.tasks_completed_last_minute) == (4, 3)
        assert (now.tasks_failed_last_minute, now.tasks_completed_last_hour) == (1, 3)
        assert (now.latency_p50_seconds, now.latency_p99_seconds) == (4.0, 30.0)
        assert (now.mean_fee_per_task, now.keepers_online) == ("200", 3)
        clock.now += 120  # a minute on: out of the minute, still in the hour
        later = stats.snapshot()
        assert (later.tasks_created_last_minute, later.tasks_completed_last_hour) == (0, 3)
        clock.now += 3600
        assert stats.snapshot().latency_p50_seconds is None
        client = create_app(ledger.storage, ledger=ledger, stats=stats).test_client()
        shown = await (await client.get("/api/stats")).get_json()
        assert (shown["tasksCompletedLastHour"], shown["keepersOnline"]) == (0, 3)
        nursery.cancel_scope.cancel()


def test_an_executed_attempt_shows_its_transaction_fee_and_signers(ledger):
    complete(ledger, 5.0, 1234)
    task = ledger.storage.tasks.get(1)
    [attempt] = task.attempts
    assert (attempt.tx_hash, attempt.fee, attempt.signers) == ("0x" + "ab" * 32, "1234", [0, 2])
