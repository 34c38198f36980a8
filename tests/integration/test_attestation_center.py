"""OperatorRegistry and AttestationCenter on anvil: registration with PoP, quorum, signatures, replay,
and the settlement of each decision on the hub (escrow released or refunded, performer penalised)."""

from __future__ import annotations

import dataclasses

import pytest
from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1
from py_ecc.optimized_bls12_381 import add

from node.bls import public_key_to_eip2537, signature_to_eip2537
from node.chain import RevertError
from protocol import Aggregator

from ..conftest import CHAIN_ID
from ..consensus_helpers import (
    BACKEND,
    JOB_FEE,
    JOB_OWNER,
    Network,
    bls_secret,
    deploy_network,
    operator_account,
    proof_for,
)
from ..hub_helpers import TASK_EXECUTED


@pytest.fixture
async def network(accounts, sender_for) -> Network:
    operators = [operator_account(i) for i in range(4)]
    return await deploy_network(sender_for(accounts[0]), operators, [100, 100, 100, 100], CHAIN_ID)


async def submit(network: Network, submission, sender=None):
    """Submit `submission`; a decision names an execution, so run it first if needed."""
    if await network.hub.call("taskState", submission.task.task_id) != TASK_EXECUTED:
        await network.execute(submission.task)
    return await network.center.transact(sender or network.governor, "submitTask", *submission.call_args())


async def test_registration_records_the_operator(network):
    bitmap, total, _ = await network.registry.call("activeSet")
    assert (bitmap, total) == (0b1111, 400)
    operators = await network.operator_set()
    for i in range(4):
        assert operators.operators[i].public_key == BACKEND.secret_to_public(bls_secret(i))
        assert operators.operators[i].account == network.operators[i].address
        assert operators.operators[i].peer_id == b"peer-%d" % i


async def test_keys_without_a_valid_proof_of_possession_cannot_register(network):
    registry, governor = network.registry, network.governor
    newcomer = operator_account(9).address
    key, _ = proof_for(5)
    _, someone_elses_proof = proof_for(6)
    # A rogue key's owner cannot produce the PoP: any other PoP fails.
    with pytest.raises(RevertError, match=r"InvalidProofOfPossession\(\)"):
        await registry.transact(governor, "registerOperator", newcomer, key, someone_elses_proof, b"p", 1)
    # A plain signature of the key (the signing DST, not the PoP DST) is no proof either.
    compressed = BACKEND.secret_to_public(bls_secret(5))
    plain = signature_to_eip2537(BACKEND.sign(bls_secret(5), compressed))
    with pytest.raises(RevertError, match=r"InvalidProofOfPossession\(\)"):
        await registry.transact(governor, "registerOperator", newcomer, key, plain, b"p", 1)
    # The point at infinity, and a point off the curve.
    _, proof = proof_for(5)
    with pytest.raises(RevertError, match=r"InvalidPublicKey\(\)"):
        await registry.transact(governor, "registerOperator", newcomer, bytes(128), proof, b"p", 1)
    off_curve = key[:-1] + bytes([key[-1] ^ 1])
    with pytest.raises(RevertError, match=r"InvalidProofOfPossession\(\)"):
        await registry.transact(governor, "registerOperator", newcomer, off_curve, proof, b"p", 1)
    # An already registered key, and a caller who is not the governor.
    key0, proof0 = proof_for(0)
    with pytest.raises(RevertError, match=r"KeyAlreadyRegistered\(\)"):
        await registry.transact(governor, "registerOperator", newcomer, key0, proof0, b"p", 1)
    _, total, _ = await registry.call("activeSet")
    assert total == 400
    assert await registry.call("operatorCount") == 4


