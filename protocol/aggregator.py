"""The aggregator's core: collect the votes on a task attempt, decide, and submit the proof on chain.

`VoteCollector` holds the votes on one task attempt's claimed result (one TaskInfo: a
vote signs all of it). It screens each vote (known, active, about exactly this TaskInfo,
first vote of its operator), then verifies the signatures: all new votes for the same
decision at once, one verification of their aggregate signature against the sum of their
(registered, cached) public keys, and only when that fails one by one, to find and drop
the bad ones. `decision()` applies protocol.quorum to the votes of operators active in
its operator set; `submission()` builds what AttestationCenter.submitTask takes, signed
by active operators only. `use_operators` moves the collector to a newer operator set
(after a revert, say): the votes already verified stay, and count as the new set says.
The performer may vote too: its signature joins the aggregate, its stake never counts (as
on chain), and a submission signed by the whole active set is the cheapest to verify.
`Aggregator.submit` sends it, and counts a task that another aggregator already
decided as done, not as an error.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from node.bls import BlsBackend, aggregate_public_keys, signature_to_eip2537
from node.chain import Contract, RevertError, TransactionSender
from protocol.attestation import TaskInfo, Vote, vote_message
from protocol.operators import OperatorSet
from protocol.quorum import Decision, decide


class DropReason(enum.Enum):
    """Why a vote was not counted."""

    UNKNOWN_OPERATOR = "no operator has this id"
    INACTIVE_OPERATOR = "the operator is not active"
    WRONG_TASK = "the vote is about another task attempt or result"
    DUPLICATE = "the operator has already voted"
    BAD_SIGNATURE = "the signature does not verify"


@dataclass(frozen=True)
class DroppedVote:
    """A vote that was not counted, and why."""

    vote: Vote
    reason: DropReason


@dataclass(frozen=True)
class Submission:
    """A decision ready for AttestationCenter.submitTask."""

    task: TaskInfo
    approve: bool
    performer_signature: bytes
    aggregate_signature: bytes
    signer_ids: tuple[int, ...]

    def call_args(self) -> tuple[object, ...]:
        """The arguments of submitTask (the signature uncompressed to EIP-2537)."""
        return (
            self.task.as_struct(),
            self.approve,
            self.performer_signature,
            signature_to_eip2537(self.aggregate_signature),
            bytes(self.signer_ids),
        )


class VoteCollector:
    """The votes on one task attempt's claimed result, `task`.

    `add` is CPU-bound (checking 100 votes at once takes ~15–30 ms with milagro):
    trio code calls it through `trio.to_thread.run_sync`, one call at a time.
    """

    def __init__(
        self,
        task: TaskInfo,
        performer_signature: bytes,
        operators: OperatorSet,
        backend: BlsBackend,
        *,
        chain_id: int,
        center: str,
    ) -> None:
        self.task = task
        self.performer_signature = performer_signature
        self.operators = operators
        self.backend = backend
        self._messages = {approve: vote_message(chain_id, center, task, approve) for approve in (True, False)}
        self._votes: dict[int, Vote] = {}

    def add(self, votes: Sequence[Vote]) -> list[DroppedVote]:
        """Count the valid votes among `votes`; return the others with the reason each was dropped."""
        dropped: list[DroppedVote] = []
        fresh: dict[int, Vote] = {}
        for vote in votes:
            reason = self._screen(vote, fresh)
            if reason is None:
                fresh[vote.operator_id] = vote
            else:
                dropped.append(DroppedVote(vote, reason))
        for approve in (True, False):
            group = [v for v in fresh.values() if v.approve is approve]
            valid, invalid = self._verify(group, self._messages[approve])
            self._votes.update((v.operator_id, v) for v in valid)
            dropped.extend(DroppedVote(v, DropReason.BAD_SIGNATURE) for v in invalid)
        return dropped

    def use_operators(self, operators: OperatorSet) -> None:
        """Count the votes from now on as `operators` (a newer read of the registry) says.

        A verified vote stays valid as long as its operator's key is the same (the registry
        never changes an operator's key); a vote whose operator is unknown to `operators`
        or has another key there is dropped. Votes of operators no longer active are kept
        but neither count nor sign (the contract refuses inactive signers).
        """
        if operators is self.operators:
            return
        self._votes = {
            i: vote
            for i, vote in self._votes.items()
            if (now := operators.operators.get(i)) is not None
            and now.public_key == self.operators.operators[i].public_key
        }
        self.operators = operators

    def decision(self) -> Decision:
        """Where the vote stands now (see protocol.quorum.decide)."""
        # The performer's own vote never counts (as on chain): nobody attests to their own work.
        performer = self.task.performer_id
        approving = self.operators.stake_of(i for i in self._signers(True) if i != performer)
        rejecting = self.operators.stake_of(i for i in self._signers(False) if i != performer)
        outstanding = sum(
            op.stake for op in self.operators.active if op.id not in self._votes and op.id != performer
        )
        return decide(approving, rejecting, outstanding, self.operators.total_stake)

    def submission(self) -> Submission | None:
        """The submission for the decision reached, or None while there is none to submit."""
        decision = self.decision()
        if decision not in (Decision.APPROVE, Decision.REJECT, Decision.REJECT_UNPROVEN):
            return None
        approve = decision is Decision.APPROVE
        signers = self._signers(approve)
        signature = self.backend.aggregate([self._votes[i].signature for i in signers])
        return Submission(self.task, approve, self.performer_signature, signature, tuple(signers))

    def _signers(self, approve: bool) -> list[int]:
        """The active operators who voted `approve`, by id (the performer included)."""
        active = self.operators.operators
        return sorted(i for i, v in self._votes.items() if v.approve is approve and active[i].active)

    def _screen(self, vote: Vote, fresh: dict[int, Vote]) -> DropReason | None:
        operator = self.operators.operators.get(vote.operator_id)
        if operator is None:
            return DropReason.UNKNOWN_OPERATOR
        if not operator.active:
            return DropReason.INACTIVE_OPERATOR
        if vote.task != self.task:
            return DropReason.WRONG_TASK
        if vote.operator_id in self._votes or vote.operator_id in fresh:
            return DropReason.DUPLICATE
        return None

    def _verify(self, votes: list[Vote], message: bytes) -> tuple[list[Vote], list[Vote]]:
        """(valid, invalid): one aggregate check for the happy path, one by one otherwise."""
        if not votes:
            return [], []
        keys = [self.operators.operators[v.operator_id].public_key for v in votes]
        if len(votes) > 1:
            try:
                combined = self.backend.aggregate([v.signature for v in votes])
            except (ValueError, AssertionError):  # a signature that is not even a G2 point
                combined = None
            if combined is not None and self._verifies(aggregate_public_keys(keys), message, combined):
                return votes, []
        valid, invalid = [], []
        for vote, key in zip(votes, keys, strict=True):
            (valid if self._verifies(key, message, vote.signature) else invalid).append(vote)
        return valid, invalid

    def _verifies(self, key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            return self.backend.verify(key, message, signature)
        except (ValueError, AssertionError):
            return False


@dataclass(frozen=True)
class SubmitOutcome:
    """What became of a submission: sent in `tx_hash`, or already decided by someone else."""

    tx_hash: str | None
    already_decided: bool


class Aggregator:
    """Submits decisions to the AttestationCenter from one account."""

    def __init__(self, center: Contract, sender: TransactionSender) -> None:
        self.center = center
        self.sender = sender

    async def submit(self, submission: Submission) -> SubmitOutcome:
        """Send `submission`; a task attempt decided by another aggregator first is a success too."""
        try:
            receipt = await self.center.transact(self.sender, "submitTask", *submission.call_args())
        except RevertError:
            # Another aggregator may have won the race: then the attempt is decided, and
            # whatever the revert said, our work is done. Otherwise the error stands.
            approved, decided = await self.center.call("taskStatus", submission.task.task_id)
            if approved or decided & (1 << submission.task.attempt):
                return SubmitOutcome(tx_hash=None, already_decided=True)
            raise
        return SubmitOutcome(tx_hash=receipt.tx_hash, already_decided=False)
