"""The API's rules for every request, over a real store: trace ids, API keys, the admin
credential, rate limits, JSON-only bodies, and the input the issue's review tried (gateway.api)."""

from __future__ import annotations

import msgspec
import pytest

from gateway import GatewayStorage, TaskLedger
from gateway.api import AccessRules, create_app
from gateway.api_keys import ApiKeys
from gateway.rate_limits import RateLimiter
from node.store import Store

from ..gateway_helpers import JsonClient, watching_job

ADMIN = "the-admin-credential"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def storage(tmp_path):
    with Store.open(tmp_path / "db") as store:
        yield GatewayStorage(store)


@pytest.fixture
def clock():
    return Clock()


def client_for(storage, clock, **rules) -> JsonClient:
    access = AccessRules(ApiKeys(storage.store), admin_token=ADMIN, limiter=RateLimiter(clock=clock), **rules)
    return JsonClient(create_app(storage, access=access).test_client())


@pytest.fixture
def client(storage, clock):
    storage.jobs.put(watching_job("interval", {"everySeconds": 60}))
    return client_for(storage, clock)


async def new_key(client, requests_per_minute: int | None = None) -> dict:
    body = {"owner": "integrator-1"} | (
        {"requestsPerMinute": requests_per_minute} if requests_per_minute else {}
    )
    response = await client.post(
        "/api/admin/api-keys", json=body, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert response.status_code == 201
    return await response.get_json()


# ---- Trace ids --------------------------------------------------------------------------------


async def test_a_valid_trace_id_is_adopted_and_any_other_replaced(client):
    adopted = await client.get("/api/jobs/id/1", headers={"X-Trace-ID": "dapp-request.0042"})
    assert adopted.headers["X-Trace-ID"] == "dapp-request.0042"
    for bad in ("short", "has space in it", "x" * 41, "semi;colon-00"):
        replaced = await client.get("/api/jobs/id/1", headers={"X-Trace-ID": bad})
        assert replaced.headers["X-Trace-ID"] != bad
        assert len(replaced.headers["X-Trace-ID"]) == 32
    a, b = (await client.get("/api/jobs/id/1"), await client.get("/api/jobs/id/1"))
    assert a.headers["X-Trace-ID"] != b.headers["X-Trace-ID"]


async def test_a_jobs_tasks_carry_the_trace_id_of_the_request_that_created_it(storage):
    job = msgspec.structs.replace(counter_job_of(storage), trace_id="dapp-request.0042")
    task = TaskLedger(storage).create(job, fire_at=10.0)
    assert task.trace_id == f"dapp-request.0042-{task.id}"


def counter_job_of(storage):
    storage.jobs.put(watching_job("interval", {"everySeconds": 60}))
    return storage.jobs.get(1)


# ---- API keys and the admin -------------------------------------------------------------------


async def test_a_key_is_stored_only_as_a_hash_and_lifts_the_rate_limit(client, storage, clock):
    issued = await new_key(client, requests_per_minute=1000)
    key = issued["apiKey"]
    assert key.startswith("tgx_")
    assert issued["key"]["keyId"] == key[4:16]
    stored = b"".join(value for _, value in storage.store.db.iterator())
    assert key.encode() not in stored
    assert key[16:].encode() not in stored
    answer = await client.get("/api/jobs/id/1", headers={"X-Api-Key": key})
    assert (answer.status_code, answer.headers["X-RateLimit-Limit"]) == (200, "1000")
    anonymous = await client.get("/api/jobs/id/1")
    assert anonymous.headers["X-RateLimit-Limit"] == "600"


@pytest.mark.parametrize(
    ("key", "status", "reason"),
    [
        ("tgx_000000000000" + "A" * 43, 401, "not a key of this gateway"),
        ("nonsense", 401, "not a key of this gateway"),
        ("", 401, "not a key of this gateway"),
    ],
)
async def test_a_bad_key_is_refused_never_taken_for_no_key(client, key, status, reason):
    answer = await client.get("/api/jobs/id/1", headers={"X-Api-Key": key})
    assert answer.status_code == status
    assert await answer.get_json() == {"error": f"X-Api-Key is {reason}", "field": "X-Api-Key"}


async def test_a_key_with_a_right_id_and_a_wrong_secret_is_refused(client):
    key = (await new_key(client))["apiKey"]
    forged = key[:16] + ("B" if key[16] != "B" else "C") + key[17:]
    assert (await client.get("/api/jobs/id/1", headers={"X-Api-Key": forged})).status_code == 401


async def test_a_revoked_key_is_a_403_and_stays_revoked(client):
    issued = await new_key(client)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    revoked = await client.put(
        f"/api/admin/api-keys/{issued['key']['keyId']}", json={"revoked": True}, headers=admin
    )
    assert (await revoked.get_json())["key"]["revoked"] is True
    answer = await client.get("/api/jobs/id/1", headers={"X-Api-Key": issued["apiKey"]})
    assert answer.status_code == 403
    assert "was revoked" in (await answer.get_json())["error"]
    restore = await client.put(
        f"/api/admin/api-keys/{issued['apiKey']}", json={"revoked": False}, headers=admin
    )
    assert (restore.status_code, (await restore.get_json())["field"]) == (400, "$.revoked")


async def test_the_admin_lists_an_owners_keys_and_changes_a_limit(client):
    first, second = await new_key(client), await new_key(client, requests_per_minute=5)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    listed = await (await client.get("/api/admin/api-keys/integrator-1", headers=admin)).get_json()
    assert {k["keyId"] for k in listed["keys"]} == {first["key"]["keyId"], second["key"]["keyId"]}
    assert all("apiKey" not in k and "keyHash" not in k for k in listed["keys"])
    changed = await client.put(
        f"/api/admin/api-keys/{second['apiKey']}", json={"requestsPerMinute": 7}, headers=admin
    )
    assert (await changed.get_json())["key"]["requestsPerMinute"] == 7
    used = await client.get("/api/jobs/id/1", headers={"X-Api-Key": second["apiKey"]})
    assert used.headers["X-RateLimit-Limit"] == "7"
    missing = await client.put("/api/admin/api-keys/0123456789ab", json={"revoked": True}, headers=admin)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Bearer not-it"}, 403),
        ({"Authorization": f"Bearer {ADMIN}x"}, 403),
    ],
)
async def test_admin_operations_need_the_admin_credential(client, headers, status):
    for method, path, body in (
        ("POST", "/api/admin/api-keys", {"owner": "me"}),
        ("GET", "/api/admin/api-keys/me", None),
        ("PUT", "/api/admin/api-keys/0123456789ab", {"revoked": True}),
    ):
        answer = await client.open(path, method=method, json=body, headers=headers)
        assert answer.status_code == status, (method, path)
        assert (await answer.get_json())["field"] == "Authorization"


