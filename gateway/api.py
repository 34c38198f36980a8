"""The HTTP API (quart-trio): jobs and tasks, with JSON errors that say what is wrong.

    POST /api/jobs                  create a job (body: see gateway.jobs)     → 201 {job}
    GET  /api/jobs/id/<id>          one job                                   → 200 {job} | 404
    GET  /api/tasks/job/<job_id>    a job's tasks, oldest first, paginated    → 200 {tasks, cursor}
    GET  /api/tasks/id/<id>         one task                                  → 200 {task} | 404
    GET  /api/keepers               keepers seen by heartbeat, online or not  → 200 {keepers}

Every error is JSON `{"error": reason}` (with `"field"` for an invalid job) and a 4xx
status; an unexpected failure is a 500 with a trace id to find it in the logs, never a
traceback.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from gateway.jobs import JobSpecError, parse_create_request
from gateway.records import JobRecord
from gateway.storage import GatewayStorage

log = logging.getLogger(__name__)
MAX_PAGE = 500


def _json(payload: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(payload), status=status, content_type="application/json")


def _error(status: int, reason: str, **extra: Any) -> Response:
    return _json({"error": reason, **extra}, status)


def create_app(
    storage: GatewayStorage,
    chain_id: int,
    on_job_created: Callable[[JobRecord], None],
    keepers: Callable[[], list[dict[str, Any]]] = list,
) -> QuartTrio:
    """The API over `storage`; `on_job_created` hands each new job to the scheduler and
    `keepers` reports the keepers' health."""
    app = QuartTrio("triggerx-gateway")

    @app.post("/api/jobs")
    async def create_job() -> Response:
        try:
            job = parse_create_request(await request.get_data(), chain_id)
        except JobSpecError as error:
            return _error(400, error.problem, field=error.field)
        record = storage.create_job(job, now=time.time())
        on_job_created(record)
        return _json({"job": record}, 201)

    @app.get("/api/jobs/id/<int:job_id>")
    async def get_job(job_id: int) -> Response:
        record = storage.jobs.get(job_id)
        return _json({"job": record}) if record else _error(404, f"no job {job_id}")

    @app.get("/api/tasks/job/<int:job_id>")
    async def tasks_of_job(job_id: int) -> Response:
        if storage.jobs.get(job_id) is None:
            return _error(404, f"no job {job_id}")
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

    @app.get("/api/tasks/id/<int:task_id>")
    async def get_task(task_id: int) -> Response:
        record = storage.tasks.get(task_id)
        return _json({"task": record}) if record else _error(404, f"no task {task_id}")

    @app.get("/api/keepers")
    async def list_keepers() -> Response:
        return _json({"keepers": keepers()})

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        return _error(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        trace_id = uuid.uuid4().hex
        log.exception("unexpected error serving %s %s (trace %s)", request.method, request.path, trace_id)
        return _error(500, "internal error", traceId=trace_id)

    return app
