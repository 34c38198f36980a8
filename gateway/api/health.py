"""The gateway's health (gateway.service_health): 200 when it is healthy, 503 when not, the same
JSON either way."""

from __future__ import annotations

from collections.abc import Callable

from quart import Blueprint, Response

from gateway.api.operations import Operation, Operations
from gateway.api.responses import json
from gateway.service_health import HealthAnswer


def health_blueprint(ops: Operations, health: Callable[[], HealthAnswer]) -> Blueprint:
    """The health route; `health` computes the answer (it must not wait on anything)."""
    blueprint = Blueprint("health", __name__)

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/health",
            "The gateway's services, its store and its chain connection",
            "monitoring",
            HealthAnswer,
            same_answer=((503, "not healthy: the same body, `ok` false"),),
            description="200 when `ok`; 503 with the same body when not (a service stopped, the "
            "store failed, the chain did not answer within its timeout or serves another chain). "
            "The chain is read every 2 s for all callers: `chain` may be that old.",
        ),
    )
    async def get_health() -> Response:
        answer = health()
        return json(answer, 200 if answer.ok else 503)

    return blueprint
