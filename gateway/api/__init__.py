"""The HTTP API (quart-trio): jobs, tasks and keepers, with JSON errors that say what is wrong.

    POST   /api/jobs                create a job (body: see gateway.jobs)     → 201 {job} | 409
    DELETE /api/jobs/delete/<id>    cancel it (body: the owner's CancelJob    → 200 {job} | 404 | 409
                                    signature, see gateway.intake)
    GET  /api/jobs/id/<id>          one job, its last and next fire, and for  → 200 {job, ...} | 404
                                    a condition job its state and error
    GET  /api/tasks/job/<job_id>    a job's tasks, oldest first, paginated    → 200 {tasks, cursor}
    GET  /api/tasks/id/<id>         one task                                  → 200 {task} | 404
    GET  /api/keepers               keepers seen by heartbeat, online or not  → 200 {keepers}
    POST /api/scripts               upload a script (raw bytes, ≤ 64 KiB)     → 201 {cid, size}
    GET  /ipfs/<cid>                a script as a raw block, by its CIDv1     → 200 bytes | 400 | 404

Every error is JSON `{"error": reason}` (with `"field"` for an invalid job) and a 4xx
status: unknown routes 404, wrong methods 405, bodies over the limit 413, bodies too slow
408 (see gateway.http), ids the store cannot hold 404. An unexpected failure is a 500 with
a trace id to find it in the logs, never a traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from gateway import BoundedBodies, GatewayStorage, HttpLimits, JobIntake
from gateway.api.jobs import jobs_blueprint
from gateway.api.keepers import keepers_blueprint
from gateway.api.responses import PathId, error
from gateway.api.scripts import scripts_blueprint
from gateway.api.tasks import tasks_blueprint

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(
    storage: GatewayStorage,
    keepers: Callable[[], list[dict[str, Any]]] = list,
    *,
    intake: JobIntake | None = None,
    limits: HttpLimits | None = None,
) -> QuartTrio:
    """The API over `storage`, one blueprint per resource; `keepers` reports the keepers' health.

    `intake` creates and cancels jobs, checked against the chain (without one the gateway
    takes no jobs: 503). `limits` bounds request bodies (serve the app with
    `gateway.http.server_config` for the connection-level limits).
    """
    limits = limits or HttpLimits()
    app = QuartTrio("triggerx-gateway")
    app.url_map.converters["id"] = PathId
    # BoundedBodies reads every body within the limits before a route runs; Quart's own
    # limits stay as a second line.
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
    app.config["BODY_TIMEOUT"] = limits.body_timeout
    app.asgi_app = BoundedBodies(app.asgi_app, limits)  # type: ignore[method-assign]
    app.register_blueprint(jobs_blueprint(storage, intake))
    app.register_blueprint(tasks_blueprint(storage))
    app.register_blueprint(keepers_blueprint(keepers))
    app.register_blueprint(scripts_blueprint(storage))

    @app.errorhandler(HTTPException)
    async def http_error(exception: HTTPException) -> Response:
        response = error(exception.code or 500, exception.description or exception.name)
        if isinstance(exception, MethodNotAllowed) and exception.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exception.valid_methods))
        return response

    @app.errorhandler(Exception)
    async def unexpected(exception: Exception) -> Response:
        trace_id = uuid.uuid4().hex
        log.exception("unexpected error serving %s %s (trace %s)", request.method, request.path, trace_id)
        return error(500, "internal error", traceId=trace_id)

    return app
