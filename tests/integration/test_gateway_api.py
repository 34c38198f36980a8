"""The HTTP API over a real store: jobs in, tasks out, and JSON errors for everything else."""

from __future__ import annotations

import json

import msgspec
import pytest
from eth_account import Account

from gateway.api import create_app
from gateway.jobs import IntervalSchedule, JobSpec, sign_job
from gateway.storage import GatewayStorage
from node.store import Store

CHAIN_ID = 31337
OWNER = Account.from_key(b"\x07" * 32)
SPEC = JobSpec(
    owner=OWNER.address,
    target="0x" + "22" * 20,
    function="increment()",
    schedule_type="interval",
    schedule=IntervalSchedule(every_seconds=2),
    max_fee_per_task="1000000000000000",
)


def body(spec: JobSpec = SPEC) -> str:
    return json.dumps({"job": msgspec.to_builtins(spec), "signature": sign_job(spec, OWNER, CHAIN_ID)})


@pytest.fixture
def storage(tmp_path):
    with Store.open(tmp_path / "db") as store:
        yield GatewayStorage(store)


@pytest.fixture
def created(storage):
    jobs = []
    return jobs, create_app(storage, CHAIN_ID, jobs.append).test_client()


async def test_a_job_is_created_and_read_back(created, storage):
    scheduled, client = created
    response = await client.post("/api/jobs", data=body(), headers={"content-type": "application/json"})
    assert response.status_code == 201
    job = (await response.get_json())["job"]
    assert (job["id"], job["owner"], job["status"]) == (1, OWNER.address, "active")
    assert [j.id for j in scheduled] == [1]
    response = await client.get("/api/jobs/id/1")
    assert (await response.get_json())["job"]["spec"]["function"] == "increment()"
    second = await client.post("/api/jobs", data=body(msgspec.structs.replace(SPEC, salt=2)))
    assert (await second.get_json())["job"]["id"] == 2


async def test_tasks_are_listed_by_job_with_a_cursor(created, storage):
    _, client = created
    await client.post("/api/jobs", data=body())
    job = storage.jobs.get(1)
    for fire in range(5):
        storage.fire(job, fire_at=1000.0 + fire, now=1000.0 + fire, trace_id=f"t{fire}")
        job = storage.jobs.get(1)
    first = await (await client.get("/api/tasks/job/1?limit=3")).get_json()
    assert [t["id"] for t in first["tasks"]] == [1, 2, 3]
    rest = await (await client.get(f"/api/tasks/job/1?limit=3&cursor={first['cursor']}")).get_json()
    assert [t["id"] for t in rest["tasks"]] == [4, 5]
    assert rest["cursor"] is None
    task = await (await client.get("/api/tasks/id/4")).get_json()
    assert (task["task"]["jobId"], task["task"]["status"], task["task"]["fireAt"]) == (1, "created", 1003.0)
    assert storage.jobs.get(1).last_fire == 1004.0


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "error"),
    [
        ("POST", "/api/jobs", "{", 400, "not JSON"),
        ("POST", "/api/jobs", json.dumps({"job": {}, "signature": "0x"}), 400, "missing required field"),
        ("GET", "/api/jobs/id/99", None, 404, "no job 99"),
        ("GET", "/api/tasks/id/99", None, 404, "no task 99"),
        ("GET", "/api/tasks/job/99", None, 404, "no job 99"),
        ("GET", "/api/jobs/id/abc", None, 404, "Not Found"),
        ("DELETE", "/api/jobs/id/1", None, 405, "method is not allowed"),
        ("GET", "/api/nowhere", None, 404, "Not Found"),
        # Finding 3: ids the store cannot key (signed 64-bit) were a 500.
        ("GET", f"/api/jobs/id/{2**63}", None, 404, f"no job {2**63}: job ids are 1 to {2**63 - 1}"),
        ("GET", f"/api/tasks/id/{2**64}", None, 404, f"no task {2**64}: task ids are 1 to"),
        ("GET", f"/api/tasks/job/{2**63}", None, 404, f"no job {2**63}: job ids are 1 to"),
        ("GET", "/api/jobs/id/-9223372036854775809", None, 404, "no job -9223372036854775809: job ids"),
        ("GET", f"/api/tasks/id/{10**30}", None, 404, f"no task {10**30}: task ids"),
        ("GET", "/api/tasks/job/" + "9" * 5000, None, 404, "no job 99999999999999999999… (5000 digits)"),
    ],
)
async def test_errors_are_json_with_a_reason(created, method, path, data, status, error):
    _, client = created
    response = await client.open(path, method=method, data=data)
    assert response.status_code == status
    assert error.lower() in (await response.get_json())["error"].lower()


async def test_a_wrong_method_says_which_are_allowed(created):
    _, client = created
    response = await client.delete("/api/jobs/id/1")
    assert (response.status_code, response.headers["Allow"]) == (405, "GET, HEAD, OPTIONS")
    assert response.content_type == "application/json"


async def test_bad_pagination_is_a_400(created):
    _, client = created
    await client.post("/api/jobs", data=body())
    for query, field in (("limit=0", "limit"), ("limit=x", "limit"), ("cursor=%%%", "cursor")):
        response = await client.get(f"/api/tasks/job/1?{query}")
        assert response.status_code == 400
        assert (await response.get_json())["field"] == field
