"""The three roles a node can play, each a tree of trio tasks: keeper, aggregator, gateway."""

from node.roles.aggregator import run_aggregator
from node.roles.gateway import run_gateway
from node.roles.keeper import run_keeper

ROLE_RUNNERS = {"keeper": run_keeper, "aggregator": run_aggregator, "gateway": run_gateway}
"""What runs for each `node.role`."""
