"""Tasks of jobs whose script decides the call, on anvil with the real sandbox: the performer
runs the script and sends what it decides (a call, or a skip the hub records), the attesters
re-run it and approve exactly that; a performer that sends anything else is voted down."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from eth_utils import keccak

from node.chain import TransactionSender
from node.content import ScriptCache, ScriptFetcher, script_cid
from node.keeper import ResultChecker, ScriptRunner, TaskExecutor
from node.sandbox import BwrapSandbox
from protocol import Assignment, AssignmentMessage, ExecutionResult, JobTerms, encode_calldata
from protocol.result import NO_SCRIPT
from protocol.scripts import FAILED_OUTPUT, ScriptCall, ScriptEvidence

from ..conftest import CHAIN_ID
from ..consensus_helpers import FIRE, JOB_FEE, JOB_OWNER, Network
from .test_task_pipeline import World, assign, executor_for, make_world

pytestmark = pytest.mark.slow
FUNCTION = "incrementBy(uint256)"
SEVEN = b"print('[7]')"
LATER = b"import json; print(json.dumps({'shouldExecute': False, 'reason': 'not yet'}))"
NOW = b"import json; print(json.dumps({'shouldExecute': True, 'args': [3], 'reason': 'now'}))"
BROKEN = b"raise SystemExit(3)"
# One more than the counter's count, read from the input's values.
NEXT = b"""import json, sys
count = json.load(sys.stdin)["values"]["count"]
print(json.dumps([int(count) + 1]))
"""


@pytest.fixture
async def world(accounts, sender_for) -> World:
    return await make_world(accounts, sender_for)


@pytest.fixture
async def runner(tmp_path) -> ScriptRunner:
    """Performers' and attesters' script runner, holding the scripts above in its cache."""
    cache = ScriptCache(tmp_path / "scripts")
    for source in (SEVEN, LATER, NOW, BROKEN, NEXT):
        cache.put(script_cid(source), source)
    fetcher = ScriptFetcher([], cache)
    yield ScriptRunner(fetcher, BwrapSandbox())
    await fetcher.aclose()


async def script_job(
    world: World, accounts, source: bytes, nonce: int, values: tuple[str, ...] = ()
) -> AssignmentMessage:
    """JOB_OWNER's job `nonce` whose `source` (Python) gives incrementBy's arguments from an
    input with `values`, registered, and its first task's order to keeper accounts[2] (operator 0)."""
    network: Network = world.network
    call = ScriptCall(script_cid(source), "python", FUNCTION, (), values)
    terms = JobTerms.dynamic_call(
        network.terms.target, FUNCTION, call.args_hash, 100_000, JOB_FEE, network.terms.trigger
    )
    owner = TransactionSender(world.hub.rpc, JOB_OWNER, CHAIN_ID)
    await world.hub.transact(owner, "registerJob", nonce, terms.as_struct())
    latest = await world.hub.rpc.call("eth_getBlockByNumber", "latest", False)
    job_id = await world.hub.call("jobIdOf", JOB_OWNER.address, nonce)
    assignment = Assignment(nonce, job_id, 1, accounts[2].address, int(latest["timestamp"], 16) + 300,
                            terms.hash(), keccak(b"interval tick"))  # fmt: skip
    signature = assignment.sign(accounts[0], CHAIN_ID, world.hub.address)
    return AssignmentMessage(assignment, terms, signature, terms.selector, FIRE, script=call)


def performer(world: World, sender_for, accounts, runner: ScriptRunner) -> TaskExecutor:
    return TaskExecutor(world.hub, sender_for(accounts[2]), dispatcher=accounts[0].address, operator_id=0,
                        chain_id=CHAIN_ID, scripts=runner)  # fmt: skip


@pytest.mark.parametrize(
    ("source", "nonce", "call", "count"),
    [
        (SEVEN, 11, encode_calldata(FUNCTION, [7]), 7),
        (NOW, 12, encode_calldata(FUNCTION, [3]), 3),
        (LATER, 13, b"", 0),
        (BROKEN, 14, b"", 0),  # a script that fails is a completed failure: a skip
    ],
)
async def test_the_scripts_decision_is_executed_and_approved(
    world, accounts, sender_for, runner, source, nonce, call, count
):
    order = await script_job(world, accounts, source, nonce)
    executor = performer(world, sender_for, accounts, runner)
    result, evidence = await executor.perform(order)
    assert keccak(call) == result.calldata_hash
    assert result.skipped is (call == b"")
    assert not result.target_success if call == b"" else result.target_success
    assert result.script_input_hash == keccak(evidence.input)
    assert (result.script_exchanges_hash, evidence.exchanges) == (NO_SCRIPT, ())  # no web
    assert (result.script_output_hash == FAILED_OUTPUT) is (source == BROKEN)
    assert result.script_usage.wall_ms > 0
    assert await world.counter.call("count") == count
    escrow = await world.hub.call("escrowOf", nonce, order.assignment.job_id, 1, accounts[2].address)
    assert escrow[0]  # paid into escrow, a skip as a call
    checker = ResultChecker(world.hub, scripts=runner)
    verdict = await checker.check(order, result, evidence)
    assert verdict.approve, verdict.reason
    # The performer's run and the attester's re-run are counted (node.metrics), with the task.
    status = "failed" if source == BROKEN else "ok"
    for stats in (executor.stats, checker.stats):
        sample = stats.node.registry.get_sample_value
        assert sample("triggerx_keeper_sandbox_runs_total", {"language": "python", "status": status}) == 1
        assert sample("triggerx_keeper_sandbox_run_seconds_count", {"language": "python"}) == 1
    outcome = {"outcome": "skipped" if call == b"" else "success"}
    assert executor.stats.node.registry.get_sample_value("triggerx_keeper_tasks_executed_total", outcome) == 1


