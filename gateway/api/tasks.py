"""Tasks: one task, and a job's tasks page by page."""

from __future__ import annotations

from quart import Blueprint, Response, request

from gateway import GatewayStorage
from gateway.api.responses import MAX_PAGE, error, json, not_found, one, stored_id


def tasks_blueprint(storage: GatewayStorage) -> Blueprint:
    """The task routes."""
    tasks = Blueprint("tasks", __name__)

    @tasks.get("/api/tasks/job/<id:raw_id>")
    async def tasks_of_job(raw_id: str) -> Response:
        job_id = stored_id(raw_id)
        if job_id is None or storage.jobs.get(job_id) is None:
            return not_found("job", raw_id)
        try:
            limit = int(request.args.get("limit", "100"))
        except ValueError:
            return error(400, "limit: expected an integer", field="limit")
        if not 1 <= limit <= MAX_PAGE:
            return error(400, f"limit: expected 1 to {MAX_PAGE}", field="limit")
        try:
            page = storage.tasks_of_job(job_id, limit=limit, after=request.args.get("cursor"))
        except ValueError:
            return error(400, "cursor: not a cursor this API gave out", field="cursor")
        return json({"tasks": page.items, "cursor": page.cursor})

    @tasks.get("/api/tasks/id/<id:raw_id>")
    async def get_task(raw_id: str) -> Response:
        return one("task", storage.tasks, raw_id)

    return tasks