async def test_without_an_admin_credential_configured_no_admin_operation_runs(storage, clock):
    access = AccessRules(ApiKeys(storage.store), limiter=RateLimiter(clock=clock))
    client = JsonClient(create_app(storage, access=access).test_client())
    answer = await client.get("/api/admin/api-keys/me", headers={"Authorization": "Bearer anything"})
    assert answer.status_code == 403


async def test_a_gateway_that_requires_keys_refuses_calls_without_one(storage, clock):
    storage.jobs.put(watching_job("interval", {"everySeconds": 60}))
    client = client_for(storage, clock, keys_required=True)
    answer = await client.get("/api/jobs/id/1")
    assert (answer.status_code, (await answer.get_json())["field"]) == (401, "X-Api-Key")
    key = (await new_key(client))["apiKey"]
    assert (await client.get("/api/jobs/id/1", headers={"X-Api-Key": key})).status_code == 200


# ---- Rate limits ------------------------------------------------------------------------------


async def test_over_the_limit_is_a_429_with_retry_after_until_the_window_ends(storage, clock):
    storage.jobs.put(watching_job("interval", {"everySeconds": 60}))
    client = client_for(storage, clock, anonymous_per_minute=3)
    remaining = []
    for _ in range(3):
        answer = await client.get("/api/jobs/id/1")
        assert answer.status_code == 200
        remaining.append(answer.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    clock.now += 20
    refused = await client.get("/api/jobs/id/1")
    assert refused.status_code == 429
    assert (refused.headers["Retry-After"], refused.headers["X-RateLimit-Reset"]) == ("40", "40")
    assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) == ("3", "0")
    assert (await refused.get_json())["error"] == "over 3 requests per minute: retry in 40 s"
    clock.now += 40
    assert (await client.get("/api/jobs/id/1")).status_code == 200


async def test_a_keys_limit_is_its_own_not_its_addresss(storage, clock):
    storage.jobs.put(watching_job("interval", {"everySeconds": 60}))
    client = client_for(storage, clock, anonymous_per_minute=1)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    issued = await (await client.post("/api/admin/api-keys", json={"owner": "a"}, headers=admin)).get_json()
    assert (await client.get("/api/jobs/id/1")).status_code == 429  # the admin call used the address's one
    keyed = await client.get("/api/jobs/id/1", headers={"X-Api-Key": issued["apiKey"]})
    assert keyed.status_code == 200


def test_the_limiter_holds_a_bounded_number_of_callers():
    clock = Clock()
    limiter = RateLimiter(max_callers=100, clock=clock)
    for caller in range(10_000):
        limiter.take(caller, 5)
    assert len(limiter._windows) == 100
    clock.now += 61
    limiter.take("late", 5)
    assert len(limiter._windows) == 1  # the windows that ended went first


# ---- Input the review tried -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/jobs/id/١", "/api/jobs/id/１", "/api/tasks/job/١", "/api/jobs/id/1.0"]
)
async def test_only_ascii_digits_name_an_id(client, path):
    answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.content_type == "application/json"


@pytest.mark.parametrize("cursor", ["", "AAAA", "%%%", "aYAAAAAAAAAFA", "aYAAAAAAAAAF="])
async def test_a_cursor_the_api_did_not_give_is_a_400(client, cursor):
    for path in ("/api/tasks/job/1", "/api/jobs", "/api/tasks"):
        answer = await client.get(path, query_string={"cursor": cursor})
        assert (answer.status_code, (await answer.get_json())["field"]) == (400, "cursor"), path


