"""The HTTP API over a real store and a real chain: jobs in (checked against the hub by
gateway.intake.JobIntake), cancelled by their owner, tasks out, and JSON errors for everything else."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
import rlp
import trio
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from gateway import GatewayStorage, JobIntake, JobRecord, JobSpec, TaskLedger, sign_job
from gateway.actions import UPDATE_JOB, SignedActions, gateway_domain
from gateway.api import create_app
from gateway.fees import FeeEstimator
from node.chain import Contract, RpcClient, TypedMessage, free_port, load_artifact
from node.store import Store
from protocol import CANCELLED_TERMS, cancel_message

from ..conftest import CHAIN_ID
from ..gateway_helpers import JsonClient

OWNER = Account.from_key(b"\x07" * 32)
SPEC = JobSpec(
    owner=OWNER.address,
    nonce=1,
    expiry=int(time.time()) + 86_400,
    target="0x" + "22" * 20,
    function="increment()",
    schedule_type="interval",
    schedule={"everySeconds": 2},
    max_fee_per_task="1000000000000000",
)


# The `core` fixture deploys the hub as the first transaction of anvil's first account, so its
# address (part of the EIP-712 domain the owner signs in) is known in advance.
ANVIL_DEPLOYER = bytes.fromhex("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
HUB = to_checksum_address(keccak(rlp.encode([ANVIL_DEPLOYER, 0]))[12:])


def body(spec: JobSpec = SPEC, owner=OWNER) -> str:
    signature = sign_job(spec, owner, CHAIN_ID, HUB)
    return json.dumps({"job": msgspec.to_builtins(spec), "signature": signature})


@pytest.fixture
def storage(tmp_path):
    with Store.open(tmp_path / "db") as store:
        yield GatewayStorage(store)


@pytest.fixture
async def created(storage, core, accounts, sender_for, rpc):
    """The API with a job intake on a fresh hub; OWNER has 1 ETH deposited; accounts[1] relays."""
    assert core.hub.address == HUB
    await rpc.call("anvil_setBalance", OWNER.address, hex(10**19))
    await core.hub.transact(sender_for(OWNER), "deposit", value=10**18)
    scheduled: list[JobRecord] = []

    def unschedule(job: JobRecord) -> None:
        scheduled[:] = [j for j in scheduled if j.id != job.id]

    intake = JobIntake(
        storage,
        core.hub,
        sender_for(accounts[1]),
        CHAIN_ID,
        on_created=scheduled.append,
        on_cancelled=unschedule,
    )
    actions = SignedActions(storage.store, CHAIN_ID, HUB)
    return scheduled, JsonClient(create_app(storage, intake=intake, actions=actions).test_client())


async def test_a_job_is_created_and_read_back(created, storage):
    scheduled, client = created
    response = await client.post("/api/jobs", data=body(), headers={"content-type": "application/json"})
    assert response.status_code == 201
    job = (await response.get_json())["job"]
    assert (job["id"], job["owner"], job["status"]) == (1, OWNER.address, "active")
    assert [j.id for j in scheduled] == [1]
    response = await client.get("/api/jobs/id/1")
    assert (await response.get_json())["job"]["spec"]["function"] == "increment()"
    second = await client.post("/api/jobs", data=body(msgspec.structs.replace(SPEC, nonce=2)))
    assert (await second.get_json())["job"]["id"] == 2
    # Finding 2: the same signed body posted again is not a new job.
    again = await client.post("/api/jobs", data=body())
    assert (again.status_code, await again.get_json()) == (
        409,
        {"error": "this signed job already exists as job 1"},
    )


async def test_an_event_job_on_a_chain_the_gateway_does_not_follow_is_refused(created):
    _, client = created  # this intake follows no chain's logs
    event = {"chainId": 5, "addresses": ["0x" + "22" * 20], "event": "Ping(uint256 n)"}
    spec = msgspec.structs.replace(SPEC, schedule_type="event", schedule=event)
    response = await client.post("/api/jobs", data=body(spec))
    assert (response.status_code, await response.get_json()) == (
        400,
        {"error": "this gateway reads no chain", "field": "$.job.schedule.chainId"},
    )


async def test_finding9_a_fee_cap_below_the_cost_of_one_execution_is_refused(created):
    """A 1-wei fee cap made keepers work for nothing, and job spam free."""
    _, client = created
    response = await client.post("/api/jobs", data=body(msgspec.structs.replace(SPEC, max_fee_per_task=1)))
    assert response.status_code == 400
    reply = await response.get_json()
    assert reply["field"] == "$.job.maxFeePerTask"
    assert reply["error"].startswith("is below the cost of one execution at today's base fee")


async def test_finding9_an_owner_without_balance_is_refused(created, sender_for):
    """A job whose owner had no deposit was accepted, and its tasks timed out on every keeper."""
    _, client = created
    broke = Account.from_key(b"\x08" * 32)
    spec = msgspec.structs.replace(SPEC, owner=broke.address)
    response = await client.post("/api/jobs", data=body(spec, broke))
    assert response.status_code == 400
    reply = await response.get_json()
    assert reply["field"] == "$.job.owner"
    assert reply["error"].startswith("balance 0 wei is less than maxFeePerTask 1000000000000000")


async def test_finding9_active_jobs_per_owner_are_capped(storage, core, accounts, sender_for, rpc):
    await rpc.call("anvil_setBalance", OWNER.address, hex(10**19))
    await core.hub.transact(sender_for(OWNER), "deposit", value=10**18)
    intake = JobIntake(
        storage,
        core.hub,
        sender_for(accounts[1]),
        CHAIN_ID,
        lambda job: None,
        lambda job: None,
        max_active_jobs_per_owner=2,
    )
    client = JsonClient(create_app(storage, intake=intake).test_client())
    statuses: list[int] = []

    async def post(nonce: int) -> None:
        response = await client.post("/api/jobs", data=body(msgspec.structs.replace(SPEC, nonce=nonce)))
        statuses.append(response.status_code)

    # Ten at once: each awaits the chain between its checks, so the cap is checked again last.
    async with trio.open_nursery() as nursery:
        for nonce in range(1, 11):
            nursery.start_soon(post, nonce)
    assert sorted(statuses) == [201, 201] + [400] * 8
    third = await client.post("/api/jobs", data=body(msgspec.structs.replace(SPEC, nonce=11)))
    assert (third.status_code, (await third.get_json())["error"]) == (
        400,
        "already has 2 active jobs, the most allowed",
    )


async def test_review_concurrent_cancellations_send_one_transaction(created, core, storage, accounts, rpc):
    """Ten DELETEs at once made the gateway send ten transactions at its own expense."""
    scheduled, client = created
    await client.post("/api/jobs", data=body())
    job = scheduled[0]
    TaskLedger(storage).create(job, fire_at=1000.0)
    signature = cancel_message(job.chain_job_id, CHAIN_ID, core.hub.address).sign(OWNER)
    before = int(await rpc.call("eth_getTransactionCount", accounts[1].address, "latest"), 16)
    statuses: list[int] = []

    async def cancel() -> None:
        response = await client.delete(
            "/api/jobs/delete/1", data=json.dumps({"signature": "0x" + signature.hex()})
        )
        statuses.append(response.status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(cancel)
    after = int(await rpc.call("eth_getTransactionCount", accounts[1].address, "latest"), 16)
    assert after - before == 1
    assert statuses.count(200) >= 1
    assert set(statuses) <= {200, 409}
    assert storage.jobs.get(1).status == "deleted"


async def test_finding2_the_owner_cancels_through_the_gateway_on_chain(created, core, storage):
    scheduled, client = created
    await client.post("/api/jobs", data=body())
    job = scheduled[0]
    TaskLedger(storage).create(job, fire_at=1000.0)  # a task may be in flight now
    stranger = cancel_message(job.chain_job_id, CHAIN_ID, core.hub.address).sign(
        Account.from_key(b"\x09" * 32)
    )
    refused = await client.delete("/api/jobs/delete/1", data=json.dumps({"signature": "0x" + stranger.hex()}))
    assert (refused.status_code, (await refused.get_json())["field"]) == (400, "$.signature")
    signature = cancel_message(job.chain_job_id, CHAIN_ID, core.hub.address).sign(OWNER)
    response = await client.delete(
        "/api/jobs/delete/1", data=json.dumps({"signature": "0x" + signature.hex()})
    )
    assert response.status_code == 200
    assert (await response.get_json())["job"]["status"] == "deleted"
    assert scheduled == []  # unscheduled
    # On chain at once: the signed consent can never register the job now.
    assert await core.hub.call("jobTermsHash", job.chain_job_id) == CANCELLED_TERMS
    # Posting the signed job again is refused, here and on chain.
    again = await client.post("/api/jobs", data=body())
    assert again.status_code == 409
    # A job that never fired is cancelled here only: cancelling costs the gateway no gas.
    await client.post("/api/jobs", data=body(msgspec.structs.replace(SPEC, nonce=5)))
    fresh = scheduled[-1]
    fresh_signature = cancel_message(fresh.chain_job_id, CHAIN_ID, core.hub.address).sign(OWNER)
    cancelled = await client.delete(
        f"/api/jobs/delete/{fresh.id}", data=json.dumps({"signature": "0x" + fresh_signature.hex()})
    )
    assert (await cancelled.get_json())["job"]["status"] == "deleted"
    assert await core.hub.call("jobTermsHash", fresh.chain_job_id) == bytes(32)
    missing = await client.delete(
        "/api/jobs/delete/7", data=json.dumps({"signature": "0x" + signature.hex()})
    )
    assert missing.status_code == 404


async def test_without_a_job_intake_no_jobs_are_taken(storage):
    client = JsonClient(create_app(storage).test_client())
    response = await client.post("/api/jobs", data=body())
    assert (response.status_code, (await response.get_json())["error"]) == (
        503,
        "this gateway takes no jobs: it has no job intake",
    )


async def test_tasks_are_listed_by_job_with_a_cursor(created, storage):
    _, client = created
    await client.post("/api/jobs", data=body())
    job = storage.jobs.get(1)
    for fire in range(5):
        TaskLedger(storage).create(job, fire_at=1000.0 + fire)
        job = storage.jobs.get(1)
    first = await (await client.get("/api/tasks/job/1?limit=3")).get_json()
    assert [t["id"] for t in first["tasks"]] == [1, 2, 3]
    rest = await (await client.get(f"/api/tasks/job/1?limit=3&cursor={first['cursor']}")).get_json()
    assert [t["id"] for t in rest["tasks"]] == [4, 5]
    assert rest["cursor"] is None
    task = await (await client.get("/api/tasks/id/4")).get_json()
    assert (task["task"]["jobId"], task["task"]["status"], task["task"]["fireAt"]) == (1, "created", 1003.0)
    assert storage.fire_times.get(1).last == 1004.0


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
        ("DELETE", "/api/jobs/delete/1", "{}", 404, "no job 1"),
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
    assert (response.status_code, response.headers["Allow"]) == (405, "GET, HEAD")
    assert response.content_type == "application/json"


async def test_bad_pagination_is_a_400(created):
    _, client = created
    await client.post("/api/jobs", data=body())
    for query, field in (("limit=0", "limit"), ("limit=x", "limit"), ("cursor=%%%", "cursor")):
        response = await client.get(f"/api/tasks/job/1?{query}")
        assert response.status_code == 400
        assert (await response.get_json())["field"] == field


@pytest.mark.timeout(10)  # it took 39 s on the event loop before the bounded parser
@pytest.mark.parametrize(
    "function", ["f" + "(" * 1000 + "uint256" + ")" * 1000, "f(uint256" + "[]" * 1000 + ")"]
)
async def test_finding5_a_hostile_function_string_is_a_400(created, function):
    _, client = created
    hostile = msgspec.structs.replace(SPEC, function=function)
    document = {"job": msgspec.to_builtins(hostile), "signature": "0x"}
    response = await client.post("/api/jobs", data=json.dumps(document))
    assert response.status_code == 400
    assert await response.get_json() == {
        "error": f"signature is {len(function)} characters long, at most 512",
        "field": "$.job.function",
    }


async def test_uint256_values_round_trip_through_store_and_api(created, core, sender_for, rpc):
    """A correctly signed job with maxFeePerTask 2**70 as a JSON number gave a 500 (msgpack
    cannot hold it). Fees of any uint256 and 256-bit job ids now go in and come out whole (2**100
    here: anvil will not fund a deposit much larger; test_job_spec covers 2**256-1)."""
    _, client = created
    rich = Account.from_key(b"\x0a" * 32)
    await rpc.call("anvil_setBalance", rich.address, hex(2**101))
    await core.hub.transact(sender_for(rich), "deposit", value=2**100)
    spec = msgspec.structs.replace(SPEC, owner=rich.address, nonce=2**96 - 1, max_fee_per_task=2**100)
    response = await client.post("/api/jobs", data=body(spec, rich))
    assert response.status_code == 201, await response.get_json()
    stored = (await (await client.get("/api/jobs/id/1")).get_json())["job"]
    assert stored["spec"]["maxFeePerTask"] == str(2**100)  # decimal strings: safe for any JSON client
    assert stored["spec"]["nonce"] == str(2**96 - 1)
    assert int(stored["chainJobId"]) == int(rich.address, 16) << 96 | 2**96 - 1


async def test_fees_are_estimated_from_the_targets_gas_and_the_fee_history(world, storage):
    client = JsonClient(create_app(storage, fees=FeeEstimator(world.hub)).test_client())
    owner = world.owner.account.address
    query = {
        "owner": owner,
        "target": world.counter.address,
        "function": "incrementBy(uint256)",
        "args": "[5]",
    }
    answer = await client.get("/api/jobs/fees", query_string=query | {"tasks": 3, "gasLimit": 100_000})
    assert answer.status_code == 200
    estimate = await answer.get_json()
    assert 20_000 < estimate["targetGas"] < 100_000
    price = int(estimate["baseFeePerGas"]) + int(estimate["priorityFeePerGas"])
    assert int(estimate["feePerTask"]) == (estimate["targetGas"] + estimate["overheadGas"]) * price > 0
    assert int(estimate["total"]) == 3 * int(estimate["feePerTask"])
    assert int(estimate["suggestedMaxFeePerTask"]) > int(estimate["feePerTask"])
    for bad, field in (
        ({"owner": "0x12"}, "owner"),
        ({"args": "[5"}, "args"),
        ({"args": '["x"]'}, "args[0]"),
        ({"function": "incrementBy("}, "function"),
        ({"tasks": "0"}, "tasks"),
        ({"gasLimit": "９"}, "gasLimit"),
    ):
        refused = await client.get("/api/jobs/fees", query_string=query | bad)
        assert (refused.status_code, (await refused.get_json())["field"]) == (400, field), bad
    reverting = await client.get(
        "/api/jobs/fees", query_string=query | {"function": "nothing()", "args": "[]"}
    )
    assert reverting.status_code == 422
    assert "reverts" in (await reverting.get_json())["error"]


def update_body(job_id: int, paused: bool, nonce: int, signer=OWNER, deadline: int | None = None) -> dict:
    """A PUT /api/jobs/update body: `signer`'s UpdateJob of the job `job_id` (its chain id)."""
    deadline = int(time.time()) + 600 if deadline is None else deadline
    values = {"jobId": job_id, "paused": paused, "nonce": nonce, "deadline": deadline}
    message = TypedMessage(gateway_domain(CHAIN_ID, HUB), UPDATE_JOB.name, UPDATE_JOB.fields, values)
    signature = "0x" + message.sign(signer).hex()
    return {"paused": paused, "nonce": nonce, "deadline": deadline, "signature": signature}