async def test_two_thirds_of_the_stake_approves(network):
    task = network.task()
    submission = network.submission(task, True, [1, 2, 3])
    receipt = await submit(network, submission)
    [event] = network.center.events(receipt, "TaskSubmitted")
    assert event.args["taskId"] == task.task_id
    assert event.args["signerBitmap"] == 0b1110
    assert (event.args["signedStake"], event.args["totalStake"]) == (300, 400)
    assert await network.center.call("taskStatus", task.task_id) == (True, 0b10)
    assert await network.center.call("operatorCounters", 0) == (0, 1, 0)
    for i in (1, 2, 3):
        assert await network.center.call("operatorCounters", i) == (1, 0, 0)


async def test_one_short_of_two_thirds_is_refused(network):
    await network.registry.transact(network.governor, "updateStake", 2, 99)
    await network.registry.transact(network.governor, "updateStake", 3, 1)
    task = network.task()  # total 300; operators 1 and 2 hold 199, one short of 200
    with pytest.raises(RevertError) as caught:
        await submit(network, network.submission(task, True, [1, 2]))
    assert caught.value.error_name == "QuorumNotReached"
    assert caught.value.error_args == {"signedStake": 199, "totalStake": 300, "approve": True}
    await submit(network, network.submission(task, True, [1, 2, 3]))
    assert (await network.center.call("taskStatus", task.task_id))[0] is True


async def test_a_third_rejects_and_the_attempt_is_decided(network):
    task = network.task(attempt=1)
    receipt = await submit(network, network.submission(task, False, [2, 3]))
    [event] = network.center.events(receipt, "TaskRejected")
    assert (event.args["signedStake"], event.args["attempt"]) == (200, 1)
    assert await network.center.call("operatorCounters", 0) == (0, 0, 1)
    approval = network.submission(task, True, [1, 2, 3])
    with pytest.raises(RevertError, match="AttemptAlreadyDecided"):
        await network.center.transact(network.governor, "submitTask", *approval.call_args())
    assert await network.center.call("taskStatus", task.task_id) == (False, 0b10)


async def test_review_nobody_decides_an_attempt_that_never_ran(network):
    """A colluding third pre-rejected the next task ids' attempts with made-up results, so that
    honest keepers' later executions could never be approved (and never paid). A decision now
    names an execution the hub recorded, or reverts."""
    future = network.task(task_id=9, attempt=1)
    for signers, approve in (([1, 2, 3], False), ([2, 3], False), ([1, 2, 3], True)):
        submission = network.submission(future, approve, signers)
        with pytest.raises(RevertError, match="NotExecuted"):
            await network.center.transact(network.governor, "submitTask", *submission.call_args())
    assert await network.center.call("taskStatus", 9) == (False, 0)
    await submit(network, network.submission(future, True, [1, 2, 3]))
    assert (await network.center.call("taskStatus", 9))[0] is True


async def test_a_replayed_task_is_refused(network):
    submission = network.submission(network.task(), True, [1, 2, 3])
    await submit(network, submission)
    with pytest.raises(RevertError, match=r"TaskAlreadyApproved\(taskId=1\)"):
        await submit(network, submission)
    later = dataclasses.replace(submission, task=dataclasses.replace(submission.task, attempt=2))
    with pytest.raises(RevertError, match=r"TaskAlreadyApproved\(taskId=1\)"):
        await submit(network, later)


async def test_duplicate_and_inactive_signers_are_refused(network):
    task = network.task()
    submission = network.submission(task, True, [1, 2, 3])
    args = list(submission.call_args())
    args[4] = bytes([1, 1, 2, 3])
    with pytest.raises(RevertError, match=r"SignersNotStrictlyIncreasing\(position=1\)"):
        await network.center.transact(network.governor, "submitTask", *args)
    args[4] = bytes([3, 2, 1])
    with pytest.raises(RevertError, match="SignersNotStrictlyIncreasing"):
        await network.center.transact(network.governor, "submitTask", *args)
    await network.registry.transact(network.governor, "deactivate", 3)
    with pytest.raises(RevertError, match=r"InactiveSigner\(id=3\)"):
        await submit(network, submission)


