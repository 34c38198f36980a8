"""The HTTP API (quart-trio): one blueprint per resource, every route declared as an Operation
(gateway.api.operations) from which the OpenAPI 3.1 document at /openapi.json is made; /docs
shows it.

Every request first goes through the access rules (gateway.api.guard: trace id, API key,
admin credential, rate limit). Every error is JSON `{"error": reason}` with `"field"` when a
field of the request is at fault, and a 4xx status: unknown routes 404, wrong methods 405
(with `Allow`), bodies over the limit 413 or too slow 408 (gateway.http), bodies that are
not JSON 415. An unexpected failure is a 500 with the trace id that finds it in the log,
never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources

import msgspec
from quart import Response, g, has_websocket_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from gateway import BoundedBodies, GatewayStorage, HttpLimits, JobIntake, TaskLedger
from gateway.actions import SignedActions
from gateway.api.admin import admin_blueprint
from gateway.api.dashboard import dashboard_blueprint
from gateway.api.errors import ApiError
from gateway.api.faucet import faucet_blueprint
from gateway.api.guard import AccessRules, finish
from gateway.api.health import health_blueprint
from gateway.api.jobs import jobs_blueprint
from gateway.api.keeper_forms import keeper_forms_blueprint
from gateway.api.keepers import keepers_blueprint
from gateway.api.leaderboard import leaderboard_blueprint
from gateway.api.metrics import metrics_blueprint
from gateway.api.network import network_blueprint
from gateway.api.openapi import openapi_document
from gateway.api.operations import Operations
from gateway.api.responses import PathId, error
from gateway.api.scripts import scripts_blueprint
from gateway.api.stats import stats_blueprint
from gateway.api.streams import StreamLimits, streams_blueprint
from gateway.api.tasks import tasks_blueprint
from gateway.api.users import users_blueprint
from gateway.api_keys import ApiKeys
from gateway.faucet import Faucet
from gateway.fees import FeeEstimator
from gateway.health import KeeperStatus
from gateway.keeper_forms import KeeperForms
from gateway.metrics import GatewayMetrics
from gateway.points import Points
from gateway.service_health import HealthAnswer
from gateway.stats import TaskStats
from gateway.users import Users

__all__ = ["AccessRules", "create_app"]

log = logging.getLogger("triggerx.gateway.api")
API_VERSION = "1.0.0"


def create_app(
    storage: GatewayStorage,
    keepers: Callable[[], list[KeeperStatus]] = list,
    *,
    intake: JobIntake | None = None,
    limits: HttpLimits | None = None,
    access: AccessRules | None = None,
    key_requests_per_minute: int = 6000,
    fees: FeeEstimator | None = None,
    ledger: TaskLedger | None = None,
    stats: TaskStats | None = None,
    health: Callable[[], HealthAnswer] | None = None,
    stream_limits: StreamLimits | None = None,
    keeper_forms: KeeperForms | None = None,
    faucet: Faucet | None = None,
    metrics: GatewayMetrics | None = None,
    actions: SignedActions | None = None,
    users: Users | None = None,
    points: Points | None = None,
) -> QuartTrio:
    """The API over `storage`; `keepers` reports the keepers' health.

    `intake` creates and cancels jobs, checked against the chain (without one the gateway
    takes no jobs: 503). `limits` bounds request bodies (serve the app with
    `gateway.http.server_config` for the connection-level limits). `access` holds the API
    keys, the admin credential and the rate limits (default: keys in `storage`'s store, no
    admin, the default anonymous limit); new API keys get `key_requests_per_minute`. `fees`
    estimates jobs' costs (none: 503). With the task `ledger`, the network's `stats` and the
    gateway's `health` the app serves /api/stats and the WebSockets (gateway.api.streams);
    `health` alone serves GET /api/health. `keeper_forms` and `faucet` serve POST
    /api/keepers/form (with its admin routes) and POST /api/claim-fund (none: no such route);
    `metrics` counts every answer and is served at GET /metrics (default: a registry of its own).
    `actions` checks what owners sign to act at this gateway (pause a job, set an email);
    with `users` it serves the users' routes; `points` serves the leaderboards and the keepers'
    task counts. Serve it with gateway.api.fast_lane.serve_api, which answers the hot reads without Quart.
    """
    limits = limits or HttpLimits()
    access = access or AccessRules(ApiKeys(storage.store))
    metrics = metrics or GatewayMetrics()
    app = QuartTrio("triggerx-gateway")
    app.url_map.converters["id"] = PathId
    # BoundedBodies reads every body within the limits before a route runs; Quart's own
    # limits stay as a second line.
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
    app.config["BODY_TIMEOUT"] = limits.body_timeout
    # OPTIONS gets the JSON 405 that names the allowed methods, not an empty 200.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.asgi_app = BoundedBodies(app.asgi_app, limits)  # type: ignore[method-assign]
    ops = Operations()
    app.register_blueprint(jobs_blueprint(ops, storage, intake, fees, actions))
    if intake is not None:
        app.register_blueprint(network_blueprint(ops, intake.chain_id, intake.hub.address))
    app.register_blueprint(tasks_blueprint(ops, storage))
    app.register_blueprint(keepers_blueprint(ops, keepers, points))
    if users is not None and actions is not None:
        app.register_blueprint(users_blueprint(ops, storage, users, actions))
    if points is not None:
        app.register_blueprint(leaderboard_blueprint(ops, points))
    app.register_blueprint(scripts_blueprint(ops, storage))
    app.register_blueprint(admin_blueprint(ops, access.keys, key_requests_per_minute))
    if stats is not None:
        app.register_blueprint(stats_blueprint(ops, stats))
    if ledger is not None and stats is not None and health is not None:
        limits_of_streams = stream_limits or StreamLimits()
        app.register_blueprint(streams_blueprint(ledger, storage, stats.snapshot, health, limits_of_streams))
    if health is not None:
        app.register_blueprint(health_blueprint(ops, health))
    if keeper_forms is not None:
        app.register_blueprint(keeper_forms_blueprint(ops, keeper_forms))
    if faucet is not None:
        app.register_blueprint(faucet_blueprint(ops, faucet))
    app.register_blueprint(metrics_blueprint(ops, metrics))
    app.register_blueprint(dashboard_blueprint())
    document = msgspec.json.encode(openapi_document(ops, API_VERSION))  # encoded once: ~60 KB
    docs_page = resources.files("gateway.api").joinpath("docs.html").read_bytes()

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return Response(document, content_type="application/json")

    @app.get("/docs")
    async def docs() -> Response:
        return Response(docs_page, content_type="text/html; charset=utf-8")

    @app.before_request
    async def guard() -> None:
        await access.before(ops)

    app.after_request(finish)

    @app.errorhandler(ApiError)
    async def refused(refusal: ApiError) -> Response:
        response = error(refusal.status, refusal.reason, field=refusal.field)
        response.headers.update(refusal.headers)
        return response

    @app.errorhandler(HTTPException)
    async def http_error(exception: HTTPException) -> Response:
        response = error(exception.code or 500, exception.description or exception.name)
        if isinstance(exception, MethodNotAllowed) and exception.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exception.valid_methods))
        return response

    @app.errorhandler(Exception)
    async def unexpected(exception: Exception) -> Response:
        trace_id = g.get("trace_id", "")
        served = websocket if has_websocket_context() else request
        log.exception("unexpected error serving %s (trace %s)", served.path, trace_id)
        return error(500, "internal error", traceId=trace_id)

    return app
