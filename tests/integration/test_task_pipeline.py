"""A task's life on chain, without the mesh: dispatch, execute, attest, aggregate, finalise."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import msgspec
import pytest
import trio
from eth_utils import keccak

from gateway import TaskMonitor
from node.chain import Contract, load_artifact
from node.keeper import AssignmentRefused, ResultChecker, TaskExecutor
from protocol import (
    Aggregator,
    Assignment,
    AssignmentMessage,
    ExecutionResult,
    OperatorSet,
    TaskInfo,
    Vote,
    VoteCollector,
    choose_performer,
    job_id_of,
    load_operator_set,
)

from ..conftest import CHAIN_ID
from ..consensus_helpers import BACKEND, FIRE, JOB_OWNER, Network, bls_secret, deploy_network


@dataclass
class World:
    """The network of consensus_helpers (accounts[0] governs and dispatches) with four keepers
    (anvil accounts 2 to 5) and its registered, funded Counter job."""

    network: Network
    hub: Contract
    counter: Contract
    operators: OperatorSet
    keepers: dict[str, object]  # address -> LocalAccount


@pytest.fixture
async def world(accounts, sender_for) -> World:
    return await make_world(accounts, sender_for)


async def make_world(accounts, sender_for) -> World:
    """The World on the test chain (the `world` fixture)."""
    keepers = accounts[2:6]
    network = await deploy_network(sender_for(accounts[0]), keepers, [100] * 4, CHAIN_ID)
    counter = Contract(network.hub.rpc, load_artifact("Counter"), network.terms.target)
    operators = await load_operator_set(network.registry)
    return World(network, network.hub, counter, operators, {k.address: k for k in keepers})


async def assign(world: World, accounts, task_id: int = 1, attempt: int = 1, tried=()) -> tuple:
    """The dispatcher's order for the job's task `task_id`, to the keeper selection picks."""
    performer = choose_performer(task_id, world.operators.active, set(tried), world.operators.total_stake)
    latest = await world.counter.rpc.call("eth_getBlockByNumber", "latest", False)
    network = world.network
    assignment = Assignment(
        task_id=task_id,
        job_id=network.job_id,
        attempt=attempt,
        performer=performer.account,
        deadline=int(latest["timestamp"], 16) + 300,
        terms_hash=network.terms.hash(),
        trigger_evidence=keccak(b"interval tick"),
    )
    signature = assignment.sign(accounts[0], CHAIN_ID, world.hub.address)
    return performer, AssignmentMessage(assignment, network.terms, signature, network.calldata, FIRE)


def executor_for(world: World, sender_for, accounts, keeper: str, operator_id: int) -> TaskExecutor:
    """The executor of keeper `keeper` (an address), with accounts[0] as the dispatcher."""
    sender = sender_for(world.keepers[keeper])
    return TaskExecutor(
        world.hub, sender, dispatcher=accounts[0].address, operator_id=operator_id, chain_id=CHAIN_ID
    )


async def attest_and_submit(
    world: World, sender_for, accounts, order: AssignmentMessage, result: ExecutionResult
):
    """Every keeper but the performer checks the result and votes; the aggregator submits."""
    center = world.network.center
    task = TaskInfo(result.task_id, result.job_id, result.attempt, result.performer_id, result.result_hash())
    assignment = order.assignment
    performer = world.keepers[assignment.performer]
    collector = VoteCollector(
        task,
        task.sign_as_performer(performer, CHAIN_ID, center.address),
        world.operators,
        BACKEND,
        chain_id=CHAIN_ID,
        center=center.address,
    )
    checker = ResultChecker(world.hub)
    verdicts = {}
    for operator in world.operators.active:
        if operator.id == result.performer_id:
            continue
        verdict = await checker.check(order, result)
        verdicts[operator.id] = verdict
        vote = Vote.cast(
            BACKEND, bls_secret(operator.id), operator.id, task, verdict.approve, CHAIN_ID, center.address
        )
        assert collector.add([vote]) == []
    submission = collector.submission()
    outcome = await Aggregator(center, sender_for(accounts[7])).submit(submission)
    receipt = await center.rpc.call("eth_getTransactionReceipt", outcome.tx_hash)
    return submission, verdicts, receipt


async def test_an_honest_task_is_executed_once_and_approved(world, accounts, sender_for):
    performer, order = await assign(world, accounts)
    executor = executor_for(world, sender_for, accounts, performer.account, performer.id)
    result = await executor.execute(order)
    assert result.target_success
    submission, verdicts, receipt = await attest_and_submit(world, sender_for, accounts, order, result)
    assert all(v.approve for v in verdicts.values()), verdicts
    assert submission.approve
    [event] = [e for e in map(world.network.center.abi.decode_log, receipt["logs"]) if e is not None]
    assert event.name == "TaskSubmitted"
    assert (event.args["taskId"], event.args["signedStake"], event.args["totalStake"]) == (1, 300, 400)
    assert await world.counter.call("count") == 1
    # The approval released the escrowed fee to the performer.
    fee = await world.hub.call("balanceOf", performer.account)
    assert 0 < fee <= world.network.terms.max_fee_per_task
    escrow = await world.hub.call("escrowOf", 1, world.network.job_id, 1, performer.account)
    assert escrow == (True, fee, True)


async def test_a_lying_performer_is_rejected(world, accounts, sender_for):
    performer, order = await assign(world, accounts)
    executor = executor_for(world, sender_for, accounts, performer.account, performer.id)
    honest = await executor.execute(order)
    # It claims its target call failed (say, to be retried and paid twice).
    lie = dataclasses.replace(honest, target_success=False)
    submission, verdicts, receipt = await attest_and_submit(world, sender_for, accounts, order, lie)
    assert {v.reason for v in verdicts.values()} == {"the hub recorded no such execution"}
    assert not submission.approve
    [event] = [e for e in map(world.network.center.abi.decode_log, receipt["logs"]) if e is not None]
    assert event.name == "TaskRejected"
    assert await world.network.center.call("operatorCounters", performer.id) == (0, 0, 1)


async def test_a_result_from_outside_the_hub_is_rejected(world, accounts, sender_for):
    performer, order = await assign(world, accounts)
    # The performer calls the target directly, skipping the hub, and reports that transaction.
    receipt = await world.counter.transact(sender_for(world.keepers[performer.account]), "increment")
    forged = ExecutionResult(
        task_id=1,
        job_id=world.network.job_id,
        attempt=1,
        performer_id=performer.id,
        tx_hash=bytes.fromhex(receipt.tx_hash[2:]),
        block_number=receipt.block_number,
        calldata_hash=keccak(order.calldata),
        target_success=True,
    )
    verdict = await ResultChecker(world.hub).check(order, forged)
    assert verdict == type(verdict)(False, "the transaction did not call the execution hub")


async def test_an_assignment_ahead_of_its_fire_time_is_held_and_an_early_execution_refused(
    world, accounts, sender_for
):
    """Lead time (docs/protocol.md): the performer sends at the fire time, not on receipt,
    and attesters do not approve an execution mined before the fire time."""
    performer, order = await assign(world, accounts)
    executor = executor_for(world, sender_for, accounts, performer.account, performer.id)
    too_far = msgspec.structs.replace(order, trigger=msgspec.structs.replace(FIRE, fire_at=time.time() + 60))
    with pytest.raises(AssignmentRefused, match="too far ahead"):
        await executor.execute(too_far)
    fire_at = time.time() + 2.5
    ahead = msgspec.structs.replace(order, trigger=msgspec.structs.replace(FIRE, fire_at=fire_at))
    result = await executor.execute(ahead)
    block = await world.hub.rpc.call("eth_getBlockByNumber", hex(result.block_number), False)
    assert int(block["timestamp"], 16) >= int(fire_at)  # held until its fire time
    checker = ResultChecker(world.hub)
    assert (await checker.check(ahead, result)).approve
    # The same execution under a fire time 5 s after it: mined early, not voted for (nor
    # against: a performer's clock ahead of the chain's is no lie to slash).
    late_fire = msgspec.structs.replace(FIRE, fire_at=fire_at + 5)
    verdict = await checker.check(msgspec.structs.replace(ahead, trigger=late_fire), result)
    assert (verdict.approve, verdict.abstain) == (False, True)
    assert "before the fire time" in verdict.reason
    # Each outcome is counted (node.metrics): the refusal, the execution, both verdicts.
    executed = executor.stats.node.registry.get_sample_value
    for outcome in ("refused", "success"):
        assert executed("triggerx_keeper_tasks_executed_total", {"outcome": outcome}) == 1
    assert executed("triggerx_keeper_execution_gas_total") > 21_000
    attested = checker.stats.node.registry.get_sample_value
    for vote in ("approve", "abstain"):
        assert attested("triggerx_keeper_attestations_total", {"vote": vote}) == 1


async def test_keepers_refuse_assignments_that_are_not_theirs(world, accounts, sender_for):
    performer, order = await assign(world, accounts)
    other = next(k for k in world.keepers if k != performer.account)
    executor = executor_for(world, sender_for, accounts, other, 0)
    with pytest.raises(AssignmentRefused, match="assigned to"):
        await executor.execute(order)
    forged = order.assignment.sign(accounts[3], CHAIN_ID, world.hub.address)
    mine = executor_for(world, sender_for, accounts, performer.account, performer.id)
    with pytest.raises(AssignmentRefused, match="not the dispatcher"):
        await mine.execute(msgspec.structs.replace(order, dispatcher_signature=forged))
    # A job whose fee cap does not cover the execution's cost: the keeper does not work at a loss.
    poor = dataclasses.replace(order.terms, max_fee_per_task=1)
    await world.hub.transact(sender_for(JOB_OWNER), "registerJob", 2, poor.as_struct())
    assignment = dataclasses.replace(
        order.assignment, job_id=job_id_of(JOB_OWNER.address, 2), terms_hash=poor.hash()
    )
    signature = assignment.sign(accounts[0], CHAIN_ID, world.hub.address)
    with pytest.raises(AssignmentRefused, match="below the cost"):
        await mine.execute(AssignmentMessage(assignment, poor, signature, order.calldata, FIRE))
    # A call the job's terms do not allow (other arguments) is refused before anything is sent.
    other_call = world.counter.encode("incrementBy", 10**70)
    with pytest.raises(AssignmentRefused, match="not the job's"):
        await mine.execute(msgspec.structs.replace(order, calldata=other_call))
    assert await world.counter.call("count") == 0


async def test_the_monitor_reports_each_decision_once_from_its_checkpoint(world, accounts, sender_for):
    monitor = TaskMonitor(world.network.center, next_block=0, max_range=3)
    assert await monitor.poll() == []
    performer, order = await assign(world, accounts)
    executor = executor_for(world, sender_for, accounts, performer.account, performer.id)
    result = await executor.execute(order)
    _, _, receipt = await attest_and_submit(world, sender_for, accounts, order, result)
    [decision] = await monitor.poll()
    assert (decision.task_id, decision.attempt, decision.approved) == (1, 1, True)
    assert decision.tx_hash == receipt["transactionHash"]
    assert await monitor.poll() == []
    # A monitor restarted from an older checkpoint sees the same decision again, no more.
    again = TaskMonitor(world.network.center, next_block=decision.block_number)
    assert await again.poll() == [decision]


async def test_finding10_an_attester_waits_for_a_lagging_chain_instead_of_rejecting(
    world, accounts, sender_for
):
    """An attester voted reject as soon as it could not yet see the transaction; a third of the
    stake doing so failed honest work for good. Until its chain reaches the reported block it
    now waits (bounded), then judges; if the block never comes it abstains."""
    performer, order = await assign(world, accounts)
    rpc = world.hub.rpc
    data = world.hub.encode(
        "execute", order.assignment.as_struct(), order.terms.as_struct(), order.calldata, 10**14,
        order.dispatcher_signature,
    )  # fmt: skip
    await rpc.call("evm_setAutomine", False)
    pending = await sender_for(world.keepers[performer.account]).send(world.hub.address, data, 0, 500_000)
    head = int(await rpc.call("eth_blockNumber"), 16)
    result = ExecutionResult(
        task_id=1,
        job_id=world.network.job_id,
        attempt=1,
        performer_id=performer.id,
        tx_hash=bytes.fromhex(pending.tx_hash[2:]),
        block_number=head + 1,  # the block the performer saw; this attester's chain is behind
        calldata_hash=keccak(order.calldata),
        target_success=True,
    )
    verdicts = []

    async def attest(checker: ResultChecker) -> None:
        verdicts.append(await checker.check(order, result))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(attest, ResultChecker(world.hub))
        await trio.sleep(1.0)
        assert verdicts == []  # still waiting, not rejecting
        await rpc.call("evm_mine")
    await rpc.call("evm_setAutomine", True)
    assert verdicts == [type(verdicts[0])(True, "the execution matches the assignment and the chain")]
    # A block that never comes: the attester abstains (None), it does not vote to reject.
    later = dataclasses.replace(result, block_number=head + 1_000)
    checker = ResultChecker(world.hub, visibility_timeout=0.5)
    assert await checker.check(order, later) is None