async def test_the_aggregate_key_follows_deactivation(network):
    await network.registry.transact(network.governor, "deactivate", 3)
    _, total, aggregate = await network.registry.call("activeSet")
    assert total == 300
    remaining = pubkey_to_G1(BACKEND.secret_to_public(bls_secret(0)))
    for i in (1, 2):
        remaining = add(remaining, pubkey_to_G1(BACKEND.secret_to_public(bls_secret(i))))
    assert aggregate == public_key_to_eip2537(bytes(G1_to_pubkey(remaining)))
    # Two of the three remaining (200 of 300) approve; the contract checks them against
    # the active set's sum minus the silent operator 0.
    await submit(network, network.submission(network.task(), True, [1, 2]))


async def test_forged_and_wrong_message_signatures_are_refused(network):
    task = network.task()
    honest = network.submission(task, True, [1, 2, 3])
    # Signatures over another result, presented for this one.
    other = network.submission(dataclasses.replace(task, result_hash=b"\x01" * 32), True, [1, 2, 3])
    forged = dataclasses.replace(honest, aggregate_signature=other.aggregate_signature)
    with pytest.raises(RevertError, match=r"InvalidAggregateSignature\(\)"):
        await submit(network, forged)
    # Votes to reject, submitted as an approval.
    rejecting = network.submission(task, False, [1, 2, 3])
    flipped = dataclasses.replace(rejecting, approve=True)
    with pytest.raises(RevertError, match=r"InvalidAggregateSignature\(\)"):
        await submit(network, flipped)
    # Operator 3 claimed as a signer, but its signature replaced by operator 0's.
    sigs = [network.vote(i, task, True).signature for i in (0, 1, 2)]
    impostor = dataclasses.replace(honest, aggregate_signature=BACKEND.aggregate(sigs))
    with pytest.raises(RevertError, match=r"InvalidAggregateSignature\(\)"):
        await submit(network, impostor)
    await submit(network, honest)


async def test_the_performer_must_sign_its_result_and_its_vote_carries_no_stake(network):
    task = network.task()
    submission = network.submission(task, True, [1, 2, 3])
    wrong = task.sign_as_performer(network.operators[1], CHAIN_ID, network.center.address)
    with pytest.raises(RevertError, match="BadPerformerSignature"):
        await submit(network, dataclasses.replace(submission, performer_signature=wrong))
    # The performer co-signs with two attesters: 200 of 400 counts, not 300.
    with pytest.raises(RevertError) as caught:
        await submit(network, network.submission(task, True, [0, 1, 2]))
    assert caught.value.error_args == {"signedStake": 200, "totalStake": 400, "approve": True}
    # Everyone signs: 300 of 400 counts, and the performer's signature is part of the check.
    receipt = await submit(network, network.submission(task, True, [0, 1, 2, 3]))
    [event] = network.center.events(receipt, "TaskSubmitted")
    assert (event.args["signerBitmap"], event.args["signedStake"]) == (0b1111, 300)
    assert await network.center.call("operatorCounters", 0) == (1, 1, 0)


async def test_a_second_aggregator_counts_an_already_decided_task_as_done(network, accounts, sender_for):
    submission = network.submission(network.task(), True, [1, 2, 3])
    await network.execute(submission.task)
    first = Aggregator(network.center, sender_for(accounts[6]))
    second = Aggregator(network.center, sender_for(accounts[7]))
    outcome = await first.submit(submission)
    assert outcome.tx_hash is not None
    assert not outcome.already_decided
    assert await second.submit(submission) == type(outcome)(tx_hash=None, already_decided=True)
    unrelated = network.submission(network.task(task_id=2), True, [1, 2])
    with pytest.raises(RevertError, match="QuorumNotReached"):
        await second.submit(unrelated)


