"""The trigger family's seam: a kind defined here, in a test module, and added through the
registry alone runs through the whole path: the gateway takes a job of that kind (its spec
checked, its trigger signed by the owner), the scheduler fires it, the dispatcher signs the
fire's evidence, a keeper executes it on a real hub (registering the job from the owner's
consent), and an attester accepts the fire and approves the execution."""

from __future__ import annotations

import time
from dataclasses import dataclass

import eth_abi
import msgspec
import pytest
import trio
from eth_utils import keccak

from gateway import GatewayStorage, JobSpec, TaskLedger, ValidJob, parse_create_request, sign_job
from gateway.triggers import JobScheduler
from node.keeper import ResultChecker, TaskExecutor, report_problem
from node.store import Store
from protocol import OwnerConsent, ResultMessage, load_operator_set
from protocol.triggers import TriggerFire, TriggerKind, TriggerSpecError, kind_named, on_grid, register

from ..conftest import CHAIN_ID
from ..consensus_helpers import JOB_FEE, JOB_OWNER, deploy_network
from ..gateway_helpers import order_signer


class MetronomeSpec(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Tick every `period_seconds`, counted from the Unix epoch."""

    period_seconds: int


@dataclass(frozen=True)
class Ticks:
    period: int

    def next_fire(self, after: float) -> float | None:
        return (int(after // self.period) + 1) * self.period

    def latest_fire(self, at_or_before: float) -> float | None:
        return int(at_or_before // self.period) * self.period


class MetronomeKind(TriggerKind[MetronomeSpec]):
    """A toy time kind: epoch-aligned ticks."""

    name = "metronome"
    spec_type = MetronomeSpec

    def validate(self, spec: MetronomeSpec, now: float) -> float:
        if not 1 <= spec.period_seconds <= 3600:
            raise TriggerSpecError("periodSeconds", "must be 1 to 3600")
        return now

    def trigger_hash(self, spec: MetronomeSpec) -> bytes:
        return keccak(eth_abi.encode(["bytes32", "uint64"], [keccak(text=self.name), spec.period_seconds]))

    def schedule(self, spec: MetronomeSpec, created_at: float) -> Ticks:
        return Ticks(spec.period_seconds)

    def check_fire(self, spec: MetronomeSpec, fire: TriggerFire) -> str | None:
        return None if on_grid(fire.fire_at, 0, spec.period_seconds) else "not a tick"


if kind_named("metronome") is None:
    register(MetronomeKind())


def metronome_job(network, nonce: int) -> tuple[JobSpec, ValidJob]:
    """The owner's signed metronome job (a tick a second) on the network's counter, as the
    gateway's intake takes it."""
    spec = JobSpec(
        owner=JOB_OWNER.address,
        nonce=str(nonce),
        expiry=int(time.time()) + 3600,
        target=network.terms.target,
        function="increment()",
        schedule_type="metronome",
        schedule={"periodSeconds": 1},
        max_fee_per_task=str(JOB_FEE),
        gas_limit=100_000,
    )
    body = msgspec.json.encode(
        {"job": spec, "signature": sign_job(spec, JOB_OWNER, CHAIN_ID, network.hub.address)}
    )
    return spec, parse_create_request(body, CHAIN_ID, network.hub.address, time.time())


@pytest.fixture
async def network(accounts, sender_for):
    keepers = accounts[2:6]
    return await deploy_network(sender_for(accounts[0]), keepers, [100] * 4, CHAIN_ID), keepers


async def test_a_kind_added_through_the_registry_alone_runs_end_to_end(
    network, accounts, sender_for, tmp_path
):
    network, keepers = network
    spec, job = metronome_job(network, nonce=2)
    assert job.spec.schedule == {"periodSeconds": 1}

    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        record = storage.create_job(job, time.time())
        ledger = TaskLedger(storage)
        fired: list[int] = []
        first_fire = trio.Event()

        def on_task(task_id: int) -> None:
            fired.append(task_id)
            first_fire.set()

        scheduler = JobScheduler(storage, ledger, on_task)
        scheduler.schedule(record)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(scheduler.run)
                await first_fire.wait()
                nursery.cancel_scope.cancel()
        task = storage.tasks.get(fired[0])
        assert task.fire_at == int(task.fire_at)  # an epoch-aligned tick

        dispatcher = order_signer(storage, ledger, network)
        operators = await load_operator_set(network.registry)
        performer = operators.operators[0]
        order = dispatcher.order_for(
            task.id, 1, performer.account, OwnerConsent(spec.expiry, job.consent_signature)
        )
        assert order.trigger.kind == "metronome"

    executor = TaskExecutor(
        network.hub, sender_for(keepers[0]), dispatcher=accounts[0].address, operator_id=0, chain_id=CHAIN_ID
    )
    result = await executor.execute(order)
    assert result.target_success
    assert await network.hub.call("jobTermsHash", job.chain_job_id) == job.terms.hash()
    report = ResultMessage(order, result, b"")
    attester_view = dict(dispatcher=accounts[0].address, chain_id=CHAIN_ID, hub=network.hub.address)
    assert report_problem(report, keepers[0].address, operators, **attester_view) is None
    verdict = await ResultChecker(network.hub).check(order, result)
    assert verdict.approve, verdict.reason
    # The kind's own check holds: a fire off its ticks, even if the dispatcher signed it, is refused.
    off_tick = msgspec.structs.replace(order.trigger, fire_at=order.trigger.fire_at + 0.5)
    assert kind_named("metronome").check(off_tick, order.terms.trigger, time.time()) == "not a tick"


async def test_a_job_scheduled_twice_fires_once_per_time(network, tmp_path):
    """Each fire time makes one task, even if the job reached the scheduler twice (review:
    two heap entries for one time would both have fired)."""
    network, _ = network
    _, job = metronome_job(network, nonce=3)
    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        record = storage.create_job(job, time.time())
        fired: list[int] = []
        scheduler = JobScheduler(storage, TaskLedger(storage), fired.append)
        scheduler.schedule(record)
        scheduler.schedule(record)
        with trio.move_on_after(3.5):
            await scheduler.run()
        times = [storage.tasks.get(task_id).fire_at for task_id in fired]
        assert len(times) >= 3
        assert len(times) == len(set(times)), times
