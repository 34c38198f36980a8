"""`triggerx-node jobs …` and `balance …` against a live devnet, as a user runs them: each
command's happy path, and bad input answered by one clear error line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from eth_account import Account

from ..conftest import CLI, in_process, rpc

pytestmark = pytest.mark.e2e


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=180, env=env)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: the last line of stderr (after argparse's usage,
    when the arguments themselves are wrong); never a traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_jobs_are_created_shown_listed_watched_and_cancelled(client_devnet, tmp_path: Path):
    devnet = client_devnet
    facts = tmp_path / "devnet.json"
    facts.write_text(json.dumps(devnet))
    where = ["--devnet", str(facts)]
    end = str(int(time.time()) + 8)
    create = ["jobs", "create", "interval", "--target", devnet["demoCounter"], "--function", "increment()"]
    created = cli(*create, "--every", "2", "--end", end, "--json", *where)
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert (job["spec"]["scheduleType"], job["status"]) == ("interval", "active")

    shown = cli("jobs", "show", str(job["id"]), *where)
    assert shown.stdout.startswith(f"job {job['id']} (interval, "), shown.stderr  # active, or ended by now
    assert "increment() on " in shown.stdout
    listed = cli("jobs", "list", "--owner", job["owner"], "--json", *where)
    assert job["id"] in [each["id"] for each in json.loads(listed.stdout)["jobs"]]

    watched = cli("jobs", "watch", str(job["id"]), "--tasks", "1", "--json", *where)
    assert watched.returncode == 0, watched.stderr
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert events[-1]["task"]["status"] in ("completed", "failed")
    assert {e["task"]["jobId"] for e in events} == {job["id"]}
    human = cli("jobs", "watch", str(job["id"]), "--tasks", "1", *where)
    assert "→ completed" in human.stdout or "completed" in human.stdout.splitlines()[-1]

    tasks = json.loads(cli("jobs", "tasks", str(job["id"]), "--json", *where).stdout)["tasks"]
    assert any(task["status"] == "completed" for task in tasks)
    cancelled = cli("jobs", "cancel", str(job["id"]), *where)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {job['id']} (interval, deleted)" in cancelled.stdout


def test_the_gas_balance_is_shown_deposited_and_withdrawn(client_devnet, tmp_path: Path, capsys):
    devnet = client_devnet
    owner = Account.create()
    rpc(devnet["rpcUrl"], "anvil_setBalance", owner.address, hex(10**18))
    key_file = tmp_path / "owner.key"
    key_file.write_text("0x" + bytes(owner.key).hex())
    where = ["--gateway", devnet["gatewayUrl"], "--rpc-url", devnet["rpcUrl"], "--key-file", str(key_file)]
    assert in_process(capsys, "balance", "show", *where).stdout.strip() == "0 ETH (0 wei)"
    deposited = in_process(capsys, "balance", "deposit", "0.25eth", *where)
    assert deposited.stdout.startswith("deposited: 0x"), deposited.stderr
    assert in_process(capsys, "balance", "withdraw", str(5 * 10**16), *where).stdout.startswith(
        "withdrawn: 0x"
    )
    assert json.loads(in_process(capsys, "balance", "show", "--json", *where).stdout) == 2 * 10**17


def test_bad_input_is_one_clear_line_and_a_failure(client_devnet, tmp_path: Path, capsys):
    devnet = client_devnet
    facts = tmp_path / "devnet.json"
    facts.write_text(json.dumps(devnet))
    gateway = ["--gateway", devnet["gatewayUrl"]]
    owner = ["--key-file", str(tmp_path / "absent.key")]
    create = [
        "jobs",
        "create",
        "interval",
        "--function",
        "increment()",
        "--every",
        "2",
        "--devnet",
        str(facts),
    ]
    for args, error in [
        ([*create, "--target", "0x12", "--max-fee", "1000"], "$.job.target"),
        ([*create, "--target", devnet["demoCounter"], "--every", "0", "--max-fee", "1"], "$.job.schedule"),
        ([*create, "--target", devnet["demoCounter"], "--args", "{"], "--args: not JSON"),
        ([*create, "--target", devnet["demoCounter"], *owner], "--key-file: cannot read"),
        (["jobs", "show", "99999999", *gateway], "404: no job 99999999"),
        (["jobs", "cancel", "1", *gateway], "this client has no account"),
        (["jobs", "show", "1", "--gateway", "http://127.0.0.1:9"], "ConnectError"),
        (["jobs", "show", "1"], "no gateway: pass --gateway URL"),
        (["balance", "show", *gateway, "--key-file", str(tmp_path)], "--key-file: cannot read"),
        (["balance", "deposit", "-5", *gateway], "the amount must be more than 0"),
        (["balance", "deposit", "1.5wei", *gateway], "is not an amount"),
        (["jobs", "create", "interval", "--every", "2", *gateway], "the following arguments are required"),
        ([*create, "--target", devnet["demoCounter"], "--max-fee", "x"], "invalid int value"),
    ]:
        line = error_line(in_process(capsys, *args))
        assert line.startswith("triggerx-node"), line
        assert ": error: " in line, line
        assert error in line, (args, line)
