"""VoteCollector: screening, batch verification with a one-by-one fallback, decisions, submissions,
and moving to a newer operator set."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from node.bls import available_backends
from protocol import Decision, DropReason, Operator, OperatorSet, TaskInfo, Vote, VoteCollector, vote_message

from ..consensus_helpers import bls_secret

CHAIN_ID = 31337
CENTER = "0x" + "c0" * 20
TASK = TaskInfo(task_id=5, job_id=1, attempt=1, performer_id=0, result_hash=hashlib.sha256(b"r").digest())


def operator_set(backend, stakes: list[int], inactive: frozenset[int] = frozenset()) -> OperatorSet:
    keys = [backend.secret_to_public(bls_secret(i)) for i in range(len(stakes))]
    return OperatorSet(
        {
            i: Operator(i, f"0x{i:040x}", stake, i not in inactive, key, b"")
            for i, (stake, key) in enumerate(zip(stakes, keys, strict=True))
        }
    )


def vote(backend, operator_id: int, approve: bool = True, task: TaskInfo = TASK) -> Vote:
    return Vote.cast(backend, bls_secret(operator_id), operator_id, task, approve, CHAIN_ID, CENTER)


def collector(backend, stakes: list[int], inactive: frozenset[int] = frozenset()) -> VoteCollector:
    operators = operator_set(backend, stakes, inactive)
    return VoteCollector(TASK, b"perf", operators, backend, chain_id=CHAIN_ID, center=CENTER)


# py_ecc verifies in ~0.3 s: its runs are slow, but they show both backends behave alike.
@pytest.fixture(
    params=[
        pytest.param(b.name, marks=[pytest.mark.slow] * (b.name == "py_ecc")) for b in available_backends()
    ]
)
def backend(request):
    return next(b for b in available_backends() if b.name == request.param)


def test_votes_reach_a_decision_and_a_verifiable_submission(backend):
    votes = collector(backend, [1, 1, 1, 1])
    assert votes.add([vote(backend, 1)]) == []
    assert votes.decision() is Decision.PENDING
    assert votes.submission() is None
    assert votes.add([vote(backend, 2), vote(backend, 3)]) == []
    assert votes.decision() is Decision.APPROVE
    submission = votes.submission()
    assert submission.signer_ids == (1, 2, 3)
    keys = [votes.operators.operators[i].public_key for i in (1, 2, 3)]
    message = vote_message(CHAIN_ID, CENTER, TASK, True)
    assert backend.fast_aggregate_verify(keys, message, submission.aggregate_signature)


def test_every_bad_vote_is_dropped_with_its_reason(backend):
    votes = collector(backend, [1, 1, 1, 1, 1, 1], inactive=frozenset({5}))
    forged = dataclasses.replace(vote(backend, 3), signature=vote(backend, 4).signature)
    garbage = dataclasses.replace(vote(backend, 4), signature=b"\x11" * 96)
    other_task = vote(backend, 2, task=dataclasses.replace(TASK, task_id=6))
    dropped = votes.add(
        [
            vote(backend, 1),
            vote(backend, 1),
            vote(backend, 5),
            vote(backend, 6),  # no such operator
            other_task,
            forged,
            garbage,
        ]
    )
    reasons = {(d.vote.operator_id, d.reason) for d in dropped}
    assert reasons == {
        (1, DropReason.DUPLICATE),
        (5, DropReason.INACTIVE_OPERATOR),
        (6, DropReason.UNKNOWN_OPERATOR),
        (2, DropReason.WRONG_TASK),
        (3, DropReason.BAD_SIGNATURE),
        (4, DropReason.BAD_SIGNATURE),
    }
    # The good vote in the batch survived the failed aggregate check; a later vote from
    # the same operator is a duplicate.
    assert votes.add([vote(backend, 1)])[0].reason is DropReason.DUPLICATE
    # Operators whose bad votes were dropped may still vote properly.
    assert votes.add([vote(backend, 2), vote(backend, 3), vote(backend, 4)]) == []
    assert votes.decision() is Decision.APPROVE


def test_rejection_and_impossibility(backend):
    votes = collector(backend, [3, 3, 3, 3])
    votes.add([vote(backend, 1, approve=False)])
    assert votes.decision() is Decision.PENDING  # 3 of 12 rejects: under a third
    votes.add([vote(backend, 2, approve=False)])
    assert votes.decision() is Decision.REJECT_UNPROVEN  # 6 of 12: submittable, 3 more would prove it
    submission = votes.submission()
    assert (submission.approve, submission.signer_ids) == (False, (1, 2))
    votes.add([vote(backend, 3, approve=False)])
    assert votes.decision() is Decision.REJECT  # 9 of 12: proven
    assert votes.submission().signer_ids == (1, 2, 3)

    split = collector(backend, [2, 1, 1, 1, 1])  # total 6; performer 0 holds 2
    split.add([vote(backend, 1), vote(backend, 2), vote(backend, 3, approve=False)])
    assert split.decision() is Decision.PENDING  # operator 4 could still make the rejection 2 of 6
    split.add([vote(backend, 4)])
    assert split.decision() is Decision.IMPOSSIBLE  # 3/6 approve < 2/3, 1/6 reject < 1/3


def test_the_performer_may_co_sign_but_its_stake_never_counts(backend):
    votes = collector(backend, [2, 1, 1, 1, 1])  # total 6: approval needs 4 of the others' 4
    assert votes.add([vote(backend, 0), vote(backend, 1)]) == []
    assert votes.decision() is Decision.PENDING  # 1 counts, not 3
    votes.add([vote(backend, 2), vote(backend, 3)])
    assert votes.decision() is Decision.PENDING
    votes.add([vote(backend, 4)])
    assert votes.decision() is Decision.APPROVE
    assert votes.submission().signer_ids == (0, 1, 2, 3, 4)
    # A performer holding more than a third can never be approved: the others lack the stake.
    dominant = collector(backend, [5, 1, 1, 1])
    dominant.add([vote(backend, i) for i in range(4)])
    assert dominant.decision() is Decision.IMPOSSIBLE


def test_a_vote_counts_only_for_the_task_info_it_signs(backend):
    votes = collector(backend, [1, 1, 1, 1])
    # A vote on the same task id and result hash but another job, attempt or performer is
    # about another claim, and so is one on another task or result.
    others = [
        dataclasses.replace(TASK, job_id=2),
        dataclasses.replace(TASK, attempt=2),
        dataclasses.replace(TASK, performer_id=3),
        dataclasses.replace(TASK, task_id=6),
        dataclasses.replace(TASK, result_hash=hashlib.sha256(b"other").digest()),
    ]
    dropped = votes.add([vote(backend, 1, task=other) for other in others])
    assert [d.reason for d in dropped] == [DropReason.WRONG_TASK] * len(others)
    # A signature over another TaskInfo does not verify for this one.
    relabelled = dataclasses.replace(vote(backend, 2, task=others[0]), task=TASK)
    assert [d.reason for d in votes.add([relabelled])] == [DropReason.BAD_SIGNATURE]
    assert votes.add([vote(backend, i) for i in (1, 2, 3)]) == []
    assert votes.decision() is Decision.APPROVE


def test_verified_votes_count_as_a_newer_operator_set_says(backend):
    votes = collector(backend, [1, 1, 1, 1])
    assert votes.add([vote(backend, i) for i in (0, 1, 2, 3)]) == []
    assert votes.submission().signer_ids == (0, 1, 2, 3)
    # Operator 3 was deactivated: its vote neither counts nor signs (the contract would
    # refuse an inactive signer); 2 of the remaining 3 still approve.
    votes.use_operators(operator_set(backend, [1, 1, 1, 1], inactive=frozenset({3})))
    assert votes.decision() is Decision.APPROVE
    assert votes.submission().signer_ids == (0, 1, 2)
    # Operator 2's stake grew: 1 of 4 is no longer two thirds, and nobody is left to vote.
    votes.use_operators(operator_set(backend, [1, 1, 3, 1], inactive=frozenset({2, 3})))
    assert votes.decision() is Decision.IMPOSSIBLE
    assert votes.submission() is None
    # A vote whose operator now has another key is dropped (it was verified against the old one).
    rekeyed = operator_set(backend, [1, 1, 1, 1])
    operators = dict(rekeyed.operators)
    operators[1] = dataclasses.replace(operators[1], public_key=operators[3].public_key)
    votes.use_operators(type(rekeyed)(operators))
    assert votes.decision() is Decision.PENDING  # 2 and 3 count: 2 of 4; 1 has not voted
    assert votes.add([vote(backend, 2)])[0].reason is DropReason.DUPLICATE
    assert votes.add([vote(backend, 1)])[0].reason is DropReason.BAD_SIGNATURE  # not a duplicate