async def test_a_body_that_is_not_json_is_a_415(client):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        answer = await client.post(
            "/api/admin/api-keys",
            data='{"owner": "x"}',
            headers={"content-type": content_type, "Authorization": f"Bearer {ADMIN}"},
        )
        assert answer.status_code == 415
        assert (await answer.get_json())["field"] == "Content-Type"


async def test_options_and_head_answer_as_http_says(client):
    options = await client.open("/api/jobs/id/1", method="OPTIONS")
    assert (options.status_code, options.content_type) == (405, "application/json")
    assert options.headers["Allow"] == "GET, HEAD"
    head = await client.open("/api/jobs/id/1", method="HEAD")
    assert (head.status_code, head.content_type) == (200, "application/json")  # hypercorn drops the body


async def test_unknown_fields_are_refused_naming_them(client):
    answer = await client.post(
        "/api/admin/api-keys",
        json={"owner": "x", "role": "root"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert answer.status_code == 400
    assert await answer.get_json() == {"error": "Object contains unknown field `role`", "field": "$"}


async def test_bytes_are_hex_and_amounts_decimal_strings_in_answers(client):
    job = (await (await client.get("/api/jobs/id/1")).get_json())["job"]
    assert job["calldata"] == "0xd09de08a"
    assert len(job["termsHash"]) == 66
    assert job["chainJobId"].isdigit()
    assert job["spec"]["maxFeePerTask"] == "1000000000000000"


# ---- Lists ------------------------------------------------------------------------------------


async def test_jobs_are_listed_by_owner_status_and_kind_page_by_page(storage, clock):
    owners = ["0x" + "33" * 20, "0x" + "44" * 20]
    for number in range(1, 8):
        job = watching_job("interval" if number % 2 else "cron", {"everySeconds": 60})
        job = msgspec.structs.replace(
            job, id=number, owner=owners[number % 2], status="deleted" if number == 5 else "active"
        )
        storage.jobs.put(job)
    client = client_for(storage, clock)

    async def ids(**query) -> list[list[int]]:
        pages, cursor = [], None
        while True:
            answer = await client.get(
                "/api/jobs", query_string={"limit": 2, **query} | ({"cursor": cursor} if cursor else {})
            )
            reply = await answer.get_json()
            pages.append([job["id"] for job in reply["jobs"]])
            if (cursor := reply["cursor"]) is None:
                return pages

    assert await ids() == [[1, 2], [3, 4], [5, 6], [7]]
    assert await ids(owner=owners[1]) == [[1, 3], [5, 7]]
    assert await ids(owner=owners[1], status="active") == [[1, 3], [7]]
    assert await ids(status="deleted") == [[5]]
    assert await ids(kind="cron") == [[2, 4], [6]]
    bad = await client.get("/api/jobs", query_string={"owner": "0x1234"})
    assert (bad.status_code, (await bad.get_json())["field"]) == (400, "owner")
    bad = await client.get("/api/jobs", query_string={"status": "sleeping"})
    assert (bad.status_code, (await bad.get_json())["field"]) == (400, "status")


async def test_tasks_are_listed_all_or_by_status(client, storage):
    ledger = TaskLedger(storage)
    job = storage.jobs.get(1)
    done, failed, waiting = (ledger.create(job, fire_at=float(n)) for n in range(3))
    ledger.fail(failed.id, "no keeper online")
    everything = await (await client.get("/api/tasks")).get_json()
    assert [t["id"] for t in everything["tasks"]] == [done.id, failed.id, waiting.id]
    only = await (await client.get("/api/tasks", query_string={"status": "failed"})).get_json()
    assert [(t["id"], t["reason"]) for t in only["tasks"]] == [(failed.id, "no keeper online")]


# ---- The document -----------------------------------------------------------------------------


async def test_the_openapi_document_describes_every_route_the_app_serves(client):
    document = await (await client.get("/openapi.json")).get_json()
    assert document["openapi"] == "3.1.0"
    assert "EIP-712" in document["info"]["description"]
    served = {
        (rule.methods - {"HEAD"}).pop() + " " + rule.rule
        for rule in client.client.app.url_map.iter_rules()
        # Not API operations: the document itself, its page, and the dashboard's files.
        if rule.endpoint not in ("static", "openapi", "docs") and not rule.endpoint.startswith("dashboard.")
    }
    documented = {
        method.upper() + " " + path.replace("{id}", "<id:id>").replace("{", "<").replace("}", ">")
        for path, methods in document["paths"].items()
        for method in methods
    }
    assert {route.replace("<string:", "<") for route in served} == documented
    operations = [operation for methods in document["paths"].values() for operation in methods.values()]
    ids = [operation["operationId"] for operation in operations]
    assert len(set(ids)) == len(ids)
    for operation in operations:
        assert {"429", "500"} <= set(operation["responses"])
        for answer in operation["responses"].values():
            assert {link["operationId"] for link in answer.get("links", {}).values()} <= set(ids)
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert b"/openapi.json" in await docs.get_data()
