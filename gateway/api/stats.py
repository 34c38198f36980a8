"""The network's recent pace (gateway.stats): GET /api/stats, also pushed on /ws/stats."""

from __future__ import annotations

from quart import Blueprint, Response

from gateway.api.operations import Operation, Operations
from gateway.api.responses import json
from gateway.stats import NetworkStats, TaskStats


def stats_blueprint(ops: Operations, stats: TaskStats) -> Blueprint:
    """The stats route."""
    blueprint = Blueprint("stats", __name__)

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/stats",
            "Tasks in the last minute and hour, latencies and fees",
            "stats",
            NetworkStats,
        ),
    )
    async def network_stats() -> Response:
        return json(stats.snapshot())

    return blueprint