async def test_a_performer_that_sends_other_than_the_script_decides_is_rejected(
    world, accounts, sender_for, runner
):
    keeper = sender_for(accounts[2])
    checker = ResultChecker(world.hub, scripts=runner)
    honest_executor = performer(world, sender_for, accounts, runner)
    lies = [
        (SEVEN, 21, encode_calldata(FUNCTION, [8])),  # other arguments
        (SEVEN, 22, b""),  # no call: the script said [7]
        (LATER, 23, encode_calldata(FUNCTION, [1])),  # a call where it says no
    ]
    for source, nonce, sent in lies:
        order = await script_job(world, accounts, source, nonce)
        # The honest run's input and output, for the lie to carry.
        outcome, document = await honest_executor._run_script(order)
        a = order.assignment
        receipt = await world.hub.transact(keeper, "execute", a.as_struct(), order.terms.as_struct(), sent,
                                           JOB_FEE, order.dispatcher_signature)  # fmt: skip
        events = world.hub.events(receipt, "TaskExecuted")
        result = ExecutionResult(
            task_id=a.task_id,
            job_id=a.job_id,
            attempt=1,
            performer_id=0,
            tx_hash=bytes.fromhex(receipt.tx_hash[2:]),
            block_number=receipt.block_number,
            calldata_hash=keccak(sent),
            target_success=bool(events) and events[0].args["success"],
            script_input_hash=keccak(document),
            script_output_hash=outcome.output_hash,
        )
        # Its own reported output does not give what it sent: a lie shown, voted down.
        verdict = await checker.check(order, result, ScriptEvidence(document))
        assert (verdict.approve, verdict.abstain) == (False, False), nonce
        assert "differ from what the job's script gives" in verdict.reason, (nonce, verdict)
        # Another output than the attester's (a failure, a "no") is no proof: no vote, no pay.
        for claimed in (FAILED_OUTPUT, keccak(b'{"shouldExecute": false}')):
            other = dataclasses.replace(result, script_output_hash=claimed)
            verdict = await checker.check(order, other, ScriptEvidence(document))
            assert (verdict.approve, verdict.abstain) == (False, True), (nonce, verdict)
            assert "output differs" in verdict.reason


async def test_script_hashes_are_bound_to_their_input_and_absent_without_a_script(
    world, accounts, sender_for, runner
):
    order = await script_job(world, accounts, SEVEN, 31)
    result, evidence = await performer(world, sender_for, accounts, runner).perform(order)
    checker = ResultChecker(world.hub, scripts=runner)
    wrong_input = dataclasses.replace(result, script_input_hash=keccak(b"another input"))
    verdict = await checker.check(order, wrong_input, evidence)
    assert verdict.reason == "the result's input hash is not the input's"
    # A job with static arguments: its result carries no script hashes.
    static_performer, static_order = await assign(world, accounts, task_id=32)
    executor = executor_for(world, sender_for, accounts, static_performer.account, static_performer.id)
    static = await executor.execute(static_order)
    assert (static.script_input_hash, static.script_output_hash) == (NO_SCRIPT, NO_SCRIPT)
    assert (await checker.check(static_order, static)).approve
    claimed = dataclasses.replace(static, script_output_hash=keccak(b"[7]"))
    verdict = await checker.check(static_order, claimed)
    assert verdict.reason == "the result claims a script for a job without one"


async def test_a_scripts_input_carries_the_chains_values_and_attesters_read_them_again(
    world, accounts, sender_for, runner
):
    counter = world.counter.address
    values = (f"count = call {counter} count() returns (uint256)[0] decimals 0",)
    checker = ResultChecker(world.hub, scripts=runner)
    for nonce in (51, 52):  # the count moves: each input carries the count at its block
        order = await script_job(world, accounts, NEXT, nonce, values)
        before = await world.counter.call("count")
        result, evidence = await performer(world, sender_for, accounts, runner).perform(order)
        assert msgspec.json.decode(evidence.input)["values"] == {"count": str(before)}
        assert await world.counter.call("count") == 2 * before + 1
        assert (await checker.check(order, result, evidence)).approve
    # An input whose value is not the chain's at its block is not the job's input.
    altered = evidence.input.replace(f'"count":"{before}"'.encode(), f'"count":"{before + 5}"'.encode())
    assert altered != evidence.input
    lie = dataclasses.replace(result, script_input_hash=keccak(altered))
    verdict = await checker.check(order, lie, ScriptEvidence(altered))
    assert verdict.reason == "the script input is not the one the order, its block and its values make"
