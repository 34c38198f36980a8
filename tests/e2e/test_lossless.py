"""Acceptance (issue 8): a gateway killed while tasks are in flight loses none of them.

The devnet runs a job that fires every second for a while; the gateway is SIGKILLed while
some of its tasks are `created` or `dispatched`, and restarted from the same store. Every
task must end `completed`, each task id executed exactly once on chain (the hub's
TaskExecuted logs), and the job's fires while the gateway was down caught up once.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import time

import httpx
import pytest

from node.chain import load_artifact
from node.devnet import devnet_demo_job

from .conftest import CLI, rpc

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIRING_S = 14  # how long the job fires
SETTLE_S = 150  # how long every task may take to end after that


def tasks_of(gateway: str, job_id: int) -> list[dict]:
    return httpx.get(f"{gateway}/api/tasks/job/{job_id}?limit=500", timeout=5).json()["tasks"]


def tasks_when_done(gateway: str, job_id: int, end: int, wait: float) -> list[dict]:
    """The job's tasks once its end has passed and every task has ended (or `wait` is up)."""
    deadline = time.monotonic() + wait
    tasks: list[dict] = []
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            tasks = tasks_of(gateway, job_id)
        except httpx.HTTPError:
            continue  # a gateway still starting
        if time.time() > end + 2 and tasks and all(t["status"] in ("completed", "failed") for t in tasks):
            break
    return tasks


def executions(devnet: dict) -> collections.Counter[int]:
    """How many times the hub executed each task id (its TaskExecuted logs)."""
    hub = load_artifact("TaskExecutionHub").abi
    logs = rpc(
        devnet["rpcUrl"],
        "eth_getLogs",
        {
            "address": devnet["contracts"]["taskExecutionHub"],
            "topics": [hub.event_topic("TaskExecuted")],
            "fromBlock": "0x0",
            "toBlock": "latest",
        },
    )
    return collections.Counter(hub.decode_log(log).args["taskId"] for log in logs)


def test_a_gateway_killed_with_tasks_in_flight_loses_none(devnet, tmp_path):
    gateway = devnet["gatewayUrl"]
    body = devnet_demo_job(devnet, every_seconds=1, end=int(time.time()) + FIRING_S)
    created = httpx.post(f"{gateway}/api/jobs", json=body)
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["id"]

    deadline = time.monotonic() + 60
    in_flight: list[dict] = []
    while time.monotonic() < deadline:  # kill it while a keeper holds an assignment
        tasks = tasks_of(gateway, job_id)
        in_flight = [t for t in tasks if t["status"] in ("created", "dispatched")]
        if len(tasks) >= 3 and any(t["status"] == "dispatched" for t in in_flight):
            break
        time.sleep(0.02)
    assert any(t["status"] == "dispatched" for t in in_flight), tasks
    os.kill(devnet["processes"]["gateway"], signal.SIGKILL)
    killed_at = time.time()
    time.sleep(3)  # fires are missed meanwhile; the catch-up makes one late task

    with (tmp_path / "gateway-restarted.log").open("wb") as log:
        restarted = subprocess.Popen([CLI, "--config", devnet["configs"]["gateway"]], stdout=log, stderr=log)
    try:
        tasks = tasks_when_done(gateway, job_id, body["job"]["schedule"]["end"], FIRING_S + SETTLE_S)
        statuses = collections.Counter(t["status"] for t in tasks)
        assert statuses == {"completed": len(tasks)}, (
            statuses,
            [t for t in tasks if t["status"] != "completed"],
        )
        assert {t["id"] for t in in_flight} <= {t["id"] for t in tasks}
        fired_after = [t for t in tasks if t["fireAt"] > killed_at]
        assert fired_after, "the restarted gateway fired nothing"
        # Nothing fired twice, across the restart (the next-fire index and the last fire in the
        # store): the fire times are the job's seconds, each once.
        times = sorted(t["fireAt"] for t in tasks)
        assert len(set(times)) == len(times), times
        assert all(abs(at - times[0] - round(at - times[0])) < 0.001 for at in times), times

        executed = executions(devnet)
        assert executed == collections.Counter(t["id"] for t in tasks)  # each exactly once
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)


