"""The gateway's public API on a live devnet (one for the module): Schemathesis drives every
documented operation (no 5xx, no answer outside the document), a WebSocket subscriber follows a
job's tasks as the network runs them, and a linked chain of jobs posted in one request runs job
B once after each of job A's tasks completes, the attesters approving B's fires on chain."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from node.chain import load_artifact
from node.devnet import devnet_demo_job
from protocol import job_id_of
from protocol.triggers.after import ApprovalEvidence

from .conftest import rpc, wait_for

pytestmark = pytest.mark.e2e

ST = str(Path(sys.executable).with_name("st"))
# The order a task's status moves in (failed may come at any point; these tasks should not fail).
PROGRESSION = ["created", "dispatched", "executed", "completed"]


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(module_devnet):
    """Every operation, with examples, boundary cases, fuzzing and the document's links.

    `positive_data_acceptance` is left out: cursors, CIDs and signatures are only valid if the
    gateway made or can check them, which no schema can say, so a schema-valid request may be
    refused (400) by design.
    """
    gateway = module_devnet["gatewayUrl"]
    command = [
        ST,
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{gateway}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "25",
        "--seed",
        "12",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {module_devnet['adminToken']}",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    assert "Tested: " in run.stdout


async def test_a_websocket_subscriber_gets_a_jobs_task_events_in_order(module_devnet):
    gateway = module_devnet["gatewayUrl"]
    async with httpx.AsyncClient(base_url=gateway) as http:
        created = await http.post("/api/jobs", json=devnet_demo_job(module_devnet, every_seconds=2))
        assert created.status_code == 201, created.text
        job_id = created.json()["job"]["id"]
    statuses: dict[int, list[str]] = {}
    url = gateway.replace("http://", "ws://") + "/ws/tasks"
    with trio.fail_after(120):
        async with open_websocket_url(url) as ws:
            await ws.send_message(json.dumps({"type": "SUBSCRIBE", "room": f"job:{job_id}"}))
            assert json.loads(await ws.get_message()) == {"type": "SUBSCRIBED", "room": f"job:{job_id}"}
            snapshot = json.loads(await ws.get_message())
            assert snapshot["type"] == "JOB_TASKS_SNAPSHOT"
            for task in snapshot["tasks"]:
                statuses[task["id"]] = [task["status"]]
            while sum(1 for seen in statuses.values() if seen[-1] == "completed") < 2:
                frame = json.loads(await ws.get_message())
                assert frame["room"] == f"job:{job_id}"
                task = frame["task"]
                if frame["type"] == "TASK_CREATED":
                    assert task["id"] not in statuses
                    statuses[task["id"]] = [task["status"]]
                elif frame["type"] == "TASK_STATUS_CHANGED":
                    assert frame["previousStatus"] == statuses[task["id"]][-1]
                    statuses[task["id"]].append(task["status"])
    for seen in statuses.values():
        ranks = [PROGRESSION.index(status) for status in seen]
        assert ranks == sorted(ranks), seen
    done = [task_id for task_id, seen in statuses.items() if seen[-1] == "completed"]
    async with httpx.AsyncClient(base_url=gateway) as http:
        for task_id in done:  # what the stream said is what the store says
            task = (await http.get(f"/api/tasks/id/{task_id}")).json()["task"]
            [approved] = [a for a in task["attempts"] if a["outcome"] == "approved"]
            assert (task["status"], len(approved["txHash"]), int(task["fee"]) > 0) == ("completed", 66, True)
            assert approved["signers"]


def test_a_linked_chain_runs_b_after_each_of_as_tasks(module_devnet):
    devnet = module_devnet
    gateway = devnet["gatewayUrl"]
    end = int(time.time()) + 8
    first = devnet_demo_job(devnet, every_seconds=3, end=end)  # three fires
    predecessor = job_id_of(first["job"]["owner"], int(first["job"]["nonce"]))
    second = devnet_demo_job(devnet, trigger=("after", {"jobId": str(predecessor)}))
    created = httpx.post(f"{gateway}/api/jobs", json={"jobs": [first, second]})
    assert created.status_code == 201, created.text
    a, b = (job["id"] for job in created.json()["jobs"])

    def tasks_of(job_id: int) -> list[dict]:
        return httpx.get(f"{gateway}/api/tasks/job/{job_id}").json()["tasks"]

    def done() -> bool:
        a_tasks, b_tasks = tasks_of(a), tasks_of(b)
        approved = sum(t["status"] == "completed" for t in a_tasks)
        return (
            time.time() > end + 1
            and all(t["status"] in ("completed", "failed") for t in a_tasks)
            and len(b_tasks) == approved
            and all(t["status"] == "completed" for t in b_tasks)
        )

    wait_for(done, timeout=180)
    a_tasks = {t["id"]: t for t in tasks_of(a) if t["status"] == "completed"}
    assert len(a_tasks) >= 2, tasks_of(a)
    b_tasks = tasks_of(b)
    fired_by = [ApprovalEvidence.decode(bytes.fromhex(t["triggerDetail"][2:])).task_id for t in b_tasks]
    assert sorted(fired_by) == sorted(a_tasks)  # once per completed task of A, never twice

    chain = devnet["rpcUrl"]

    def block_of(tx_hash: str) -> dict:
        number = rpc(chain, "eth_getTransactionReceipt", tx_hash)["blockNumber"]
        return rpc(chain, "eth_getBlockByNumber", number, False)

    hub = load_artifact("TaskExecutionHub").abi
    executed_in = {
        hub.decode_log(log).args["taskId"]: int(log["blockNumber"], 16)
        for log in rpc(chain, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
        if log["address"].lower() == devnet["contracts"]["taskExecutionHub"].lower()
        and log["topics"][0] == hub.event_topic("TaskExecuted")
    }
    for task, predecessor_task in zip(b_tasks, fired_by, strict=True):
        approval = block_of(a_tasks[predecessor_task]["submissionTx"])
        assert task["fireAt"] == int(approval["timestamp"], 16)  # fired at the approval's block time
        assert int(approval["number"], 16) < executed_in[task["id"]]  # and executed after it
