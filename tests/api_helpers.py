"""A small API app for tests of blueprints that create_app does not serve yet: the blueprints,
their operations' OpenAPI document (made as create_app makes it, so a type it cannot describe
fails here) and the API's JSON refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response
from quart_trio import QuartTrio

from gateway.api.errors import ApiError
from gateway.api.openapi import openapi_document
from gateway.api.operations import Operations
from gateway.api.responses import error

from .gateway_helpers import JsonClient


def api_client(*blueprints: Callable[[Operations], Blueprint]) -> tuple[JsonClient, dict[str, Any]]:
    """A JSON test client of an app serving `blueprints` (each made from the app's Operations),
    and the app's OpenAPI document."""
    app = QuartTrio("test-gateway")
    ops = Operations()
    for make in blueprints:
        app.register_blueprint(make(ops))

    @app.errorhandler(ApiError)
    async def refused(refusal: ApiError) -> Response:
        return error(refusal.status, refusal.reason, field=refusal.field)

    return JsonClient(app.test_client()), openapi_document(ops, "test")
