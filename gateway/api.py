"""The HTTP API (quart-trio): jobs and tasks, with JSON errors that say what is wrong.

    POST   /api/jobs                create a job (body: see gateway.jobs)     → 201 {job} | 409
    DELETE /api/jobs/delete/<id>    cancel it (body: the owner's CancelJob    → 200 {job} | 404 | 409
                                    signature, see gateway.intake)
    GET  /api/jobs/id/<id>          one job                                   → 200 {job} | 404
    GET  /api/tasks/job/<job_id>    a job's tasks, oldest first, paginated    → 200 {tasks, cursor}
    GET  /api/tasks/id/<id>         one task                                  → 200 {task} | 404
    GET  /api/keepers               keepers seen by heartbeat, online or not  → 200 {keepers}

Every error is JSON `{"error": reason}` (with `"field"` for an invalid job) and a 4xx
status: unknown routes 404, wrong methods 405, bodies over the limit 413, bodies too slow
408 (see gateway.http), ids the store cannot hold 404. An unexpected failure is a 500 with
a trace id to find it in the logs, never a traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter

from gateway.http import BoundedBodies, HttpLimits
from gateway.intake import JobConflictError, JobIntake
from gateway.jobs import JobSpecError
from gateway.records import JobRecord
from gateway.storage import GatewayStorage
from node.store import MAX_INT_KEY, Table

log = logging.getLogger(__name__)
MAX_PAGE = 500
IntakeChange = Callable[[JobIntake, bytes], Awaitable[JobRecord]]  # create or cancel a job
MAX_ID = MAX_INT_KEY  # the store keys ints as signed 64-bit; ids start at 1


class _PathId(BaseConverter):
    """An integer in a path, of any size or sign: the handler, not the router, refuses ids
    the store cannot hold, so they get a 404 that names them (they were a 500)."""

    regex = r"-?[0-9]+"


def _stored_id(raw: str) -> int | None:
    """The id `raw` names if the store could hold it, else None."""
    if len(raw) > 20:  # also keeps int() away from thousands of digits
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None


def _no(kind: str, raw: str) -> Response:
    """404 for a missing record; an id out of range says so."""
    if _stored_id(raw) is not None:
        return _error(404, f"no {kind} {raw}")
    shown = raw if len(raw) <= 40 else f"{raw[:20]}… ({len(raw)} digits)"
    return _error(404, f"no {kind} {shown}: {kind} ids are 1 to {MAX_ID}")


def _one(kind: str, table: Table[Any], raw_id: str) -> Response:
    """200 with the record `raw_id` names in `table`, or the 404 of `_no`."""
    record_id = _stored_id(raw_id)
    record = None if record_id is None else table.get(record_id)
    return _json({kind: record}) if record else _no(kind, raw_id)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(payload), status=status, content_type="application/json")


def _error(status: int, reason: str, **extra: Any) -> Response:
    return _json({"error": reason, **extra}, status)


def create_app(
    storage: GatewayStorage,
    keepers: Callable[[], list[dict[str, Any]]] = list,
    *,
    intake: JobIntake | None = None,
    limits: HttpLimits | None = None,
) -> QuartTrio:
    """The API over `storage`; `keepers` reports the keepers' health.

    `intake` creates and cancels jobs, checked against the chain (without one the gateway
    takes no jobs: 503). `limits` bounds request bodies (serve the app with
    `gateway.http.server_config` for the connection-level limits).
    """
    limits = limits or HttpLimits()
    app = QuartTrio("triggerx-gateway")
    app.url_map.converters["id"] = _PathId
    # BoundedBodies reads every body within the limits before a route runs; Quart's own
    # limits stay as a second line.
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
    app.config["BODY_TIMEOUT"] = limits.body_timeout
    app.asgi_app = BoundedBodies(app.asgi_app, limits)  # type: ignore[method-assign]

    async def through_intake(
        change: Callable[[JobIntake, bytes], Awaitable[JobRecord]], status: int
    ) -> Response:
        """The job `change` makes of the request body, or the intake's refusal as JSON."""
        if intake is None:
            return _error(503, "this gateway takes no jobs: it has no job intake")
        try:
            record = await change(intake, await request.get_data())
        except JobSpecError as error:
            return _error(400, error.problem, field=error.field)
        except JobConflictError as error:
            return _error(409, str(error))
        return _json({"job": record}, status)

    @app.post("/api/jobs")
    async def post_job() -> Response:
        return await through_intake(JobIntake.create, 201)

    @app.delete("/api/jobs/delete/<id:raw_id>")
    async def cancel_job(raw_id: str) -> Response:
        job_id = _stored_id(raw_id)
        if job_id is None or storage.jobs.get(job_id) is None:
            return _no("job", raw_id)
        return await through_intake(lambda jobs, body: jobs.cancel(job_id, body), 200)

    @app.get("/api/jobs/id/<id:raw_id>")
    async def get_job(raw_id: str) -> Response:
        return _one("job", storage.jobs, raw_id)

    @app.get("/api/tasks/job/<id:raw_id>")
    async def tasks_of_job(raw_id: str) -> Response:
        job_id = _stored_id(raw_id)
        if job_id is None or storage.jobs.get(job_id) is None:
            return _no("job", raw_id)
        try:
            limit = int(request.args.get("limit", "100"))
        except ValueError:
            return _error(400, "limit: expected an integer", field="limit")
        if not 1 <= limit <= MAX_PAGE:
            return _error(400, f"limit: expected 1 to {MAX_PAGE}", field="limit")
        try:
            page = storage.tasks_of_job(job_id, limit=limit, after=request.args.get("cursor"))
        except ValueError:
            return _error(400, "cursor: not a cursor this API gave out", field="cursor")
        return _json({"tasks": page.items, "cursor": page.cursor})

    @app.get("/api/tasks/id/<id:raw_id>")
    async def get_task(raw_id: str) -> Response:
        return _one("task", storage.tasks, raw_id)

    @app.get("/api/keepers")
    async def list_keepers() -> Response:
        return _json({"keepers": keepers()})

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        response = _error(error.code or 500, error.description or error.name)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        trace_id = uuid.uuid4().hex
        log.exception("unexpected error serving %s %s (trace %s)", request.method, request.path, trace_id)
        return _error(500, "internal error", traceId=trace_id)

    return app
