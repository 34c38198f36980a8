"""A performer that reports an event that does not exist: the attesters do not approve it, and
the task is retried on another keeper, which executes it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import keepers_online, rpc, transfer_job, wait_for

pytestmark = pytest.mark.e2e
ROGUE = Path(__file__).with_name("rogue_keeper.py")


def test_a_made_up_event_is_not_approved_and_the_task_goes_to_another_keeper(devnet, tmp_path):
    url, gateway = devnet["rpcUrl"], devnet["gatewayUrl"]
    liar = devnet["keepers"]["keeper-1"]
    os.kill(devnet["processes"]["keeper-1"], signal.SIGTERM)
    wait_for(lambda: keepers_online(gateway)[liar] is False, timeout=60)
    log = (tmp_path / "rogue.log").open("wb")
    rogue = subprocess.Popen(
        [sys.executable, str(ROGUE), "--config", devnet["configs"]["keeper-1"]], stdout=log, stderr=log
    )
    try:
        wait_for(lambda: keepers_online(gateway)[liar] is True, timeout=60)
        job = transfer_job(devnet)
        job_id = job.job_id

        def tasks() -> list[dict]:
            return httpx.get(f"{gateway}/api/tasks/job/{job_id}").json()["tasks"]

        # Transfers until one fires a task whose first attempt is the liar's (the performer of an
        # attempt is fixed by the task id: a third of the tasks, about).
        lied_to = None
        for _ in range(15):
            job.mint(job.receiver, 1)
            rpc(url, "anvil_mine", "0x2")
            wait_for(lambda: tasks() and all(t["attempts"] for t in tasks()), timeout=30)
            lied_to = next((t["id"] for t in tasks() if t["attempts"][0]["performer"] == liar), None)
            if lied_to is not None:
                break
        assert lied_to is not None, "no task went to the liar first"

        def the_task() -> dict:
            return next(t for t in tasks() if t["id"] == lied_to)

        # The liar's attempt is never approved; the task goes to another keeper.
        wait_for(lambda: the_task()["status"] == "completed", timeout=180)
        attempts = the_task()["attempts"]
        assert (attempts[0]["performer"], attempts[0]["outcome"] == "approved") == (liar, False)
        assert liar not in [a["performer"] for a in attempts[1:]]
        assert attempts[-1]["outcome"] == "approved"
        refusals = [
            (Path(devnet["configs"][name]).parent / "node.log").read_text(errors="replace")
            for name in ("keeper-2", "keeper-3")
        ]
        assert all("the trigger evidence does not match the assignment" in text for text in refusals)
    finally:
        rogue.send_signal(signal.SIGTERM)
        rogue.wait(timeout=30)
