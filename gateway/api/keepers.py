"""Keepers: who is online, by heartbeat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response

from gateway.api.responses import json


def keepers_blueprint(keepers: Callable[[], list[dict[str, Any]]]) -> Blueprint:
    """The keeper routes; `keepers` reports every keeper seen."""
    blueprint = Blueprint("keepers", __name__)

    @blueprint.get("/api/keepers")
    async def list_keepers() -> Response:
        return json({"keepers": keepers()})

    return blueprint
