"""Tasks: one task, a job's tasks, and all tasks by status, page by page."""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable

from quart import Blueprint, Response, request

from gateway import GatewayStorage
from gateway.api.operations import Operation, Operations, Param
from gateway.api.responses import PAGE_PARAMS, existing_id, id_param, json, paged_answer
from gateway.api.views import TaskAnswer, TasksPage, TaskView
from gateway.records import TaskRecord, TaskStatus
from node.store import Page

STATUSES: tuple[TaskStatus, ...] = typing.get_args(TaskStatus)


def tasks_blueprint(ops: Operations, storage: GatewayStorage) -> Blueprint:
    """The task routes."""
    tasks = Blueprint("tasks", __name__)

    def answer(page_of: Callable[[int, str | None], Page[TaskRecord]]) -> Awaitable[Response]:
        return paged_answer(
            page_of, lambda page: TasksPage(tasks=[TaskView.of(t) for t in page.items], cursor=page.cursor)
        )

    @ops.route(
        tasks,
        Operation(
            "GET",
            "/api/tasks/job/{id}",
            "A job's tasks, oldest first",
            "tasks",
            TasksPage,
            params=(id_param("job"), *PAGE_PARAMS),
            errors=(404,),
        ),
    )
    async def tasks_of_job(id: str) -> Response:
        job_id = existing_id("job", id, storage.jobs.get)
        return await answer(lambda limit, after: storage.tasks_of_job(job_id, limit=limit, after=after))

    @ops.route(
        tasks,
        Operation(
            "GET",
            "/api/tasks",
            "Tasks by id, all of them or those in one status",
            "tasks",
            TasksPage,
            params=(
                Param(
                    "status", "query", "only tasks in this status", {"type": "string", "enum": list(STATUSES)}
                ),
                *PAGE_PARAMS,
            ),
        ),
    )
    async def list_tasks() -> Response:
        status = request.args.get("status")
        if status is None:
            return await answer(lambda limit, after: storage.tasks.scan(limit=limit, after=after))
        return await answer(
            lambda limit, after: storage.tasks.by_index("status", status, limit=limit, after=after)
        )

    @ops.route(
        tasks,
        Operation(
            "GET",
            "/api/tasks/id/{id}",
            "One task",
            "tasks",
            TaskAnswer,
            params=(id_param("task"),),
            errors=(404,),
        ),
    )
    async def get_task(id: str) -> Response:
        task = storage.tasks.get(existing_id("task", id, storage.tasks.get))
        return json(TaskAnswer(task=TaskView.of(task)))

    return tasks
