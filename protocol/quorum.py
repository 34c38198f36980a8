"""Stake-weighted quorum, in exact integer arithmetic identical to AttestationCenter.sol.

With T the total stake of active operators (T > 0) and S the summed stake of the
distinct active operators who signed the same decision, the task's performer excepted
(it may co-sign, but nobody attests to their own work):

- **approve** holds when `3·S ≥ 2·T` (at least two thirds);
- **reject** holds when `3·S ≥ 1·T` (at least one third);
- a rejection is **proven** when its signers hold two thirds (`3·S ≥ 2·T`): only a proven
  rejection penalises the performer and reopens the task for a later attempt, so that a
  colluding third can block a payment but neither slash anybody nor make a target run twice.

So a performer holding more than a third of T can never be approved: the rest cannot
reach two thirds. Both can hold at once only at the boundary (approvers exactly 2/3, rejecters exactly
1/3); an aggregator then submits the approval. On chain, whichever decision for an
attempt is submitted first is final.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    """A fraction of the total stake: met when `signed · denominator ≥ total · numerator`."""

    numerator: int
    denominator: int

    def met(self, signed: int, total: int) -> bool:
        """Whether `signed` of `total` stake meets this threshold (never when total is 0)."""
        return total > 0 and signed * self.denominator >= total * self.numerator


APPROVE = Threshold(2, 3)
REJECT = Threshold(1, 3)


class Decision(enum.Enum):
    """Where a task's vote stands."""

    PENDING = "pending"
    APPROVE = "approve"
    REJECT = "reject"
    REJECT_UNPROVEN = "reject_unproven"
    """A third rejects, and the votes still to come could prove it: a rejection may be
    submitted, but an aggregator waits a little for the proof."""
    IMPOSSIBLE = "impossible"


def decide(approving: int, rejecting: int, outstanding: int, total: int) -> Decision:
    """The decision the votes so far allow.

    Args:
        approving: stake of the operators who voted approve.
        rejecting: stake of those who voted reject.
        outstanding: stake of eligible operators who have not voted yet.
        total: total active stake.

    REJECT is a rejection that is proven, or that no outstanding vote can prove any more;
    REJECT_UNPROVEN one that outstanding votes could still prove. IMPOSSIBLE means that
    neither threshold can be met however the outstanding operators vote.
    """
    if APPROVE.met(approving, total):
        return Decision.APPROVE
    if REJECT.met(rejecting, total):
        if not APPROVE.met(rejecting, total) and APPROVE.met(rejecting + outstanding, total):
            return Decision.REJECT_UNPROVEN
        return Decision.REJECT
    if APPROVE.met(approving + outstanding, total) or REJECT.met(rejecting + outstanding, total):
        return Decision.PENDING
    return Decision.IMPOSSIBLE
