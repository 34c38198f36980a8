"""An `after` fire is checked against the chain: an execution after the predecessor task's
approval (a real quorum's TaskSubmitted) is approved; one that names a rejection, another
task or job, another block time, a look-alike event from another contract, or that came
before the approval is refused by an honest performer and rejected by attesters, even with
the dispatcher's signature on the evidence."""

from __future__ import annotations

import time

import eth_abi
import msgspec
import pytest
from eth_utils import to_checksum_address

from gateway import GatewayStorage, JobSpec, TaskLedger, parse_create_request, sign_job
from node.keeper import AssignmentRefused, ResultChecker, TaskExecutor
from node.store import Store
from protocol import OwnerConsent, job_id_of, load_operator_set
from protocol.triggers import NotYetVisibleError, Readers, TriggerFire
from protocol.triggers.after import KIND, TASK_SUBMITTED, ApprovalEvidence

from ..conftest import CHAIN_ID
from ..consensus_helpers import JOB_FEE, JOB_OWNER, CarelessExecutor, four_keeper_network
from ..gateway_helpers import order_signer

# Runtime code that emits LOG4 with the call's first four words as topics, the rest as data.
LOG4_EMITTER = bytes.fromhex("366000600037606051604051602051600051608036036080a400")


@pytest.fixture
async def network(accounts, sender_for):
    return await four_keeper_network(accounts, sender_for)


async def decide(network, task_id: int, approve: bool):
    """Execute the network job's task `task_id` and have a quorum decide it; the decision's receipt."""
    task = network.task(task_id)
    await network.execute(task)
    submission = network.submission(task, approve, [0, 1, 2, 3] if approve else [1, 2])
    return await network.center.transact(network.governor, "submitTask", *submission.call_args())


async def block_time(network, number: int) -> float:
    block = await network.hub.rpc.call("eth_getBlockByNumber", hex(number), False)
    return float(int(block["timestamp"], 16))


async def test_an_after_fire_is_approved_only_for_its_predecessors_approval(
    network, accounts, sender_for, tmp_path
):
    network, keepers = network
    successor = JobSpec(
        owner=JOB_OWNER.address,
        nonce="5",
        expiry=int(time.time()) + 3600,
        target=network.terms.target,
        function="increment()",
        schedule_type="after",
        schedule={"jobId": str(network.job_id)},
        max_fee_per_task=str(JOB_FEE),
        gas_limit=100_000,
    )
    body = msgspec.json.encode(
        {"job": successor, "signature": sign_job(successor, JOB_OWNER, CHAIN_ID, network.hub.address)}
    )
    job = parse_create_request(body, CHAIN_ID, network.hub.address, time.time())
    approved = await decide(network, 1001, approve=True)
    rejected = await decide(network, 1002, approve=False)
    honest = ApprovalEvidence(1001, bytes.fromhex(approved.tx_hash[2:]), approved.block_number)
    of_rejection = ApprovalEvidence(1002, bytes.fromhex(rejected.tx_hash[2:]), rejected.block_number)
    operators = await load_operator_set(network.registry)
    checker = ResultChecker(network.hub)  # it knows the hub; no other chain is needed
    performer = sender_for(keepers[0])
    executor = TaskExecutor(
        network.hub, performer, dispatcher=accounts[0].address, operator_id=0, chain_id=CHAIN_ID
    )
    careless = CarelessExecutor(
        network.hub, performer, dispatcher=accounts[0].address, operator_id=0, chain_id=CHAIN_ID
    )
    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        record = storage.create_job(job, time.time())
        ledger = TaskLedger(storage)
        dispatcher = order_signer(storage, ledger, network)
        fire_at = await block_time(network, approved.block_number)
        task = ledger.create(record, fire_at, detail=honest.encode())
        order = dispatcher.order_for(task.id, 1, operators.operators[0].account, OwnerConsent(
            successor.expiry, job.consent_signature))  # fmt: skip
        result = await executor.execute(order)
        verdict = await checker.check(order, result)
        assert verdict.approve, verdict.reason
        # A fire on a rejection: an honest performer refuses; attesters reject a careless one.
        task = ledger.create(
            record, await block_time(network, rejected.block_number), detail=of_rejection.encode()
        )
        order = dispatcher.order_for(task.id, 1, operators.operators[0].account, None)
        with pytest.raises(AssignmentRefused) as refused:
            await executor.execute(order)
        problem = (
            f"transaction {rejected.tx_hash} has no approval of task 1002 of job {network.job_id} "
            "by the AttestationCenter"
        )
        assert str(refused.value) == f"task {task.id}: {problem}"
        result = await careless.execute(order)
        verdict = await checker.check(order, result)
        assert (verdict.approve, verdict.reason) == (False, f"the trigger did not fire: {problem}")
    # Without a hub to find the AttestationCenter by, a node abstains rather than guess.
    blind = Readers({CHAIN_ID: network.hub.rpc})
    with pytest.raises(NotYetVisibleError):
        await KIND.check_on_chain(KIND.decode(order.trigger.spec), order.trigger, blind, result.block_number)