def test_an_aggregator_down_for_20_s_loses_no_task(devnet, tmp_path):
    """Keepers resend their votes, and performers their reports, until the attempt is decided
    (node.keeper.votes): tasks executed while the aggregator is down, or whose votes it had
    counted when it died, are still decided once it is back."""
    gateway = devnet["gatewayUrl"]
    body = devnet_demo_job(devnet, every_seconds=2, end=int(time.time()) + 40)
    created = httpx.post(f"{gateway}/api/jobs", json=body)
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        t["status"] == "completed" for t in tasks_of(gateway, job_id)
    ):
        time.sleep(0.2)
    os.kill(devnet["processes"]["aggregator"], signal.SIGKILL)
    down_at = time.time()
    time.sleep(20)
    with (tmp_path / "aggregator-restarted.log").open("wb") as log:
        restarted = subprocess.Popen(
            [CLI, "--config", devnet["configs"]["aggregator"]], stdout=log, stderr=log
        )
    try:
        tasks = tasks_when_done(gateway, job_id, body["job"]["schedule"]["end"], 40 + SETTLE_S)
        statuses = collections.Counter(t["status"] for t in tasks)
        unfinished = [t for t in tasks if t["status"] != "completed"]
        assert statuses == {"completed": len(tasks)}, (statuses, unfinished)
        assert any(down_at < t["fireAt"] < down_at + 20 for t in tasks), "nothing fired while it was down"
        executed = executions(devnet)
        assert all(executed[t["id"]] == 1 for t in tasks)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)


def test_performers_killed_right_after_their_transaction_lose_no_task(devnet, tmp_path):
    """Three times, the performer of a task is SIGKILLed the moment its execution is on chain
    (before it can publish its report, most of the time) and restarted a while later. Every
    task executed ends `completed`: a report that never came is relayed by the gateway from
    the chain (gateway.relay)."""
    gateway = devnet["gatewayUrl"]
    hub_address = devnet["contracts"]["taskExecutionHub"]
    body = devnet_demo_job(devnet, every_seconds=3, end=int(time.time()) + 45)
    created = httpx.post(f"{gateway}/api/jobs", json=body)
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["id"]
    keeper_of = {address.lower(): name for name, address in devnet["keepers"].items()}
    topic = load_artifact("TaskExecutionHub").abi.event_topic("TaskExecuted")
    live = dict(devnet["processes"])  # keeper name -> pid of its running process
    restarted: list[subprocess.Popen] = []
    killed: list[str] = []
    try:
        next_block = int(rpc(devnet["rpcUrl"], "eth_blockNumber"), 16)
        deadline = time.monotonic() + 90
        while len(killed) < 3 and time.monotonic() < deadline:
            head = int(rpc(devnet["rpcUrl"], "eth_blockNumber"), 16)
            if head >= next_block:
                window = {
                    "address": hub_address,
                    "topics": [topic],
                    "fromBlock": hex(next_block),
                    "toBlock": hex(head),
                }
                logs = rpc(devnet["rpcUrl"], "eth_getLogs", window)
                next_block = head + 1
                for log in logs[:1]:
                    tx = rpc(devnet["rpcUrl"], "eth_getTransactionByHash", log["transactionHash"])
                    name = keeper_of[tx["from"].lower()]
                    if name in killed[-1:]:
                        continue
                    os.kill(live[name], signal.SIGKILL)
                    killed.append(name)
                    time.sleep(8)  # its tasks go to the others meanwhile
                    with (tmp_path / f"{name}-{len(killed)}.log").open("wb") as log_file:
                        process = subprocess.Popen(
                            [CLI, "--config", devnet["configs"][name]], stdout=log_file, stderr=log_file
                        )
                    restarted.append(process)
                    live[name] = process.pid
                    next_block = int(rpc(devnet["rpcUrl"], "eth_blockNumber"), 16) + 1
            time.sleep(0.002)
        assert len(killed) == 3, killed

        tasks = tasks_when_done(gateway, job_id, body["job"]["schedule"]["end"], 45 + SETTLE_S)
        executed = executions(devnet)
        ran = [t for t in tasks if executed[t["id"]]]
        unfinished = [t for t in ran if t["status"] != "completed"]
        assert not unfinished, unfinished
        assert all(executed[t["id"]] == 1 for t in tasks)
    finally:
        for process in restarted:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
