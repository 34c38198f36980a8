"""Keepers: who is online, by heartbeat, and the tasks each executed and attested."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from quart import Blueprint, Response

from gateway.api.errors import ApiError
from gateway.api.operations import ADDRESS_SCHEMA, Operation, Operations, Param
from gateway.api.responses import json
from gateway.api.users import checked_address
from gateway.health import KeeperStatus
from gateway.points import Points


class KeepersAnswer(msgspec.Struct, kw_only=True):
    """Every keeper this gateway has heard from."""

    keepers: list[KeeperStatus]


class KeeperAnswer(msgspec.Struct, kw_only=True):
    """One keeper this gateway has heard from."""

    keeper: KeeperStatus


def keepers_blueprint(
    ops: Operations, keepers: Callable[[], list[KeeperStatus]], points: Points | None = None
) -> Blueprint:
    """The keeper routes; `keepers` reports every keeper seen, `points` their task counts
    (without it, the counts are 0)."""
    blueprint = Blueprint("keepers", __name__)

    def counted(status: KeeperStatus) -> KeeperStatus:
        tally = None if points is None else points.keeper(status.address)
        if tally is None:
            return status
        return msgspec.structs.replace(
            status, tasks_executed=tally.tasks_executed, tasks_attested=tally.tasks_attested
        )

    @ops.route(
        blueprint, Operation("GET", "/api/keepers", "Keepers seen by heartbeat", "keepers", KeepersAnswer)
    )
    async def list_keepers() -> Response:
        return json(KeepersAnswer(keepers=[counted(status) for status in keepers()]))

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/keepers/address/{address}",
            "One keeper seen by heartbeat",
            "keepers",
            KeeperAnswer,
            params=(Param("address", "path", "the keeper's account", ADDRESS_SCHEMA, kind="address"),),
            errors=(404,),
        ),
    )
    async def get_keeper(address: str) -> Response:
        account = checked_address(address)
        status = next((s for s in keepers() if s.address == account), None)
        if status is None:
            raise ApiError(404, f"no heartbeat from keeper {account} since this gateway started")
        return json(KeeperAnswer(keeper=counted(status)))

    return blueprint
