"""Jobs whose arguments a script computes, on the devnet: uploaded by CID, dry-run by the
gateway, run by the performer in its sandbox, re-run by the attesters before they approve."""

from __future__ import annotations

import httpx
import pytest

from gateway import ScriptSpec
from node.chain import load_artifact
from node.devnet import devnet_demo_job

from .conftest import rpc, wait_for

pytestmark = pytest.mark.e2e
SCRIPTS = {
    "python": b"import json, sys\njson.load(sys.stdin)['chain']['blockNumber']\nprint(json.dumps([7]))\n",
    "javascript": (
        b"let s = ''; process.stdin.on('data', d => s += d)"
        b".on('end', () => { JSON.parse(s).chain.blockNumber; console.log(JSON.stringify([5])); });\n"
    ),
}


def counted(devnet: dict) -> int:
    call = {
        "to": devnet["demoCounter"],
        "data": "0x" + load_artifact("Counter").abi.encode_call("count", ()).hex(),
    }
    return int(rpc(devnet["rpcUrl"], "eth_call", call, "latest"), 16)


def test_jobs_with_python_and_javascript_argument_scripts_run_and_are_attested(devnet):
    gateway = devnet["gatewayUrl"]
    jobs = {}
    for language, source in SCRIPTS.items():
        cid = httpx.post(f"{gateway}/api/scripts", content=source).json()["cid"]
        body = devnet_demo_job(devnet, every_seconds=4, script=ScriptSpec(cid, language))
        created = httpx.post(f"{gateway}/api/jobs", json=body)
        assert created.status_code == 201, created.text
        jobs[language] = created.json()["job"]["id"]

    def tasks(job_id: int) -> list[dict]:
        return httpx.get(f"{gateway}/api/tasks/job/{job_id}").json()["tasks"]

    wait_for(lambda: all(sum(t["status"] == "completed" for t in tasks(j)) >= 2 for j in jobs.values()), 120)
    cancelled = [httpx.delete(f"{gateway}/api/jobs/delete/{j}") for j in jobs.values()]
    del cancelled  # the counter is read below: what ran, ran with the scripts' arguments
    executed = {
        language: sum(t["status"] in ("executed", "completed") for t in tasks(j))
        for language, j in jobs.items()
    }
    assert counted(devnet) in {
        7 * executed["python"] + 5 * executed["javascript"] + extra for extra in (0, 5, 7, 12)
    }


def test_a_script_that_fails_its_dry_run_is_refused_naming_the_field(devnet):
    gateway = devnet["gatewayUrl"]
    for source, problem in [
        (b"raise SystemExit(3)", "exited with 3"),
        (b"print('[\"not a number\"]')", "do not fit incrementBy(uint256)"),
    ]:
        cid = httpx.post(f"{gateway}/api/scripts", content=source).json()["cid"]
        refused = httpx.post(
            f"{gateway}/api/jobs", json=devnet_demo_job(devnet, script=ScriptSpec(cid, "python"))
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["field"] == "$.job.script"
        assert problem in refused.json()["error"]