async def test_the_owner_pauses_and_resumes_a_job_each_signature_once(created, storage):
    scheduled, client = created
    await client.post("/api/jobs", data=body())
    chain_job_id = storage.jobs.get(1).chain_job_id
    paused = await client.put("/api/jobs/update/1", json=update_body(chain_job_id, True, 5))
    assert (paused.status_code, (await paused.get_json())["job"]["status"]) == (200, "paused")
    assert scheduled == []  # unscheduled: it fires no more
    replayed = await client.put("/api/jobs/update/1", json=update_body(chain_job_id, False, 5))
    assert replayed.status_code == 409
    assert (await replayed.get_json())["field"] == "$.nonce"
    resumed = await client.put("/api/jobs/update/1", json=update_body(chain_job_id, False, 6))
    assert (await resumed.get_json())["job"]["status"] == "active"
    assert [job.id for job in scheduled] == [1]
    stranger = Account.from_key(b"\x09" * 32)
    forged = await client.put("/api/jobs/update/1", json=update_body(chain_job_id, True, 7, stranger))
    assert (forged.status_code, (await forged.get_json())["field"]) == (400, "$.signature")
    other_job = await client.put("/api/jobs/update/1", json=update_body(chain_job_id + 1, True, 8))
    assert other_job.status_code == 400  # signed for another job: recovers another signer
    late = await client.put("/api/jobs/update/1", json=update_body(chain_job_id, True, 9, deadline=1))
    assert (late.status_code, (await late.get_json())["field"]) == (400, "$.deadline")
    assert (await client.put("/api/jobs/update/7", json=update_body(1, True, 10))).status_code == 404
    cancel = cancel_message(chain_job_id, CHAIN_ID, HUB).sign(OWNER)
    await client.delete("/api/jobs/delete/1", json={"signature": "0x" + cancel.hex()})
    deleted = await client.put("/api/jobs/update/1", json=update_body(chain_job_id, True, 11))
    assert deleted.status_code == 409
    assert "deleted" in (await deleted.get_json())["error"]


async def test_a_chain_that_does_not_answer_is_a_503_not_a_500(storage, core, sender_for, accounts):
    """The intake reads the job's standing on chain; a node that is down made every POST a 500."""
    async with RpcClient(f"http://127.0.0.1:{free_port()}", timeout=1.0, retries=0) as dead:
        hub = Contract(dead, load_artifact("TaskExecutionHub"), core.hub.address)
        intake = JobIntake(storage, hub, sender_for(accounts[1]), CHAIN_ID, lambda _: None, lambda _: None)
        client = JsonClient(create_app(storage, intake=intake).test_client())
        answer = await client.post("/api/jobs", data=body())
        assert answer.status_code == 503
        assert (await answer.get_json())["error"].startswith("the chain did not answer")
