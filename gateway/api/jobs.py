"""Jobs: create, read, cancel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from quart import Blueprint, Response, request

from gateway import (
    ConditionState,
    FireTimes,
    GatewayStorage,
    JobConflictError,
    JobIntake,
    JobRecord,
    JobSpecError,
)
from gateway.api.responses import error, json, not_found, stored_id

IntakeChange = Callable[[JobIntake, bytes], Awaitable[JobRecord]]  # create or cancel a job


def jobs_blueprint(storage: GatewayStorage, intake: JobIntake | None) -> Blueprint:
    """The job routes; without an `intake` the gateway takes no jobs (503)."""
    jobs = Blueprint("jobs", __name__)

    async def through_intake(change: IntakeChange, status: int) -> Response:
        """The job `change` makes of the request body, or the intake's refusal as JSON."""
        if intake is None:
            return error(503, "this gateway takes no jobs: it has no job intake")
        try:
            record = await change(intake, await request.get_data())
        except JobSpecError as refused:
            return error(400, refused.problem, field=refused.field)
        except JobConflictError as conflict:
            return error(409, str(conflict))
        return json({"job": record}, status)

    @jobs.post("/api/jobs")
    async def post_job() -> Response:
        return await through_intake(JobIntake.create, 201)

    @jobs.delete("/api/jobs/delete/<id:raw_id>")
    async def cancel_job(raw_id: str) -> Response:
        job_id = stored_id(raw_id)
        if job_id is None or storage.jobs.get(job_id) is None:
            return not_found("job", raw_id)
        return await through_intake(lambda jobs, body: jobs.cancel(job_id, body), 200)

    @jobs.get("/api/jobs/id/<id:raw_id>")
    async def get_job(raw_id: str) -> Response:
        job_id = stored_id(raw_id)
        record = None if job_id is None else storage.jobs.get(job_id)
        if record is None:
            return not_found("job", raw_id)
        fires = storage.fire_times.get(record.id) or FireTimes(job_id=record.id)
        view = {"job": record, "lastFire": fires.last, "nextFire": fires.next}
        if record.spec.schedule_type == "condition":  # whether it holds, and why it cannot be read
            view["condition"] = storage.condition_states.get(record.id) or ConditionState(job_id=record.id)
        return json(view)

    return jobs
