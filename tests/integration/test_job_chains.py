"""Linked job chains: the gateway's `after` trigger fires a successor once for every task of its
predecessor that completes, across restarts and crashes, never twice (a real store and a real
anvil for the approvals' block times); and POST /api/jobs takes a chain of jobs, all or none."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
import trio
import trio.testing
from eth_account import Account

from gateway import GatewayStorage, JobIntake, JobRecord, JobSpec, TaskDecision, TaskLedger, sign_job
from gateway.api import create_app
from gateway.triggers.after import AfterTriggers
from node.store import Store
from protocol import job_id_of
from protocol.triggers.after import ApprovalEvidence

from ..conftest import CHAIN_ID
from ..gateway_helpers import DyingLedger, JsonClient, ProcessKilledError, watching_job

TX = "0x" + "ab" * 32  # the approvals' transaction (the gateway reads only its block's time)


def chain_jobs(storage: GatewayStorage) -> tuple[JobRecord, JobRecord, JobRecord]:
    """Job 1 (every minute), and jobs 2 and 3, both after job 1 (stored as the intake would)."""
    first = watching_job("interval", {"everySeconds": 60})
    then = [
        msgspec.structs.replace(
            watching_job("after", {"jobId": str(first.chain_job_id)}),
            id=n,
            chain_job_id=job_id_of(first.owner, n),
        )
        for n in (2, 3)
    ]
    for job in (first, *then):
        storage.jobs.put(job)
    return first, then[0], then[1]


def complete(ledger: TaskLedger, task_id: int, block: int) -> None:
    """The center approves task `task_id` in block `block` (as gateway.monitor records it)."""
    decision = TaskDecision(task_id, 1, 1, True, 0, TX, block)
    ledger.record_decision(decision, block)


def fired_by(storage: GatewayStorage, job: JobRecord) -> list[int]:
    """The predecessor tasks `job`'s tasks were fired by, in task order."""
    tasks = storage.tasks_of_job(job.id, limit=100, after=None).items
    return [ApprovalEvidence.decode(task.trigger_detail).task_id for task in tasks]


async def mined(rpc) -> tuple[int, float]:
    """A new block's number and time."""
    await rpc.call("anvil_mine", "0x1")
    block = await rpc.call("eth_getBlockByNumber", "latest", False)
    return int(block["number"], 16), float(int(block["timestamp"], 16))


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "db"


async def test_each_completed_task_fires_each_successor_once(store_path, rpc):
    with Store.open(store_path) as store:
        storage = GatewayStorage(store)
        first, second, third = chain_jobs(storage)
        ledger = TaskLedger(storage)
        older = ledger.create(first, 1.0)  # fired before its successors were scheduled
        handed, handed_on = trio.open_memory_channel[int](10)
        trigger = AfterTriggers(storage, ledger, handed.send_nowait, rpc)
        for job in (first, second, third):
            trigger.schedule(job)
        block, at = await mined(rpc)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trigger.run)
            await trio.testing.wait_all_tasks_blocked()  # following the ledger
            complete(ledger, older.id, block)
            task = ledger.create(first, 2.0)
            complete(ledger, task.id, block)
            made = sorted([await handed_on.receive(), await handed_on.receive()])
            complete(ledger, task.id, block)  # the same decision again (read again after a restart)
            trigger.unschedule(third)  # cancelled
            later = ledger.create(first, 3.0)
            complete(ledger, later.id, block)
            made.append(await handed_on.receive())  # events are handled in order: nothing came between
            nursery.cancel_scope.cancel()
        assert fired_by(storage, second) == [task.id, later.id]
        assert fired_by(storage, third) == [task.id]
        fired = storage.tasks.get(made[0])
        assert (fired.job_id, fired.fire_at) == (second.id, at)
        assert fired.trigger_detail == ApprovalEvidence(task.id, bytes.fromhex(TX[2:]), block).encode()
        assert fired.trace_id.endswith(f"-{fired.id}")