async def test_forged_approvals_are_refused(network, accounts, sender_for, rpc):
    network, _ = network
    approved = await decide(network, 1001, approve=True)
    readers = Readers({}, hub=network.hub)
    spec = KIND.decode({"jobId": str(network.job_id)})
    at = await block_time(network, approved.block_number)
    head = int(await rpc.call("eth_blockNumber"), 16) + 1

    async def problem(evidence: ApprovalEvidence, fire_at: float = at, job=spec, executed_in: int = head):
        fire = TriggerFire("after", {"jobId": job.job_id}, fire_at, evidence.encode())
        return await KIND.check_on_chain(job, fire, readers, executed_in)

    tx = bytes.fromhex(approved.tx_hash[2:])
    honest = ApprovalEvidence(1001, tx, approved.block_number)
    assert await problem(honest) is None
    none_of = f"transaction {approved.tx_hash} has no approval of task"
    assert (await problem(ApprovalEvidence(1002, tx, approved.block_number))).startswith(none_of + " 1002")
    other_job = KIND.decode({"jobId": str(job_id_of(JOB_OWNER.address, 9))})
    assert (await problem(honest, job=other_job)).startswith(none_of + " 1001 of job")
    assert (
        await problem(honest, fire_at=at + 1)
        == f"the fire time {at + 1} is not block {approved.block_number}'s time"
    )
    assert await problem(ApprovalEvidence(1001, tx, approved.block_number - 1)) == (
        f"transaction {approved.tx_hash} is not in block {approved.block_number - 1}"
    )
    assert await problem(honest, executed_in=approved.block_number) == (
        f"executed in block {approved.block_number}, not after the predecessor's approval "
        f"in block {approved.block_number}"
    )
    # A contract of anyone's emits an event that looks like the center's approval of task 1003.
    forger = to_checksum_address("0x" + "f0" * 20)
    await rpc.call("anvil_setCode", forger, "0x" + LOG4_EMITTER.hex())
    topics = [TASK_SUBMITTED, *(n.to_bytes(32, "big") for n in (1003, network.job_id, 0))]
    data = eth_abi.encode(
        ["uint32", "bytes32", "uint256", "uint256", "uint256"], [1, bytes(32), 15, 400, 400]
    )
    forged = await sender_for(accounts[7]).transact(forger, b"".join(topics) + data)
    assert forged.logs[0]["topics"][0] == "0x" + TASK_SUBMITTED.hex()
    fake = ApprovalEvidence(1003, bytes.fromhex(forged.tx_hash[2:]), forged.block_number)
    forged_at = await block_time(network, forged.block_number)
    assert await problem(fake, fire_at=forged_at, executed_in=forged.block_number + 1) == (
        f"transaction {forged.tx_hash} has no approval of task 1003 of job {network.job_id} "
        "by the AttestationCenter"
    )
    # A block this node's chain has not reached yet: the attester abstains.
    with pytest.raises(NotYetVisibleError):
        await problem(ApprovalEvidence(1001, tx, head + 100), executed_in=head + 200)
