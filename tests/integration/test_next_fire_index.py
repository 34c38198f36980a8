"""The next-fire index in the store: written after each fire, where a restart starts from it
(unless the job fired after it was written), unrecorded when a job stops, and in the API."""

from __future__ import annotations

import time

import msgspec
import trio

from gateway import FireTimes, GatewayStorage, JobRecord, TaskLedger
from gateway.api import create_app
from gateway.triggers import JobScheduler
from node.store import Store
from protocol import JobTerms, job_id_of

from ..gateway_helpers import counter_job

OWNER = "0x" + "33" * 20
CALLDATA = b"\xd0\x9d\xe0\x8a"
TERMS = JobTerms.static_call(OWNER, CALLDATA, 100_000, 10**15, bytes(32))


def every_second_job(created_at: float) -> JobRecord:
    job = counter_job(OWNER, job_id_of(OWNER, 1), TERMS, CALLDATA, created_at)
    return msgspec.structs.replace(job, spec=msgspec.structs.replace(job.spec, schedule={"everySeconds": 1}))


async def run_for(storage: GatewayStorage, seconds: float) -> list[float]:
    """Start a scheduler on `storage` as the gateway does (every stored job), run it for
    `seconds`; the fire times of the tasks it made."""
    fired: list[int] = []
    scheduler = JobScheduler(storage, TaskLedger(storage), fired.append)
    for job in storage.jobs.records():
        scheduler.schedule(job)
    with trio.move_on_after(seconds):
        await scheduler.run()
    return [storage.tasks.get(task_id).fire_at for task_id in fired]


async def test_each_fire_records_the_next_and_a_restart_starts_from_it(tmp_path):
    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        storage.jobs.put(every_second_job(float(int(time.time()))))
        first_run = await run_for(storage, 2.5)
        assert len(first_run) >= 2
        last_fire = first_run[-1]
        assert storage.fire_times.get(1) == FireTimes(job_id=1, last=last_fire, next=last_fire + 1)

        # A restart takes the recorded next fire as is: one put off the job's grid shows it.
        planned = last_fire + 1.5
        storage.fire_times.put(FireTimes(job_id=1, last=last_fire, next=planned))
        second_run = await run_for(storage, 2.2)
        assert second_run[0] == planned
        assert second_run[1:] == [planned + 0.5 + n for n in range(len(second_run) - 1)]


async def test_a_recorded_next_fire_the_job_fired_past_is_not_fired_again(tmp_path):
    """The index is written after the round of fires; a crash in between leaves a next fire
    the job's last fire (written with its task) has overtaken."""
    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        now = float(int(time.time()))
        storage.jobs.put(every_second_job(now - 10))
        storage.fire_times.put(FireTimes(job_id=1, last=now, next=now))  # `now` made its task: stale
        fires = await run_for(storage, now + 1.5 - time.time())
        assert fires[0] == now + 1


async def test_a_stopped_job_leaves_the_index(tmp_path):
    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        job = every_second_job(float(int(time.time())))
        storage.jobs.put(job)
        scheduler = JobScheduler(storage, TaskLedger(storage), lambda task_id: None)
        scheduler.schedule(job)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scheduler.run)
            await trio.sleep(0.3)
            assert storage.fire_times.get(1).next is not None
            scheduler.unschedule(job)
            await trio.sleep(0.3)
            assert storage.fire_times.get(1).next is None
            nursery.cancel_scope.cancel()

        # Cancelled while the gateway was down, with its next fire still recorded.
        storage.fire_times.put(FireTimes(job_id=1, last=None, next=time.time() + 60))
        storage.jobs.put(msgspec.structs.replace(job, status="deleted"))
        assert await run_for(storage, 0.3) == []
        assert storage.fire_times.get(1).next is None


async def test_the_api_shows_a_jobs_last_and_next_fire(tmp_path):
    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        storage.jobs.put(every_second_job(1.0))
        client = create_app(storage).test_client()
        reply = await (await client.get("/api/jobs/id/1")).get_json()
        assert (reply["job"]["lastFire"], reply["job"]["nextFire"]) == (None, None)
        storage.fire_times.put(FireTimes(job_id=1, last=1200.5, next=1234.5))
        reply = await (await client.get("/api/jobs/id/1")).get_json()
        assert (reply["job"]["id"], reply["job"]["lastFire"], reply["job"]["nextFire"]) == (1, 1200.5, 1234.5)


async def test_a_job_whose_schedule_has_no_fire_left_is_ended_and_shown_so(tmp_path):
    """Issue 12: a job's status stayed `active` after its last fire."""
    with Store.open(tmp_path / "gateway.db") as store:
        storage = GatewayStorage(store)
        now = int(time.time())
        job = every_second_job(float(now))
        job = msgspec.structs.replace(
            job, spec=msgspec.structs.replace(job.spec, schedule={"everySeconds": 1, "end": now + 1})
        )
        storage.jobs.put(job)
        fired = await run_for(storage, 2.5)
        assert fired  # it fired, then its schedule ran out
        assert storage.jobs.get(1).status == "ended"
        client = create_app(storage).test_client()
        shown = (await (await client.get("/api/jobs/id/1")).get_json())["job"]
        assert (shown["status"], shown["nextFire"]) == ("ended", None)
        assert await run_for(storage, 1.2) == []  # a restart does not bring it back
