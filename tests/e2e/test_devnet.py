"""End to end: the devnet as separate processes runs time-triggered jobs; every task attested on chain."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from node.chain import load_artifact
from node.devnet import devnet_demo_job

from .conftest import CLI, keepers_online, rpc, transact, transfer_job, wait_for

pytestmark = pytest.mark.e2e


def test_an_interval_job_runs_on_the_devnet(devnet):
    gateway, chain = devnet["gatewayUrl"], devnet["rpcUrl"]
    body = devnet_demo_job(devnet, every_seconds=2)
    created = httpx.post(f"{gateway}/api/jobs", json=body)
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["id"]

    deadline = time.monotonic() + 120
    completed: list[dict] = []
    while time.monotonic() < deadline and len(completed) < 3:
        time.sleep(1)
        tasks = httpx.get(f"{gateway}/api/tasks/job/{job_id}").json()["tasks"]
        completed = [t for t in tasks if t["status"] == "completed"]
    assert len(completed) >= 3, tasks

    center = load_artifact("AttestationCenter").abi
    hub = load_artifact("TaskExecutionHub").abi
    logs = rpc(chain, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
    submitted = {
        center.decode_log(log).args["taskId"]: log["transactionHash"]
        for log in logs
        if log["address"].lower() == devnet["contracts"]["attestationCenter"].lower()
        and log["topics"][0] == center.event_topic("TaskSubmitted")
    }
    executed = [
        hub.decode_log(log).args["taskId"]
        for log in logs
        if log["address"].lower() == devnet["contracts"]["taskExecutionHub"].lower()
        and log["topics"][0] == hub.event_topic("TaskExecuted")
    ]
    for task in completed:
        assert submitted[task["id"]] == task["submissionTx"]
    # Exactly once: one hub execution per task id, and the counter moved once per execution.
    assert len(executed) == len(set(executed))
    counter = load_artifact("Counter").abi
    count = rpc(
        chain,
        "eth_call",
        {"to": devnet["demoCounter"], "data": "0x" + counter.encode_call("count", ()).hex()},
        "latest",
    )
    assert int(count, 16) == len(executed) >= len(completed)
    # Each approval released the task's escrowed fee to its performer.
    chain_job_id = int(httpx.get(f"{gateway}/api/jobs/id/{job_id}").json()["job"]["chainJobId"])
    for task in completed:
        [approved] = [a for a in task["attempts"] if a["outcome"] == "approved"]
        key = (task["id"], chain_job_id, approved["number"], approved["performer"])
        call = {
            "to": devnet["contracts"]["taskExecutionHub"],
            "data": "0x" + hub.encode_call("escrowOf", key).hex(),
        }
        escrow = rpc(chain, "eth_call", call, "latest")
        held, fee, settled = hub.decode_result("escrowOf", bytes.fromhex(escrow[2:]))
        assert (held, settled) == (True, True)
        assert fee > 0


def performers(gateway: str, job_id: int, since_task: int) -> list[str]:
    tasks = httpx.get(f"{gateway}/api/tasks/job/{job_id}", params={"limit": 500}).json()["tasks"]
    return [a["performer"] for t in tasks if t["id"] > since_task for a in t["attempts"]]


def test_a_killed_keeper_goes_offline_and_a_restarted_one_rejoins(devnet):
    gateway = devnet["gatewayUrl"]
    victim = devnet["keepers"]["keeper-1"]
    twin = subprocess.run(  # the same keeper started twice: refused while the first runs
        [CLI, "--config", devnet["configs"]["keeper-1"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert twin.returncode == 2
    assert twin.stderr.startswith("triggerx-node: error: keys.identity: another node is running"), twin.stderr
    os.kill(devnet["processes"]["keeper-1"], signal.SIGKILL)
    wait_for(lambda: keepers_online(gateway)[victim] is False)

    body = devnet_demo_job(devnet, every_seconds=1)
    job_id = httpx.post(f"{gateway}/api/jobs", json=body).json()["job"]["id"]
    wait_for(lambda: len(performers(gateway, job_id, 0)) >= 6)
    assert victim not in performers(gateway, job_id, 0)

    tasks_before = len(httpx.get(f"{gateway}/api/tasks/job/{job_id}", params={"limit": 500}).json()["tasks"])
    restarted = subprocess.Popen(
        [CLI, "--config", devnet["configs"]["keeper-1"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: keepers_online(gateway)[victim] is True)
        wait_for(lambda: victim in performers(gateway, job_id, tasks_before), timeout=90)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)


def test_an_event_on_one_chain_runs_a_job_on_another(two_chain_devnet):
    """A job watching chain 31338's logs executes on the home chain: the gateway follows both
    chains, the performer and the attesters find the log on the second before they approve."""
    devnet = two_chain_devnet
    [other] = devnet["otherChains"]
    url, gateway = other["rpcUrl"], devnet["gatewayUrl"]
    job = transfer_job(devnet, other)
    job_id = job.job_id
    minted = job.mint(job.receiver, 7)
    rpc(url, "anvil_mine", "0x2")

    def tasks() -> list[dict]:
        return httpx.get(f"{gateway}/api/tasks/job/{job_id}").json()["tasks"]

    wait_for(lambda: any(t["status"] == "completed" for t in tasks()), timeout=90)
    [task] = tasks()
    assert task["fireAt"] == int(
        rpc(url, "eth_getBlockByNumber", minted["blockNumber"], False)["timestamp"], 16
    )
    home = devnet["rpcUrl"]
    counter = rpc(home, "eth_call", {"to": devnet["demoCounter"], "data": "0x06661abd"}, "latest")
    assert int(counter, 16) == 1  # executed on the home chain, once


# On one devnet, after the tests above that need their own: the jobs of these do not disturb each other.


def test_cron_and_specific_time_jobs_run_on_the_devnet(module_devnet):
    """The cron and specific kinds through the whole path: the gateway fires them at exactly
    their times, keepers execute, and attesters accept the fires against the signed trigger."""
    devnet = module_devnet  # the jobs of this module's tests do not disturb each other
    gateway = devnet["gatewayUrl"]
    soon = int(time.time()) + 6
    kinds = {
        "cron": ("cron", {"cron": "*/3 * * * * *", "timezone": "Asia/Kolkata", "end": soon + 9}),
        "specific": ("specific", {"times": [soon, soon + 4, soon + 5]}),
    }
    jobs = {}
    for name, trigger in kinds.items():
        created = httpx.post(f"{gateway}/api/jobs", json=devnet_demo_job(devnet, trigger=trigger))
        assert created.status_code == 201, created.text
        jobs[name] = created.json()["job"]["id"]

    def tasks_of(name: str) -> list[dict]:
        return httpx.get(f"{gateway}/api/tasks/job/{jobs[name]}").json()["tasks"]

    wait_for(lambda: time.time() > soon + 10 and all(
        t["status"] == "completed" for name in jobs for t in tasks_of(name)), timeout=120)  # fmt: skip
    cron_fires = sorted(t["fireAt"] for t in tasks_of("cron"))
    assert cron_fires, "the cron job never fired"
    assert all(fire % 3 == 0 and fire <= soon + 9 for fire in cron_fires), cron_fires
    assert sorted(t["fireAt"] for t in tasks_of("specific")) == [soon, soon + 4, soon + 5]


def test_an_event_job_runs_on_the_devnet(module_devnet):
    """The event kind through the whole path: the gateway follows the chain's logs, fires the
    job once for the one matching transfer after its confirmation, keepers execute, and
    attesters find the log on chain before they approve."""
    devnet = module_devnet
    url, gateway = devnet["rpcUrl"], devnet["gatewayUrl"]
    job = transfer_job(devnet, None, "value >= 100")
    job_id = job.job_id
    matching = job.mint(job.receiver, 500)
    job.mint(rpc(url, "eth_accounts")[7], 999)  # another receiver
    job.mint(job.receiver, 5)  # too little
    rpc(url, "anvil_mine", "0x2")

    def tasks() -> list[dict]:
        return httpx.get(f"{gateway}/api/tasks/job/{job_id}").json()["tasks"]

    wait_for(lambda: any(t["status"] == "completed" for t in tasks()), timeout=90)
    time.sleep(3)  # nothing else fires
    [task] = tasks()
    block = rpc(url, "eth_getBlockByNumber", matching["blockNumber"], False)
    assert task["fireAt"] == int(block["timestamp"], 16)


def test_a_price_condition_job_runs_on_the_devnet(module_devnet):
    """The condition kind through the whole path: the gateway reads a price feed at each block,
    fires once when the price falls below the threshold (not again while it stays there),
    keepers execute, and attesters read the feed at the reported block before they approve."""
    devnet = module_devnet
    url, gateway = devnet["rpcUrl"], devnet["gatewayUrl"]
    sender = rpc(url, "eth_accounts")[9]
    artifact = load_artifact("PriceFeed")
    feed = transact(
        url, sender, None, artifact.abi.encode_deploy(artifact.bytecode, [8, "ETH/USD", 2000 * 10**8])
    )
    trigger = ("condition", {
        "chainId": devnet["chainId"],
        "values": [f"price = feed {feed['contractAddress']}"],
        "when": "price < 1500",
        "confirmations": 1,
    })  # fmt: skip
    created = httpx.post(f"{gateway}/api/jobs", json=devnet_demo_job(devnet, trigger=trigger))
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["id"]
    time.sleep(1.5)  # read above the threshold at least once
    fell = transact(
        url, sender, feed["contractAddress"], artifact.abi.encode_call("setAnswer", [1400 * 10**8])
    )
    rpc(url, "anvil_mine", "0x2")

    def tasks() -> list[dict]:
        return httpx.get(f"{gateway}/api/tasks/job/{job_id}").json()["tasks"]

    wait_for(lambda: any(t["status"] == "completed" for t in tasks()), timeout=90)
    rpc(url, "anvil_mine", "0x3")  # still below: no second task
    time.sleep(3)
    [task] = tasks()
    assert task["fireAt"] >= int(
        rpc(url, "eth_getBlockByNumber", fell["blockNumber"], False)["timestamp"], 16
    )
    shown = httpx.get(f"{gateway}/api/jobs/id/{job_id}").json()["job"]
    assert (shown["condition"]["holds"], shown["condition"]["error"]) == (True, None)