async def test_an_approval_pays_the_performer_from_escrow(network):
    task = network.task(task_id=5)
    await network.execute(task)
    performer = network.operators[0].address
    assert await network.hub.call("balanceOf", performer) == 0
    await submit(network, network.submission(task, True, [1, 2, 3]))
    assert await network.hub.call("balanceOf", performer) == JOB_FEE
    escrow = await network.hub.call("escrowOf", 5, task.job_id, 1, performer)
    assert escrow == (True, JOB_FEE, True)


async def test_finding3_a_rejection_refunds_the_owner_and_penalises_the_performer(network):
    """A rejection only moved a counter: the performer kept the fee. Now the owner gets it
    back and, when two thirds of the stake rejected, the performer loses penaltyBps of its stake."""
    task = network.task(task_id=6)
    await network.execute(task)
    owner_before = await network.hub.call("balanceOf", JOB_OWNER.address)
    receipt = await submit(network, network.submission(task, False, [1, 2, 3]))
    assert await network.hub.call("balanceOf", JOB_OWNER.address) == owner_before + JOB_FEE
    assert await network.hub.call("balanceOf", network.operators[0].address) == 0
    [penalty] = network.registry.events(receipt, "OperatorPenalized")
    assert penalty.args == {"id": 0, "penalty": 10, "stake": 90}
    # Proven wrong, the task is reopened for a later attempt.
    [reopened] = network.hub.events(receipt, "TaskReopened")
    assert (reopened.args["taskId"], reopened.args["attempt"]) == (6, task.attempt)
    _, total, _ = await network.registry.call("activeSet")
    assert total == 390
    # A third of the stake can block the payment (the owner is refunded) but slash nobody.
    minority = network.task(task_id=7, performer_id=1)
    receipt = await submit(network, network.submission(minority, False, [2, 3]))
    assert network.registry.events(receipt, "OperatorPenalized") == []
    assert network.hub.events(receipt, "TaskReopened") == []  # nor make the target run again
    assert (
        await network.hub.call("balanceOf", JOB_OWNER.address) == owner_before + JOB_FEE
    )  # charged, refunded
    # Only the AttestationCenter penalises.
    with pytest.raises(RevertError, match="NotAttestationCenter"):
        await network.registry.transact(network.governor, "penalize", 1)


async def test_finding6_nobody_takes_credit_for_another_performers_execution(network):
    """Anyone could front-run submitTask with their own TaskInfo: votes bound only task id and
    result. Now votes bind the whole TaskInfo, and an approval must match the hub's record."""
    honest = network.task(task_id=8, performer_id=0)
    await network.execute(honest)
    thief = dataclasses.replace(honest, performer_id=1)
    # The honest votes do not carry over to the thief's TaskInfo.
    stolen = dataclasses.replace(
        network.submission(thief, True, [0, 2, 3]),
        aggregate_signature=network.submission(honest, True, [0, 2, 3]).aggregate_signature,
    )
    with pytest.raises(RevertError, match="InvalidAggregateSignature"):
        await network.center.transact(network.governor, "submitTask", *stolen.call_args())
    # Even a quorum that signed the thief's TaskInfo cannot approve an execution the hub
    # recorded for someone else.
    with pytest.raises(RevertError, match="ExecutionMismatch"):
        await network.center.transact(
            network.governor, "submitTask", *network.submission(thief, True, [0, 2, 3]).call_args()
        )
    await submit(network, network.submission(honest, True, [1, 2, 3]))
    assert await network.center.call("operatorCounters", 0) == (0, 1, 0)
    assert await network.center.call("operatorCounters", 1) == (1, 0, 0)


async def test_low_the_domain_follows_the_chain_id(network):
    """The center's EIP-712 domain was fixed at deployment: after a chain-id fork, results
    signed for the old chain still verified. The separator now follows block.chainid."""
    before = await network.center.call("domainSeparator")
    await network.hub.rpc.call("anvil_setChainId", CHAIN_ID + 1)
    after = await network.center.call("domainSeparator")
    await network.hub.rpc.call("anvil_setChainId", CHAIN_ID)
    assert before != after
    assert await network.center.call("domainSeparator") == before
