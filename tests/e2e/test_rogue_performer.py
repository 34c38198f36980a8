"""Performers that lie, on the devnet: one reports an event that does not exist, the other
executes a script job with arguments its script does not give. The attesters do not approve
either, and the task is retried on another keeper, which executes it as it should."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from gateway import ScriptSpec
from node.devnet import devnet_demo_job

from .conftest import keepers_online, rpc, running_devnet, transfer_job, wait_for
from .test_scripts_devnet import hub_record, upload

pytestmark = pytest.mark.e2e
ROGUE = Path(__file__).with_name("rogue_keeper.py")
LIAR = "keeper-1"


@pytest.fixture(scope="module")
def devnet(tmp_path_factory) -> Iterator[dict]:
    """A devnet of four keepers. With three, the penalty of a proven lie leaves the two honest
    keepers unable to approve each other's work: the performer's stake counts in the total
    but not for its approval, so the other two must hold two thirds of it between them."""
    with running_devnet(tmp_path_factory.mktemp("rogue") / "devnet", "--keepers", "4") as facts:
        yield facts


@contextmanager
def rogue_keeper(devnet: dict, lie: str, log: Path) -> Iterator[str]:
    """keeper-1 restarted as a rogue that tells `lie` (see rogue_keeper.py); its address."""
    gateway, liar = devnet["gatewayUrl"], devnet["keepers"][LIAR]
    with suppress(ProcessLookupError):  # a rogue before this one took its place
        os.kill(devnet["processes"][LIAR], signal.SIGTERM)
    wait_for(lambda: keepers_online(gateway)[liar] is False, timeout=60)
    with log.open("wb") as output:
        command = [sys.executable, str(ROGUE), lie, "--config", devnet["configs"][LIAR]]
        rogue = subprocess.Popen(command, stdout=output, stderr=output)
    try:
        wait_for(lambda: keepers_online(gateway)[liar] is True, timeout=60)
        yield liar
    finally:
        rogue.send_signal(signal.SIGTERM)
        rogue.wait(timeout=30)


def first_lied_to(tasks: Callable[[], list[dict]], liar: str, fire: Callable[[], None]) -> int:
    """The id of a task whose first attempt went to `liar`, firing the job with `fire` until one
    does (a task's performer is fixed by its id: about a quarter of the tasks)."""
    for _ in range(15):
        fire()
        wait_for(lambda: tasks() and all(t["attempts"] for t in tasks()), timeout=30)
        lied_to = next((t["id"] for t in tasks() if t["attempts"][0]["performer"] == liar), None)
        if lied_to is not None:
            return lied_to
    raise AssertionError("no task went to the liar first")


def retried_elsewhere(tasks: Callable[[], list[dict]], task_id: int, liar: str) -> list[dict]:
    """The attempts of task `task_id` once it completed: the liar's first, never approved, then
    another keeper's, approved."""

    def the_task() -> dict:
        return next(t for t in tasks() if t["id"] == task_id)

    wait_for(lambda: the_task()["status"] == "completed", timeout=180)
    attempts = the_task()["attempts"]
    assert (attempts[0]["performer"], attempts[0]["outcome"] == "approved") == (liar, False)
    assert liar not in [a["performer"] for a in attempts[1:]]
    assert attempts[-1]["outcome"] == "approved"
    return attempts


def honest_logs(devnet: dict) -> list[str]:
    return [
        (Path(devnet["configs"][name]).parent / "node.log").read_text(errors="replace")
        for name in ("keeper-2", "keeper-3", "keeper-4")
    ]


def test_a_made_up_event_is_not_approved_and_the_task_goes_to_another_keeper(devnet, tmp_path):
    url, gateway = devnet["rpcUrl"], devnet["gatewayUrl"]
    with rogue_keeper(devnet, "made-up-log", tmp_path / "rogue.log") as liar:
        job = transfer_job(devnet)

        def tasks() -> list[dict]:
            return httpx.get(f"{gateway}/api/tasks/job/{job.job_id}").json()["tasks"]

        def fire() -> None:
            job.mint(job.receiver, 1)
            rpc(url, "anvil_mine", "0x2")

        retried_elsewhere(tasks, first_lied_to(tasks, liar, fire), liar)
        refusal = "the trigger evidence does not match the assignment"
        assert all(refusal in text for text in honest_logs(devnet))


def test_other_arguments_than_the_script_gives_are_rejected_and_the_task_runs_again(devnet, tmp_path):
    """The liar's execution is on chain (incrementBy(1000) where the script says 7): the three
    honest keepers, three quarters of the stake, reject it, which proves it wrong; the hub
    reopens the task and another keeper executes it with the script's arguments."""
    gateway = devnet["gatewayUrl"]
    with rogue_keeper(devnet, "other-arguments", tmp_path / "rogue.log") as liar:
        script = ScriptSpec(upload(devnet, b"print('[7]')"), "python")
        body = devnet_demo_job(devnet, every_seconds=3, script=script)
        created = httpx.post(f"{gateway}/api/jobs", json=body)
        assert created.status_code == 201, created.text
        job_id = created.json()["job"]["id"]

        def tasks() -> list[dict]:
            return httpx.get(f"{gateway}/api/tasks/job/{job_id}").json()["tasks"]

        lied_to = first_lied_to(tasks, liar, lambda: time.sleep(3))  # the job fires every 3 s
        attempts = retried_elsewhere(tasks, lied_to, liar)
        httpx.delete(f"{gateway}/api/jobs/delete/{job_id}")
        assert (attempts[0]["outcome"], attempts[0]["reopened"]) == ("rejected", True)
        assert hub_record(devnet, lied_to, attempts[-1]["performer"]) == ("TaskExecuted", 7)
        assert hub_record(devnet, lied_to, liar) == ("TaskExecuted", 1000)  # the lie, refunded
        refusal = "the call arguments differ from what the job's script gives"
        assert all(refusal in text for text in honest_logs(devnet))
