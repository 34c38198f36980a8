"""Jobs: create (one, or a linked chain), read, list, cancel (gateway.jobs has the body and its
signature)."""

from __future__ import annotations

import logging
import time
import typing
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from quart import Blueprint, Response, request

from gateway import GatewayStorage, JobConflictError, JobIntake, JobRecord, JobSpecError
from gateway.actions import MAX_NONCE as MAX_ACTION_NONCE
from gateway.actions import UPDATE_JOB, ActionRefusedError, SignedActions
from gateway.api.errors import MAX_NESTING, ApiError, json_body, json_bytes
from gateway.api.guard import current_trace
from gateway.api.operations import ADDRESS_SCHEMA, Link, Operation, Operations, Param
from gateway.api.responses import PAGE_PARAMS, existing_id, id_param, json, paged_answer, path_address
from gateway.api.views import JobAnswer, JobsPage, JobView
from gateway.fees import FeeEstimate, FeeEstimateError, FeeEstimator
from gateway.intake import CancelRequest
from gateway.jobs import MAX_CHAIN, MAX_GAS_LIMIT, MIN_GAS_LIMIT, CreateJobRequest
from gateway.records import JobStatus
from node.chain import ChainError
from node.store import Page
from node.web import json_nesting
from protocol import CalldataError, encode_calldata

log = logging.getLogger("triggerx.gateway.api")

IntakeChange = Callable[[JobIntake, bytes], Awaitable[JobRecord]]  # change one job
STATUSES: tuple[JobStatus, ...] = typing.get_args(JobStatus)
MAX_SCANNED = 5_000  # records one list request reads at most, however few match its filters
LIST_PARAMS = (
    Param("owner", "query", "only this owner's jobs", ADDRESS_SCHEMA, kind="address"),
    Param("status", "query", "only jobs in this status", {"type": "string", "enum": list(STATUSES)}),
    Param(
        "kind", "query", "only jobs of this trigger kind (scheduleType)", {"type": "string", "maxLength": 64}
    ),
    *PAGE_PARAMS,
)