async def test_a_restart_fires_what_was_missed_once(store_path, rpc):
    with Store.open(store_path) as store:
        storage = GatewayStorage(store)
        first, second, _ = chain_jobs(storage)
        ledger = TaskLedger(storage)
        trigger = AfterTriggers(storage, ledger, lambda task_id: None, rpc)
        for job in (first, second):
            trigger.schedule(job)
        block, _ = await mined(rpc)
        done, in_flight, last = (ledger.create(first, float(n)) for n in (1, 2, 3))
        complete(ledger, done.id, block)  # ... and the gateway stops before it fires the successor
        complete(ledger, last.id, block)
    for start in range(2):
        with Store.open(store_path) as store:
            storage = GatewayStorage(store)
            ledger = TaskLedger(storage)
            trigger = AfterTriggers(storage, ledger, lambda task_id: None, rpc)
            for job in storage.jobs.records():
                trigger.schedule(job)
            made = await trigger.catch_up()
            assert len(made) == (2 if start == 0 else 0)
            assert fired_by(storage, second) == [done.id, last.id]
            # A catch-up reads on from the task still in flight, not from the first.
            assert trigger.states.get(second.id).settled == done.id
    with Store.open(store_path) as store:
        storage = GatewayStorage(store)
        ledger = TaskLedger(storage)
        trigger = AfterTriggers(storage, ledger, lambda task_id: None, rpc)
        for job in storage.jobs.records():
            trigger.schedule(job)
        ledger.fail(in_flight.id, "no keeper")
        assert await trigger.catch_up() == []
        assert trigger.states.get(second.id).settled == last.id


async def test_a_crash_while_firing_loses_nothing(store_path, rpc):
    with Store.open(store_path) as store:
        storage = GatewayStorage(store)
        first, second, _ = chain_jobs(storage)
        ledger = TaskLedger(storage)
        trigger = AfterTriggers(storage, DyingLedger(storage, dies_at=1), lambda task_id: None, rpc)
        for job in (first, second):
            trigger.schedule(job)
        block, _ = await mined(rpc)
        task = ledger.create(first, 1.0)
        complete(ledger, task.id, block)
        with pytest.raises(ProcessKilledError):  # dies before the successor's task is written
            await trigger.completed(storage.tasks.get(task.id))
        assert fired_by(storage, second) == []
    with Store.open(store_path) as store:
        storage = GatewayStorage(store)
        trigger = AfterTriggers(storage, TaskLedger(storage), lambda task_id: None, rpc)
        for job in storage.jobs.records():
            trigger.schedule(job)
        assert len(await trigger.catch_up()) == 1
        assert fired_by(storage, second) == [task.id]


# The API: chains of jobs, created all or none.

OWNER = Account.from_key(b"\x07" * 32)
SPEC = JobSpec(
    owner=OWNER.address,
    nonce="1",
    expiry=int(time.time()) + 86_400,
    target="0x" + "22" * 20,
    function="increment()",
    schedule_type="interval",
    schedule={"everySeconds": 2},
    max_fee_per_task="1000000000000000",
)


def after(nonce: int, predecessor: int) -> JobSpec:
    return msgspec.structs.replace(
        SPEC, nonce=str(nonce), schedule_type="after", schedule={"jobId": str(predecessor)}
    )


@pytest.fixture
async def api(tmp_path, core, accounts, sender_for, rpc):
    """The API with a job intake on a fresh hub (OWNER has 1 ETH deposited, and at most 5
    active jobs), the jobs it scheduled, in order, and how to sign for it."""
    await rpc.call("anvil_setBalance", OWNER.address, hex(10**19))
    await core.hub.transact(sender_for(OWNER), "deposit", value=10**18)
    with Store.open(tmp_path / "api.db") as store:
        storage = GatewayStorage(store)
        scheduled: list[JobRecord] = []
        intake = JobIntake(
            storage,
            core.hub,
            sender_for(accounts[1]),
            CHAIN_ID,
            on_created=scheduled.append,
            on_cancelled=lambda job: None,
            max_active_jobs_per_owner=5,
        )
        client = JsonClient(create_app(storage, intake=intake).test_client())

        def signed(spec: JobSpec, signer=OWNER) -> dict:
            return {
                "job": msgspec.to_builtins(spec),
                "signature": sign_job(spec, signer, CHAIN_ID, core.hub.address),
            }

        yield storage, scheduled, client, signed


def chain_id(nonce: int) -> int:
    return job_id_of(OWNER.address, nonce)


async def test_a_chain_of_jobs_is_created_in_one_request(api):
    _, scheduled, client, signed = api
    chain = [signed(SPEC), signed(after(2, chain_id(1))), signed(after(3, chain_id(2)))]
    response = await client.post("/api/jobs", data=json.dumps({"jobs": chain}))
    assert response.status_code == 201, await response.get_json()
    jobs = (await response.get_json())["jobs"]
    assert [(job["id"], job["chainJobId"]) for job in jobs] == [(n, str(chain_id(n))) for n in (1, 2, 3)]
    assert jobs[2]["spec"]["schedule"] == {"jobId": str(chain_id(2))}
    assert [job.id for job in scheduled] == [1, 2, 3]
    # Alone, an `after` job follows a job of this gateway's.
    alone = await client.post("/api/jobs", data=json.dumps(signed(after(4, chain_id(3)))))
    assert (alone.status_code, (await alone.get_json())["job"]["id"]) == (201, 4)
    document = await (await client.get("/openapi.json")).get_json()
    request = document["components"]["schemas"]["CreateJobRequest"]["properties"]
    assert request["jobs"]["anyOf"][0]["maxItems"] == 8
    answer = document["paths"]["/api/jobs"]["post"]["responses"]["201"]["content"]["application/json"]
    assert answer["schema"] == {"$ref": "#/components/schemas/CreatedJobs"}


