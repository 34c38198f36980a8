"""An event fire's log is looked up on chain: an execution for a log that is there and matches
the job is approved; for a log that is not there, or that the job's conditions exclude, an
honest performer refuses to execute and attesters reject the execution of one that did not
look, even with the dispatcher's signature on the evidence."""

from __future__ import annotations

import dataclasses
import time

import msgspec
import pytest

from gateway import GatewayStorage, JobSpec, TaskLedger, parse_create_request, sign_job
from node.chain import deploy, load_artifact
from node.keeper import AssignmentRefused, ResultChecker, TaskExecutor
from node.store import Store
from protocol import OwnerConsent, load_operator_set
from protocol.triggers import Readers
from protocol.triggers.event import KIND, LogEvidence

from ..conftest import CHAIN_ID
from ..consensus_helpers import JOB_FEE, JOB_OWNER, CarelessExecutor, four_keeper_network
from ..gateway_helpers import order_signer


@pytest.fixture
async def network(accounts, sender_for):
    return await four_keeper_network(accounts, sender_for)


async def test_an_event_fire_is_approved_only_for_its_log_on_chain(network, accounts, sender_for, tmp_path):
    network, keepers = network
    minter = sender_for(accounts[0])
    token = await deploy(minter, load_artifact("TestToken"), "T", "T")
    spec = JobSpec(
        owner=JOB_OWNER.address,
        nonce="2",
        expiry=int(time.time()) + 3600,
        target=network.terms.target,
        function="increment()",
        schedule_type="event",
        schedule={
            "chainId": CHAIN_ID,
            "addresses": [token.address],
            "event": "Transfer(address indexed from, address indexed to, uint256 value)",
            "where": ["value >= 100"],
            "confirmations": 0,
        },
        max_fee_per_task=str(JOB_FEE),
        gas_limit=100_000,
    )
    body = msgspec.json.encode(
        {"job": spec, "signature": sign_job(spec, JOB_OWNER, CHAIN_ID, network.hub.address)}
    )
    job = parse_create_request(body, CHAIN_ID, network.hub.address, time.time())
    big = await token.transact(minter, "mint", accounts[7].address, 500)
    small = await token.transact(minter, "mint", accounts[7].address, 5)

    async def fire_at(receipt) -> float:
        block = await network.hub.rpc.call("eth_getBlockByNumber", hex(receipt.block_number), False)
        return float(int(block["timestamp"], 16))

    honest = LogEvidence.of(CHAIN_ID, big.logs[0])
    nowhere = dataclasses.replace(honest, log_index=7)  # no such log in that transaction
    excluded = LogEvidence.of(CHAIN_ID, small.logs[0])  # a Transfer, but of 5
    operators = await load_operator_set(network.registry)
    checker = ResultChecker(network.hub, readers=Readers({CHAIN_ID: network.hub.rpc}))
    executor = TaskExecutor(
        network.hub, sender_for(keepers[0]), dispatcher=accounts[0].address, operator_id=0, chain_id=CHAIN_ID
    )
    careless = CarelessExecutor(
        network.hub, sender_for(keepers[0]), dispatcher=accounts[0].address, operator_id=0, chain_id=CHAIN_ID
    )
    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        record = storage.create_job(job, time.time())
        ledger = TaskLedger(storage)
        dispatcher = order_signer(storage, ledger, network)
        verdicts, refusals = [], []
        for n, (evidence, receipt) in enumerate(((honest, big), (nowhere, big), (excluded, small))):
            task = ledger.create(record, await fire_at(receipt), detail=evidence.encode())
            consent = OwnerConsent(spec.expiry, job.consent_signature) if n == 0 else None
            order = dispatcher.order_for(task.id, 1, operators.operators[0].account, consent)
            if n > 0:  # an honest performer looks the log up first, and refuses
                with pytest.raises(AssignmentRefused) as refused:
                    await executor.execute(order)
                refusals.append(str(refused.value))
            result = await (executor if n == 0 else careless).execute(order)
            verdicts.append(await checker.check(order, result))
    assert refusals == [
        "task 2: the transaction has no log 7",
        "task 3: the log is not the job's event, or does not meet its conditions",
    ]
    assert verdicts[0].approve, verdicts[0].reason
    assert (verdicts[1].approve, verdicts[1].reason) == (
        False,
        "the trigger did not fire: the transaction has no log 7",
    )
    assert not verdicts[2].approve
    assert (
        verdicts[2].reason
        == "the trigger did not fire: the log is not the job's event, or does not meet its conditions"
    )
    # Without the chain to look the log up on, the attester abstains rather than guess.
    assert await ResultChecker(network.hub).check(order, result) is None
    # A job that signed 50 confirmations, executed for a log with fewer on top (review: the
    # attester counted them at its own head, so a late check approved an early execution).
    await network.hub.rpc.call("anvil_mine", hex(60))  # the attester looks long after
    patient = msgspec.structs.replace(order.trigger, spec={**order.trigger.spec, "confirmations": 50})
    problem = await KIND.check_on_chain(
        KIND.decode(patient.spec), patient, Readers({CHAIN_ID: network.hub.rpc}), result.block_number
    )
    assert problem == f"executed in block {result.block_number}, before the log's 50 confirmation(s)"
