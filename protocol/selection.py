"""Which keeper performs a task: a rule every attester can recompute.

Keepers are ranked by keccak256(abi.encode(taskId, keeperAddress)): the order is fixed by the
task, differs from task to task (spreading the load), and nobody can steer it. The performer
of an attempt is the best-ranked keeper that is online, has not tried this task before, and
holds at most a third of the stake (a bigger one could never be approved, since the
performer's own stake does not count toward its quorum).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import eth_abi
from eth_utils import keccak

from protocol.operators import Operator


def rank(task_id: int, keeper: str) -> bytes:
    """The keeper's rank for `task_id` (lower goes first)."""
    return keccak(eth_abi.encode(["uint256", "address"], [task_id, keeper]))


def choose_performer(
    task_id: int, online: Sequence[Operator], tried: Collection[str], total_stake: int
) -> Operator | None:
    """The performer of the next attempt of `task_id`, or None when no keeper is eligible."""
    eligible = [k for k in online if k.account not in tried and 3 * k.stake <= total_stake]
    return min(eligible, key=lambda k: rank(task_id, k.account), default=None)
