"""The three roles a node can play, each a tree of trio tasks: keeper, aggregator, gateway.

Public API: ROLE_RUNNERS (what runs for each `node.role`) and the runners themselves, the
aggregator's VoteDesk (votes in, submissions out; VoteRefused for a vote it does not count),
and Chain (the chain client and the network's contracts a role works with).
"""

from node.roles.aggregator import VoteDesk, VoteRefused, run_aggregator
from node.roles.gateway import run_gateway
from node.roles.keeper import run_keeper
from node.roles.runtime import Chain

__all__ = [
    "ROLE_RUNNERS",
    "Chain",
    "VoteDesk",
    "VoteRefused",
    "run_aggregator",
    "run_gateway",
    "run_keeper",
]

ROLE_RUNNERS = {"keeper": run_keeper, "aggregator": run_aggregator, "gateway": run_gateway}
"""What runs for each `node.role`."""