async def test_an_after_job_alone_must_follow_a_job_of_this_gateway_that_still_fires(api):
    storage, _, client, signed = api
    stranger = await client.post("/api/jobs", data=json.dumps(signed(after(2, chain_id(9)))))
    assert (stranger.status_code, await stranger.get_json()) == (
        400,
        {
            "error": f"this gateway has no job {chain_id(9)}: a job runs after one of the same gateway",
            "field": "$.job.schedule.jobId",
        },
    )
    itself = await client.post("/api/jobs", data=json.dumps(signed(after(2, chain_id(2)))))
    assert (itself.status_code, (await itself.get_json())["field"]) == (400, "$.job.schedule.jobId")
    assert (await client.post("/api/jobs", data=json.dumps(signed(SPEC)))).status_code == 201
    storage.jobs.put(msgspec.structs.replace(storage.jobs.get(1), status="deleted"))
    cancelled = await client.post("/api/jobs", data=json.dumps(signed(after(2, chain_id(1)))))
    assert (cancelled.status_code, await cancelled.get_json()) == (
        400,
        {
            "error": f"job {chain_id(1)} (job 1 here) is deleted: it fires no more",
            "field": "$.job.schedule.jobId",
        },
    )


STRANGER = Account.from_key(b"\x08" * 32)


@pytest.mark.parametrize(
    ("third", "signer", "status", "field", "problem"),
    [
        (after(12, chain_id(7)), OWNER, 400, "$.jobs[2].job.schedule.jobId", "an earlier job in `jobs`"),
        (after(12, chain_id(10)), STRANGER, 400, "$.jobs[2].signature", f"not by the owner {OWNER.address}"),
        (
            msgspec.structs.replace(after(12, chain_id(10)), max_fee_per_task="1"),
            OWNER,
            400,
            "$.jobs[2].job.maxFeePerTask",
            "is below the cost of one execution",
        ),
        (after(9, chain_id(10)), OWNER, 409, None, "jobs[2]: this signed job already exists as job 2"),
    ],
)
async def test_a_bad_third_job_stores_none_of_the_chain(api, third, signer, status, field, problem):
    storage, scheduled, client, signed = api
    # Job 2 (nonce 9) runs after job 1 (nonce 20).
    for spec in (msgspec.structs.replace(SPEC, nonce="20"), after(9, chain_id(20))):
        assert (await client.post("/api/jobs", data=json.dumps(signed(spec)))).status_code == 201
    good = [signed(msgspec.structs.replace(SPEC, nonce="10")), signed(after(11, chain_id(10)))]
    refused = await client.post("/api/jobs", data=json.dumps({"jobs": [*good, signed(third, signer)]}))
    reply = await refused.get_json()
    assert (refused.status_code, reply.get("field")) == (status, field)
    assert problem in reply["error"]
    assert [job.id for job in storage.jobs.records()] == [1, 2]
    assert [job.id for job in scheduled] == [1, 2]
    fixed = await client.post(
        "/api/jobs", data=json.dumps({"jobs": [*good, signed(after(12, chain_id(11)))]})
    )
    assert [job["id"] for job in (await fixed.get_json())["jobs"]] == [3, 4, 5]


async def test_a_chain_counts_towards_its_owners_active_jobs(api):
    storage, _, client, signed = api
    for nonce in (20, 21):
        spec = msgspec.structs.replace(SPEC, nonce=str(nonce))
        assert (await client.post("/api/jobs", data=json.dumps(signed(spec)))).status_code == 201
    chain = [signed(SPEC), *(signed(after(n, chain_id(n - 1))) for n in (2, 3, 4))]
    refused = await client.post("/api/jobs", data=json.dumps({"jobs": chain}))
    assert (refused.status_code, await refused.get_json()) == (
        400,
        {"error": "already has 5 active jobs, the most allowed", "field": "$.jobs[3].job.owner"},
    )
    assert len(list(storage.jobs.records())) == 2