class CreatedJobs(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """What POST /api/jobs created: `job` for one job; `jobs`, in the request's order, for a
    linked chain."""

    job: JobView | None = None
    jobs: list[JobView] | None = None


def job_view(storage: GatewayStorage, record: JobRecord) -> JobView:
    """`record` as the API shows it, with its fire times and its condition's state."""
    condition = None
    if record.spec.schedule_type == "condition":
        condition = storage.condition_states.get(record.id)
    return JobView.of(record, storage.fire_times.get(record.id), condition)


FEE_PARAMS = (
    Param(
        "owner",
        "query",
        "the job's owner (the call comes from its forwarder)",
        ADDRESS_SCHEMA,
        True,
        "address",
    ),
    Param("target", "query", "the contract each task calls", ADDRESS_SCHEMA, True, "address"),
    Param(
        "function",
        "query",
        "its signature, e.g. incrementBy(uint256)",
        {"type": "string", "maxLength": 512},
        True,
    ),
    Param("args", "query", "its arguments, a JSON array (default [])", {"type": "string", "maxLength": 4096}),
    Param(
        "gasLimit",
        "query",
        "the job's gas limit",
        {"type": "integer", "minimum": MIN_GAS_LIMIT, "maximum": MAX_GAS_LIMIT},
    ),
    Param(
        "tasks",
        "query",
        "how many tasks to price (default 1)",
        {"type": "integer", "minimum": 1, "maximum": 10**6},
    ),
)


class UpdateJobRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """Pause a job (no fire until resumed; tasks under way go on) or resume it, with the owner's
    signed `UpdateJob{jobId: the job's chainJobId, paused, nonce, deadline}` (gateway domain)."""

    paused: bool
    nonce: Annotated[int, Meta(ge=0, le=MAX_ACTION_NONCE, description="larger than the owner's last nonce")]
    deadline: Annotated[
        int, Meta(ge=0, le=MAX_ACTION_NONCE, description="unix seconds, at most an hour ahead")
    ]
    signature: Annotated[str, Meta(pattern="^0x[0-9a-fA-F]{130}$", description="65 bytes r ‖ s ‖ v")]


@contextmanager
def intake_refusals() -> Iterator[None]:
    """The intake's refusals as the API's: a bad field 400, a conflict 409, a chain that did not
    answer 503 (the request may be sent again)."""
    try:
        yield
    except JobSpecError as refused:
        raise ApiError(400, refused.problem, refused.field) from None
    except JobConflictError as conflict:
        raise ApiError(409, str(conflict)) from None
    except ChainError as error:
        raise ApiError(503, f"the chain did not answer: {error}") from None


def jobs_blueprint(
    ops: Operations,
    storage: GatewayStorage,
    intake: JobIntake | None,
    fees: FeeEstimator | None = None,
    actions: SignedActions | None = None,
) -> Blueprint:
    """The job routes; without an `intake` the gateway takes no jobs (503), without `fees` it
    estimates none (503), without `actions` it changes none (503)."""
    jobs = Blueprint("jobs", __name__)

    async def through_intake(change: IntakeChange, status: int) -> Response:
        """The job `change` makes of the request body, or the intake's refusal as JSON."""
        if intake is None:
            raise ApiError(503, "this gateway takes no jobs: it has no job intake")
        with intake_refusals():
            record = await change(intake, await json_bytes())
        return json(JobAnswer(job=job_view(storage, record)), status)

    @ops.route(
        jobs,
        Operation(
            "POST",
            "/api/jobs",
            "Create a job, or a linked chain of jobs",
            "jobs",
            CreatedJobs,
            status=201,
            body=CreateJobRequest,
            errors=(409, 503),
            links=(
                Link("job", "get_api_jobs_id", {"id": "$response.body#/job/id"}),
                Link("tasks", "get_api_tasks_job_id", {"id": "$response.body#/job/id"}),
                Link("cancel", "delete_api_jobs_delete_id", {"id": "$response.body#/job/id"}),
            ),
            description="The owner signs the job's consent (EIP-712, see the introduction). "
            "A job is created once: the same signed job again is a 409. "
            f"`jobs` (2 to {MAX_CHAIN}, instead of `job` and `signature`) is a linked chain: each "
            "job after the first is an `after` job whose `schedule.jobId` is an earlier one's "
            "chainJobId (`owner << 96 | nonce`, decimal), so it runs once after each task of that "
            "job completes. Every job is checked before any is created, and all are created or "
            "none (an error names the entry: `$.jobs[2].job.schedule.jobId`). An `after` job "
            "posted alone must follow a job of this gateway.",
        ),
    )
    async def post_job() -> Response:
        if intake is None:
            raise ApiError(503, "this gateway takes no jobs: it has no job intake")
        with intake_refusals():
            records = await intake.create(await json_bytes(), trace_id=current_trace.get())
        views = [job_view(storage, record) for record in records]
        return json(CreatedJobs(job=views[0]) if len(views) == 1 else CreatedJobs(jobs=views), 201)

    @ops.route(
        jobs,
        Operation(
            "DELETE",
            "/api/jobs/delete/{id}",
            "Cancel a job (its status becomes deleted; nothing is erased)",
            "jobs",
            JobAnswer,
            body=CancelRequest,
            params=(id_param("job"),),
            errors=(404, 409, 503),
        ),
    )
    async def cancel_job(id: str) -> Response:
        job_id = existing_id("job", id, storage.jobs.get)
        return await through_intake(lambda jobs, body: jobs.cancel(job_id, body), 200)

    @ops.route(
        jobs,
        Operation(
            "PUT",
            "/api/jobs/update/{id}",
            "Pause or resume a job, signed by its owner",
            "jobs",
            JobAnswer,
            body=UpdateJobRequest,
            params=(id_param("job"),),
            errors=(404, 409, 503),
            description="A paused job does not fire; its tasks under way go on. Resumed, a job "
            "whose fire was missed while paused fires once for it (catch-up `once`) or not at "
            "all (`skip`). A deleted or ended job cannot change (409).",
        ),
    )
    async def update_job(id: str) -> Response:
        job_id = existing_id("job", id, storage.jobs.get)
        if intake is None or actions is None:
            raise ApiError(503, "this gateway changes no jobs")
        wanted = await json_body(UpdateJobRequest)
        record = storage.jobs.get(job_id)
        values = {
            "jobId": record.chain_job_id,
            "paused": wanted.paused,
            "nonce": wanted.nonce,
            "deadline": wanted.deadline,
        }
        try:
            message = actions.message(UPDATE_JOB, values)
            verified = await actions.verify(
                message, bytes.fromhex(wanted.signature[2:]), record.owner, time.time()
            )
            record = storage.jobs.get(job_id)  # as it is now, after the signature check's await
            if record.status in ("deleted", "ended"):
                raise ApiError(409, f"job {job_id} is {record.status}: it cannot be paused or resumed")
            cap = intake.max_active_jobs_per_owner
            resuming = not wanted.paused and record.status == "paused"
            if resuming and storage.active_jobs_of(record.owner, cap) >= cap:  # pausing is no way past it
                raise ApiError(409, f"{record.owner} already has {cap} active jobs, the most allowed")
            status = "paused" if wanted.paused else "active"
            updated = msgspec.structs.replace(record, status=status)
            with storage.store.batch() as batch:  # the nonce is used with the change, or not at all
                actions.consume(verified, batch)
                storage.jobs.put(updated, batch=batch)
        except ActionRefusedError as refused:
            raise ApiError(refused.status, refused.reason, refused.field) from None
        if updated.status != record.status:
            resumed = intake.on_resumed or intake.on_created
            (intake.on_cancelled if wanted.paused else resumed)(updated)
            log.info("job %d %s by its owner (trace %s)", job_id, status, current_trace.get())
        return json(JobAnswer(job=job_view(storage, updated)))

    @ops.route(
        jobs,
        Operation(
            "GET",
            "/api/jobs/id/{id}",
            "One job, with its last and next fire and, for a condition job, its condition's state",
            "jobs",
            JobAnswer,
            params=(id_param("job"),),
            errors=(404,),
        ),
    )
    async def get_job(id: str) -> Response:
        record = storage.jobs.get(existing_id("job", id, storage.jobs.get))
        return json(JobAnswer(job=job_view(storage, record)))

    @ops.route(
        jobs,
        Operation(
            "GET",
            "/api/jobs",
            "Jobs by id, filtered by owner, status and trigger kind",
            "jobs",
            JobsPage,
            params=LIST_PARAMS,
            description="A page may hold fewer jobs than `limit` (a request reads at most "
            f"{MAX_SCANNED} jobs): go on while `cursor` is not null.",
        ),
    )
    async def list_jobs() -> Response:
        args = request.args
        owner = None if args.get("owner") is None else path_address(args["owner"], "owner")
        status, kind = args.get("status"), args.get("kind")  # checked against LIST_PARAMS' schemas
        return await paged_answer(
            lambda limit, cursor: _filtered(storage, owner, status, kind, limit, cursor),
            lambda page: JobsPage(jobs=[job_view(storage, job) for job in page.items], cursor=page.cursor),
        )

    @ops.route(
        jobs,
        Operation(
            "GET",
            "/api/jobs/fees",
            "What a job's tasks will cost",
            "jobs",
            FeeEstimate,
            params=FEE_PARAMS,
            errors=(422, 503),
            description="feePerTask = (targetGas + overheadGas) × (baseFee + priorityFee), with "
            "targetGas from eth_estimateGas (from the owner's forwarder) and the fees from "
            "eth_feeHistory; suggestedMaxFeePerTask = (gasLimit + overheadGas) × (2 × baseFee + "
            "priorityFee), enough while the base fee doubles. 422: the call reverts now.",
        ),
    )
    async def estimate_fees() -> Response:
        if fees is None:
            raise ApiError(503, "this gateway estimates no fees: it has no chain")
        args = request.args  # present and in range: checked against FEE_PARAMS' schemas
        owner, target = path_address(args["owner"], "owner"), path_address(args["target"], "target")
        gas_limit, tasks = int(args.get("gasLimit", "200000")), int(args.get("tasks", "1"))
        raw_args = args.get("args", "[]")
        if json_nesting(raw_args.encode()) > MAX_NESTING:
            raise ApiError(400, "at most 4096 characters, nested at most 32 deep", "args")
        try:
            values = msgspec.json.decode(raw_args, type=list[Any])
            calldata = encode_calldata(args["function"], values)
        except msgspec.MsgspecError:
            raise ApiError(400, "expected a JSON array of the call's arguments", "args") from None
        except CalldataError as error:
            raise ApiError(400, error.problem, error.field) from None
        try:
            estimate = await fees.estimate(owner, target, calldata, gas_limit, tasks)
        except FeeEstimateError as error:
            raise ApiError(422, str(error)) from None
        return json(estimate)

    return jobs


def _filtered(
    storage: GatewayStorage,
    owner: str | None,
    status: str | None,
    kind: str | None,
    limit: int,
    cursor: str | None,
) -> Page[JobRecord]:
    """A page of the jobs that match, read through the narrowest index the filters allow."""

    def read(after: str | None, count: int) -> Page[JobRecord]:
        if owner is not None and status is not None:
            return storage.jobs.by_index("owner_status", f"{owner}/{status}", limit=count, after=after)
        if owner is not None:
            return storage.jobs.by_index("owner", owner, limit=count, after=after)
        return storage.jobs.scan(limit=count, after=after)

    found: list[JobRecord] = []
    scanned = 0
    try:
        while True:
            page = read(cursor, limit - len(found))
            scanned += len(page.items)
            found += [
                job
                for job in page.items
                if (status is None or job.status == status)
                and (kind is None or job.spec.schedule_type == kind)
            ]
            cursor = page.cursor
            if cursor is None or len(found) == limit or scanned >= MAX_SCANNED:
                return Page(found, cursor)
    except ValueError:
        raise ApiError(400, "not a cursor this query gave out", "cursor") from None
