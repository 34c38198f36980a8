"""Jobs whose script decides the call, on the devnet: uploaded by CID, dry-run by the gateway,
run by the performer in its sandbox, re-run by the attesters before they approve; a time job
with a Python argument script, an event job with a JavaScript one, and a custom-logic job whose
script says "not now" to every other fire (a skip the hub records) and "now" to the rest."""

from __future__ import annotations

import httpx
import pytest

from gateway import ScriptSpec
from node.chain import load_artifact
from node.devnet import devnet_demo_job

from .conftest import rpc, transfer_job, wait_for

pytestmark = pytest.mark.e2e
HUB = load_artifact("TaskExecutionHub").abi
COUNTER = load_artifact("Counter").abi
ARGUMENTS = b"import json, sys\njson.load(sys.stdin)['chain']['blockNumber']\nprint(json.dumps([7]))\n"
# An event job's script: 5 for a fire of the event kind (its input names the trigger).
ON_EVENT = (
    b"let s = ''; process.stdin.on('data', d => s += d).on('end', () => {"
    b" const input = JSON.parse(s);"
    b" console.log(JSON.stringify([input.trigger.kind === 'event' ? 5 : 0])); });\n"
)
# Every other fire of an interval job (fire times 3 s apart: their thirds alternate in parity).
EVERY_OTHER = b"""import json, sys
fire = json.load(sys.stdin)["trigger"]["fireAt"]
now = int(fire // 3) % 2 == 1
print(json.dumps({"shouldExecute": now, "args": [3], "reason": "odd" if now else "even"}))
"""


def upload(devnet: dict, source: bytes) -> str:
    return httpx.post(f"{devnet['gatewayUrl']}/api/scripts", content=source).json()["cid"]


def tasks(devnet: dict, job_id: int) -> list[dict]:
    return httpx.get(f"{devnet['gatewayUrl']}/api/tasks/job/{job_id}").json()["tasks"]


def hub_record(devnet: dict, task_id: int, performer: str | None = None) -> tuple[str, int | None]:
    """How the hub recorded task `task_id` (the execution `performer` sent, if given): as
    "TaskExecuted" (with what the counter went up by) or "TaskSkipped" (None)."""
    url = devnet["rpcUrl"]
    topic = "0x" + task_id.to_bytes(32, "big").hex()
    logs = rpc(url, "eth_getLogs", {"address": devnet["contracts"]["taskExecutionHub"],
               "topics": [None, topic], "fromBlock": "0x0", "toBlock": "latest"})  # fmt: skip
    # Other events may have a first topic of this value.
    recorded = [log for log in logs if HUB.decode_log(log).name in ("TaskExecuted", "TaskSkipped")]
    if performer is not None:
        sent = {log["transactionHash"]: rpc(url, "eth_getTransactionByHash", log["transactionHash"])["from"]
                for log in recorded}  # fmt: skip
        recorded = [log for log in recorded if sent[log["transactionHash"]].lower() == performer.lower()]
    [log] = recorded
    event = HUB.decode_log(log)
    if event.name == "TaskSkipped":
        return event.name, None
    receipt = rpc(url, "eth_getTransactionReceipt", log["transactionHash"])
    [incremented] = [e for e in map(COUNTER.decode_log, receipt["logs"]) if e is not None]
    return event.name, incremented.args["by"]


def test_time_event_and_custom_logic_script_jobs_complete_and_are_attested(module_devnet):
    devnet = module_devnet
    gateway = devnet["gatewayUrl"]
    arguments, every_other = (ScriptSpec(upload(devnet, s), "python") for s in (ARGUMENTS, EVERY_OTHER))
    time_job = devnet_demo_job(devnet, every_seconds=4, script=arguments)
    custom_job = devnet_demo_job(devnet, every_seconds=3, script=every_other)
    jobs = {}
    for name, body in (("time", time_job), ("custom", custom_job)):
        created = httpx.post(f"{gateway}/api/jobs", json=body)
        assert created.status_code == 201, created.text
        jobs[name] = created.json()["job"]["id"]
    event = transfer_job(devnet, None, script=ScriptSpec(upload(devnet, ON_EVENT), "javascript"))
    jobs["event"] = event.job_id
    event.mint(event.receiver, 1)
    rpc(devnet["rpcUrl"], "anvil_mine", "0x2")

    def completed(job: str) -> list[dict]:
        return [t for t in tasks(devnet, jobs[job]) if t["status"] == "completed"]

    def custom_records() -> set[str]:
        return {hub_record(devnet, t["id"])[0] for t in completed("custom")}

    wait_for(lambda: len(completed("time")) >= 2 and completed("event") and len(custom_records()) == 2, 150)
    for job in jobs.values():
        httpx.delete(f"{gateway}/api/jobs/delete/{job}")
    assert {hub_record(devnet, t["id"]) for t in completed("time")} == {("TaskExecuted", 7)}
    assert {hub_record(devnet, t["id"]) for t in completed("event")} == {("TaskExecuted", 5)}
    custom = {hub_record(devnet, t["id"]) for t in completed("custom")}
    assert custom == {("TaskExecuted", 3), ("TaskSkipped", None)}


def test_a_script_that_fails_its_dry_run_is_refused_naming_the_field(module_devnet):
    devnet = module_devnet
    for source, problem in [
        (b"raise SystemExit(3)", "exited with 3"),
        (b"print('[\"not a number\"]')", "do not fit incrementBy(uint256)"),
        (b"print('{\"shouldExecute\": true}')", "gives no args"),
    ]:
        body = devnet_demo_job(devnet, script=ScriptSpec(upload(devnet, source), "python"))
        refused = httpx.post(f"{devnet['gatewayUrl']}/api/jobs", json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["field"] == "$.job.script"
        assert problem in refused.json()["error"]
