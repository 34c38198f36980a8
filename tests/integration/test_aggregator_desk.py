"""The aggregator's VoteDesk on a real anvil: who may open a vote count, how long it lives, and
resubmission after a revert (security review finding 4 and the Low item on resubmission).

The desk's `on_vote(sender, payload)` is called directly with encoded VoteMessages, as the
mesh would after checking the envelope's signature (`sender` is the envelope's signer). The
reports carry real assignments signed by the network's dispatcher (its governor) and results
signed by the performers' operator keys; approvals settle real executions on the hub.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from gateway import AttemptRecord, ExecutionRelay, TaskDecision, TaskMonitor, TaskRecord
from node.chain import Receipt
from node.metrics import VOTE_OUTCOMES
from node.roles import Chain, VoteDesk, VoteRefused

# The role's metric name, an internal the test reads.
from node.roles.aggregator import REFUSED
from protocol import (
    Assignment,
    AssignmentMessage,
    ExecutionResult,
    OperatorDirectory,
    ResultMessage,
    TaskInfo,
    VoteMessage,
    encode,
)

from ..conftest import CHAIN_ID
from ..consensus_helpers import FIRE, JOB_OWNER, Network, deploy_network, operator_account
from ..gateway_helpers import counter_job

EXECUTED_DEADLINE = 2**40  # the deadline of the assignments Network.execute executes


@pytest.fixture
async def network(accounts, sender_for) -> Network:
    operators = [operator_account(i) for i in range(4)]
    return await deploy_network(sender_for(accounts[0]), operators, [100] * 4, CHAIN_ID)


class Clock:
    """The desk's unix time, set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Desk:
    desk: VoteDesk
    network: Network
    nursery: trio.Nursery

    async def vote(self, report: ResultMessage, operator_id: int, approve: bool = True) -> bytes:
        """Operator `operator_id`'s vote on `report`, as its keeper sends it."""
        vote = self.network.vote(operator_id, report.task_info(), approve)
        sender = self.network.operators[operator_id].address
        return await self.desk.on_vote(sender, encode(VoteMessage(report, vote, "trace")))

    async def decisions(self, count: int = 1) -> list[TaskDecision]:
        """Wait until the chain holds `count` decisions; all it holds then."""
        monitor, found = TaskMonitor(self.network.center), []
        with trio.fail_after(30):
            while len(found) < count:
                found += await monitor.poll()
                await trio.sleep(0.01)
        return found

    async def decided_on_chain(self) -> list[TaskDecision]:
        """The decisions the chain holds now."""
        return await TaskMonitor(self.network.center).poll()

    async def settled(self) -> None:
        """Wait until no submission is in flight."""
        await trio.sleep(0.02)
        await until(lambda: not self.desk.submitting)

    def refused(self, reason: str) -> int:
        return self.desk.metrics.get(REFUSED, reason=reason)

    def exported(self, name: str, **labels: str) -> float | None:
        """A sample of the desk's Prometheus metrics (node.metrics.AggregatorMetrics)."""
        return self.desk.stats.node.registry.get_sample_value(name, labels)


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until `condition()` holds (submissions and sweeps run in the desk's own tasks)."""
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - the desk signals no event for its bookkeeping
            await trio.sleep(0.01)


@asynccontextmanager
async def open_desk(network: Network, submitter, **options) -> AsyncIterator[Desk]:
    """A VoteDesk over `network`, submitting from `submitter`."""
    chain = Chain(network.center.rpc, CHAIN_ID, submitter, network.hub, network.registry, network.center)
    directory = OperatorDirectory(network.registry, set())
    await directory.refresh()
    options.setdefault("grace", 60.0)
    async with trio.open_nursery() as nursery:
        desk = VoteDesk(chain, directory, dispatcher=network.governor.address, nursery=nursery, **options)
        yield Desk(desk, network, nursery)
        nursery.cancel_scope.cancel()


def assignment_for(network: Network, task_id: int, attempt: int = 1, performer_id: int = 0, **fields):
    """The assignment Network.execute executes for the task (or one with other `fields`)."""
    assignment = Assignment(
        task_id=task_id,
        job_id=network.job_id,
        attempt=attempt,
        performer=network.operators[performer_id].address,
        deadline=EXECUTED_DEADLINE,
        terms_hash=network.terms.hash(),
        trigger_evidence=keccak(b"tick %d" % task_id),
    )
    return dataclasses.replace(assignment, **fields)


def order_for(
    network: Network, assignment: Assignment, signer: LocalAccount | None = None
) -> AssignmentMessage:
    """`assignment` signed by the dispatcher (or by `signer`), as the dispatcher sends it."""
    signature = assignment.sign(signer or network.governor.account, CHAIN_ID, network.hub.address)
    return AssignmentMessage(assignment, network.terms, signature, network.calldata, FIRE, trace_id="trace")


def report_for(
    network: Network, order: AssignmentMessage, result: ExecutionResult, signer: LocalAccount | None = None
) -> ResultMessage:
    """The report of `result`, signed by its performer (or by `signer`)."""
    unsigned = ResultMessage(order, result, b"")
    account = signer or network.operators[result.performer_id]
    signature = unsigned.task_info().sign_as_performer(account, CHAIN_ID, network.center.address)
    return ResultMessage(order, result, signature)


def result_for(
    assignment: Assignment, performer_id: int, tx_hash: bytes, block_number: int = 1
) -> ExecutionResult:
    """A result of `assignment` by operator `performer_id` in transaction `tx_hash`."""
    return ExecutionResult(
        task_id=assignment.task_id,
        job_id=assignment.job_id,
        attempt=assignment.attempt,
        performer_id=performer_id,
        tx_hash=tx_hash,
        block_number=block_number,
        calldata_hash=keccak(b"a call"),
        target_success=True,
    )


async def executed_report(network: Network, task_id: int, attempt: int = 1, performer_id: int = 0):
    """Performer `performer_id` executes the task through the hub and reports it honestly."""
    receipt = await network.execute(TaskInfo(task_id, network.job_id, attempt, performer_id, bytes(32)))
    assignment = assignment_for(network, task_id, attempt, performer_id)
    result = dataclasses.replace(
        result_for(assignment, performer_id, bytes.fromhex(receipt.tx_hash[2:]), receipt.block_number),
        calldata_hash=keccak(network.calldata),
    )
    return report_for(network, order_for(network, assignment), result)


def unexecuted_report(network: Network, task_id: int, performer_id: int = 0, **fields) -> ResultMessage:
    """A genuine assignment and its performer's signed (made-up) result, not executed on chain."""
    assignment = assignment_for(network, task_id, performer_id=performer_id, **fields)
    result = result_for(assignment, performer_id, keccak(b"tx of task %d" % task_id))
    return report_for(network, order_for(network, assignment), result)


async def test_finding4_a_forged_first_vote_does_not_block_honest_votes(network, accounts, sender_for):
    honest = await executed_report(network, task_id=1)
    attacker = network.operators[3]
    made_up = dataclasses.replace(honest.result, tx_hash=keccak(b"made up"))
    forgeries = [
        # A made-up result the attacker claims and signs as its own, under the real assignment.
        report_for(network, honest.order, dataclasses.replace(made_up, performer_id=3)),
        # A made-up result in the assigned performer's name, signed by the attacker.
        report_for(network, honest.order, made_up, signer=attacker),
        # An assignment of its own making, naming itself, for this task and a future one.
        *(
            report_for(
                network,
                order_for(network, assignment_for(network, task_id, performer_id=3), signer=attacker),
                result_for(assignment_for(network, task_id, performer_id=3), 3, keccak(b"x")),
            )
            for task_id in (1, 2)
        ),
        # The real assignment with a result for another task id (the next one).
        report_for(network, honest.order, dataclasses.replace(made_up, task_id=2)),
    ]
    async with open_desk(network, sender_for(accounts[7])) as desk:
        for forged in forgeries:
            with pytest.raises(VoteRefused):
                await desk.vote(forged, 3)
        assert desk.desk.collectors == {}
        assert desk.refused("unproven") == len(forgeries)

        # The honest votes all count, and the task is approved on chain.
        assert [await desk.vote(honest, i) for i in (1, 2, 3)] == [b"counted"] * 3
        [decision] = await desk.decisions()
        await desk.settled()  # the desk has recorded it too
        assert (decision.task_id, decision.attempt, decision.approved) == (1, 1, True)
        assert await network.center.call("taskStatus", 1) == (True, 0b10)
        # The attempt is decided: its collector is gone, and a late vote opens no other.
        assert desk.desk.collectors == {}
        assert await desk.vote(honest, 0) == b"decided"
        assert desk.desk.collectors == {}
        # What the desk exports (node.metrics): each vote by outcome, the submission and its gas.
        votes = {o: desk.exported("triggerx_aggregator_votes_total", outcome=o) for o in VOTE_OUTCOMES}
        assert votes == {"refused": len(forgeries), "accepted": 3, "already_decided": 1, "duplicate": 0}
        assert desk.exported("triggerx_aggregator_submissions_total", decision="approve", outcome="ok") == 1
        await until(lambda: desk.exported("triggerx_aggregator_submission_gas_total", decision="approve") > 0)
        assert desk.exported("triggerx_aggregator_collectors_open") == 0


async def test_finding4_votes_count_only_for_the_result_they_sign(network, accounts, sender_for):
    async with open_desk(network, sender_for(accounts[7])) as desk:
        # The assigned performer may sign several results for one attempt: each gets its own
        # count, up to the cap, and no vote counts toward a result it did not sign.
        reports = [
            report_for(
                network,
                order_for(network, assignment_for(network, 1)),
                result_for(assignment_for(network, 1), 0, keccak(b"tx %d" % n)),
            )
            for n in range(5)
        ]
        for report in reports[:4]:
            assert await desk.vote(report, 1) == b"counted"
        assert len(desk.desk.collectors) == 4
        with pytest.raises(VoteRefused, match="already has 4 results"):
            await desk.vote(reports[4], 1)
        assert desk.refused("results_per_attempt") == 1
        for report in reports[:4]:
            ballot = desk.desk.collectors[(1, 1, report.task_info().result_hash)]
            assert ballot.collector.task == report.task_info()
            assert ballot.collector.decision().value == "pending"

        # A vote signed for one result, carried with the report of another, is refused.
        first, second = reports[0], reports[1]
        vote = network.vote(2, second.task_info(), True)
        with pytest.raises(VoteRefused, match="not about the result it carries"):
            await desk.desk.on_vote(network.operators[2].address, encode(VoteMessage(first, vote)))
        # So is a vote on the right result whose signature binds another job.
        other_job = dataclasses.replace(first.task_info(), job_id=first.task_info().job_id + 1)
        relabelled = dataclasses.replace(network.vote(2, other_job, True), task=first.task_info())
        with pytest.raises(VoteRefused, match="the signature does not verify"):
            await desk.desk.on_vote(network.operators[2].address, encode(VoteMessage(first, relabelled)))
        # And a vote relayed by anyone but its operator.
        vote = network.vote(2, first.task_info(), True)
        with pytest.raises(VoteRefused, match="from its operator"):
            await desk.desk.on_vote(network.operators[3].address, encode(VoteMessage(first, vote)))
        # An inactive performer's result opens nothing, even under a genuine assignment.
        await network.registry.transact(network.governor, "deactivate", 2)
        await desk.desk.directory.refresh()
        with pytest.raises(VoteRefused, match="not the assigned, active operator"):
            await desk.vote(unexecuted_report(network, task_id=2, performer_id=2), 1)


async def test_finding4_state_expires_with_the_deadline(network, accounts, sender_for):
    clock = Clock(EXECUTED_DEADLINE - 100)
    async with open_desk(network, sender_for(accounts[7]), grace=60.0, clock=clock) as desk:
        # Task 1 is executed and decided: remembered as decided until its deadline + grace.
        executed = await executed_report(network, task_id=1)
        for i in (1, 2, 3):
            await desk.vote(executed, i)
        await desk.decisions()
        await desk.settled()
        assert desk.desk.decided == {(1, 1): EXECUTED_DEADLINE + 60}
        # Task 2's assignment ends 50 s from now, task 3's in 100.
        short = unexecuted_report(network, task_id=2, deadline=EXECUTED_DEADLINE - 50)
        long = unexecuted_report(network, task_id=3, deadline=EXECUTED_DEADLINE + 100)
        assert await desk.vote(short, 1) == b"counted"
        assert await desk.vote(long, 1) == b"counted"
        assert {key[0] for key in desk.desk.collectors} == {2, 3}

        clock.now = EXECUTED_DEADLINE + 9  # a second before task 2's collector expires
        assert desk.desk.sweep() == 0
        clock.now = EXECUTED_DEADLINE + 10
        # The next vote sweeps first: task 2's collector is gone, and its votes are refused.
        assert await desk.vote(long, 2) == b"counted"
        assert {key[0] for key in desk.desk.collectors} == {3}
        with pytest.raises(VoteRefused, match="deadline has passed"):
            await desk.vote(short, 2)
        assert desk.refused("expired") == 1
        assert set(desk.desk.results) == {(3, 1)}

        # The periodic sweep forgets the decided attempt, then the last collector.
        clock.now = EXECUTED_DEADLINE + 60
        desk.nursery.start_soon(desk.desk.sweep_forever, 0.01)
        await until(lambda: not desk.desk.decided, timeout=5)
        assert {key[0] for key in desk.desk.collectors} == {3}
        clock.now = EXECUTED_DEADLINE + 160
        await until(lambda: not desk.desk.collectors, timeout=5)
        assert (desk.desk.collectors, desk.desk.results, desk.desk.decided) == ({}, {}, {})
        # A late vote on the forgotten task is refused as expired, not counted anew.
        with pytest.raises(VoteRefused, match="deadline has passed"):
            await desk.vote(executed, 0)
        assert desk.desk.collectors == {}


async def test_finding4_the_number_of_open_collectors_is_capped(network, accounts, sender_for):
    clock = Clock(EXECUTED_DEADLINE - 100)
    async with open_desk(network, sender_for(accounts[7]), max_collectors=2, clock=clock) as desk:
        reports = [unexecuted_report(network, task_id=t, deadline=EXECUTED_DEADLINE) for t in (1, 2)]
        later = unexecuted_report(network, task_id=3, deadline=EXECUTED_DEADLINE + 1000)
        for report in reports:
            assert await desk.vote(report, 1) == b"counted"
        for _ in range(3):
            with pytest.raises(VoteRefused, match="too many results"):
                await desk.vote(later, 1)
        assert desk.refused("collectors") == 3
        # Votes on the open ones still count.
        assert await desk.vote(reports[0], 2) == b"counted"
        # Once they expire there is room again.
        clock.now = EXECUTED_DEADLINE + 60
        assert await desk.vote(later, 1) == b"counted"
        assert {key[0] for key in desk.desk.collectors} == {3}


async def test_low_resubmits_after_a_refreshed_operator_set(network, accounts, sender_for, caplog):
    caplog.set_level(logging.INFO, logger="triggerx.aggregator")
    report = await executed_report(network, task_id=1)
    async with open_desk(network, sender_for(accounts[7]), backoff=0.01) as desk:
        # Operator 3 leaves after the desk read the operator set: the desk still counts its vote.
        await network.registry.transact(network.governor, "deactivate", 3)
        for i in (0, 1, 2, 3):
            assert await desk.vote(report, i) == b"counted"
        # The first submission names operator 3 and reverts; the desk re-reads the set, where
        # 1 and 2 hold two thirds of the 300 still active, and resubmits with the same votes.
        [decision] = await desk.decisions()
        await desk.settled()  # the desk has recorded it too
        assert decision.approved
        for outcome in ("reverted", "ok"):
            submitted = desk.exported(
                "triggerx_aggregator_submissions_total", decision="approve", outcome=outcome
            )
            assert submitted == 1
        receipt = await network.center.rpc.call("eth_getTransactionReceipt", decision.tx_hash)
        [event] = network.center.events(Receipt.from_rpc(receipt), "TaskSubmitted")
        assert (event.args["signerBitmap"], event.args["totalStake"]) == (0b111, 300)
    messages = [r.getMessage() for r in caplog.records if r.name == "triggerx.aggregator"]
    [resubmitted] = [m for m in messages if "resubmitting" in m]
    assert "InactiveSigner" in resubmitted
    assert "refreshing the operator set" in resubmitted
    assert any("task 1 attempt 1 decided" in m for m in messages)


async def test_low_resubmission_is_bounded_and_resumes_with_the_next_vote(
    network, accounts, sender_for, caplog
):
    caplog.set_level(logging.INFO, logger="triggerx.aggregator")
    # The performer reports an execution the hub has not recorded (yet): approvals revert.
    report = unexecuted_report(network, task_id=1)
    async with open_desk(network, sender_for(accounts[7]), resubmits=2, backoff=0.01) as desk:
        for i in (1, 2, 3):
            assert await desk.vote(report, i) == b"counted"
        await desk.settled()
        messages = [r.getMessage() for r in caplog.records if r.name == "triggerx.aggregator"]
        assert len([m for m in messages if "resubmitting" in m]) == 2
        [gave_up] = [m for m in messages if "giving up" in m]
        assert "reverted 3 times" in gave_up
        assert desk.desk.decided == {}
        assert await desk.decided_on_chain() == []
        assert len(desk.desk.collectors) == 1  # the votes are kept
        # Once the execution is on chain, the next vote (the performer's co-signature) decides.
        await network.execute(report.task_info())
        assert await desk.vote(report, 0) == b"counted"
        [decision] = await desk.decisions()
        await desk.settled()  # the desk has recorded it too
        assert decision.approved
        assert await network.center.call("taskStatus", 1) == (True, 0b10)


async def test_an_attempt_decided_by_another_aggregator_is_done(network, accounts, sender_for):
    report = await executed_report(network, task_id=1)
    first = network.submission(report.task_info(), True, [1, 2, 3])
    await network.center.transact(sender_for(accounts[6]), "submitTask", *first.call_args())
    async with open_desk(network, sender_for(accounts[7])) as desk:
        for i in (1, 2, 3):
            assert await desk.vote(report, i) == b"counted"
        await desk.settled()
        assert len(await desk.decided_on_chain()) == 1  # the other aggregator's, not a second
        assert (1, 1) in desk.desk.decided
        assert desk.desk.collectors == {}
        assert await desk.vote(report, 0) == b"decided"
        submitted = desk.exported(
            "triggerx_aggregator_submissions_total", decision="approve", outcome="already_decided"
        )
        assert submitted == 1
        assert desk.exported("triggerx_aggregator_submission_gas_total", decision="approve") == 0


async def test_review_a_bad_vote_costs_one_verification_per_operator_and_result(
    network, accounts, sender_for
):
    """Votes whose signature failed were never remembered: one keeper replaying bad votes made
    the desk verify each (~6 ms of BLS, under the desk's one lock) and delayed honest votes."""
    honest = await executed_report(network, task_id=1)
    task = honest.task_info()
    bad = dataclasses.replace(network.vote(3, task, True), signature=network.vote(2, task, True).signature)
    async with open_desk(network, sender_for(accounts[7])) as desk:
        payload = encode(VoteMessage(honest, bad, "trace"))
        sender = network.operators[3].address
        with pytest.raises(VoteRefused, match="the signature does not verify"):
            await desk.desk.on_vote(sender, payload)
        for _ in range(50):  # refused at once: no verification, no lock
            with pytest.raises(VoteRefused, match="was refused before"):
                await desk.desk.on_vote(sender, payload)
        assert [await desk.vote(honest, i) for i in (0, 1, 2)] == [b"counted"] * 3


async def test_a_dead_performers_execution_is_decided_from_the_chain(network, accounts, sender_for):
    """Issue 8: a performer that dies right after its transaction leaves no report, so nobody
    voted and the task could never be decided. The dispatcher rebuilds the result from the
    chain and relays it unsigned; the desk counts votes on it only once it has checked it
    against the chain, and the AttestationCenter decides without the performer's signature."""
    honest = await executed_report(network, task_id=1)  # never sent: its performer died
    performer = network.operators[0].address
    job = counter_job(JOB_OWNER.address, network.job_id, network.terms, network.calldata)
    attempt = AttemptRecord(number=1, performer=performer, assigned_at=0.0, deadline=EXECUTED_DEADLINE)
    task = TaskRecord(id=1, job_id=1, fire_at=0.0, created_at=0.0, updated_at=0.0, attempts=[attempt])
    directory = OperatorDirectory(network.registry, set())
    await directory.refresh()
    relay = ExecutionRelay(network.hub, None, directory)  # type: ignore[arg-type]  # not published here
    relayed = await relay.rebuild(task, job, attempt)
    assert relayed.performer_signature == b""
    assert (relayed.result, relayed.order.assignment) == (honest.result, honest.order.assignment)

    async with open_desk(network, sender_for(accounts[7])) as desk:
        # A made-up unsigned result for the same attempt is refused: the chain does not show it.
        made_up = dataclasses.replace(honest.result, target_success=False)
        with pytest.raises(VoteRefused, match="must be the execution on chain"):
            await desk.vote(ResultMessage(relayed.order, made_up, b""), 1)
        assert [await desk.vote(relayed, i) for i in (1, 2, 3)] == [b"counted"] * 3
        assert await desk.vote(relayed, 1) == b"counted"  # a resent vote counts once, and says so
        [decision] = await desk.decisions()
        assert (decision.task_id, decision.approved) == (1, True)
    held, _, settled = await network.hub.call("escrowOf", 1, network.job_id, 1, performer)
    assert (held, settled) == (True, True)  # released to the performer
