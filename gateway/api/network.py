"""GET /api/network: which chain and hub this gateway serves, so that a client signs for them.

A client that holds funds should pin these itself (the SDK's `chain_id` and `hub`): a gateway
it does not trust could name another contract.
"""

from __future__ import annotations

import msgspec
from quart import Blueprint, Response

from gateway.api.operations import Operation, Operations
from gateway.api.responses import json


class NetworkAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """The chain the gateway's jobs execute on, and the TaskExecutionHub there: the EIP-712
    domain of every job consent, and the contract that holds owners' gas balances."""

    chain_id: int
    hub: str


def network_blueprint(ops: Operations, chain_id: int, hub: str) -> Blueprint:
    """The route that names `chain_id` and `hub`."""
    blueprint = Blueprint("network", __name__)
    answer = NetworkAnswer(chain_id=chain_id, hub=hub)

    @ops.route(
        blueprint,
        Operation(
            "GET", "/api/network", "The chain and hub this gateway serves", "monitoring", NetworkAnswer
        ),
    )
    async def get_network() -> Response:
        return json(answer)

    return blueprint
