"""The faucet (gateway.faucet): devnet and testnet coins for an address, once per period."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta
from quart import Blueprint, Response, request

from gateway.api.errors import ApiError, json_body
from gateway.api.operations import Operation, Operations
from gateway.api.responses import json, path_address
from gateway.clients import client_of
from gateway.faucet import Faucet, FaucetRefusedError


class ClaimRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """The body of POST /api/claim-fund: the address to fund."""

    address: Annotated[str, Meta(pattern="^0x[0-9a-fA-F]{40}$", description="checksummed, or all one case")]


class ClaimAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """The transfer: its transaction, the address and the wei it sends (decimal), and its block
    (null if it was not mined within the gateway's wait: look the hash up later)."""

    tx_hash: str
    address: str
    amount: str
    block_number: int | None


def faucet_blueprint(ops: Operations, faucet: Faucet) -> Blueprint:
    """The faucet's route."""
    blueprint = Blueprint("faucet", __name__)

    @ops.route(
        blueprint,
        Operation(
            "POST",
            "/api/claim-fund",
            "Send devnet or testnet coins to an address",
            "faucet",
            ClaimAnswer,
            body=ClaimRequest,
            errors=(503,),
            description="One claim per address per period (`[gateway] faucet_period_seconds`), a "
            "few per client (an IPv4 address or an IPv6 /64) per period, and a cap on claims per "
            "period for everyone: beyond any, a 429 with Retry-After. 503 when this network has "
            "no faucet (always on a mainnet), or the faucet is busy.",
        ),
    )
    async def claim_fund() -> Response:
        if (reason := faucet.closed) is not None:  # before the body: nothing to check on a mainnet
            raise ApiError(503, reason)
        wanted = await json_body(ClaimRequest)
        address = path_address(wanted.address, "$.address")
        try:
            payout = await faucet.claim(address, client_of(request.remote_addr or ""))
        except FaucetRefusedError as refused:
            headers = {} if refused.retry_after is None else {"Retry-After": str(refused.retry_after)}
            raise ApiError(refused.status, refused.problem, refused.field, headers) from None
        answer = ClaimAnswer(
            tx_hash=payout.tx_hash,
            address=address,
            amount=str(payout.amount),
            block_number=payout.block_number,
        )
        return json(answer)

    return blueprint
