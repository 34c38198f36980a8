"""The `devnet` command as a newcomer meets it, with real processes: a line per start-up step,
what runs where once ready, a folder that holds another run (or anything else) refused, what
stopped on Ctrl-C, and `--detach` with `status` and `stop`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from .conftest import CLI, in_process

pytestmark = pytest.mark.e2e


def devnets(*commands: tuple[str | Path, ...]) -> list[subprocess.CompletedProcess[str]]:
    """`triggerx-node devnet <arguments>` for each of `commands`, all at once (each takes seconds
    to import the node), each run to its end."""
    processes = [
        subprocess.Popen(
            [CLI, "devnet", *map(str, arguments)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for arguments in commands
    ]
    results = []
    for arguments, process in zip(commands, processes, strict=True):
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(arguments, process.returncode, out, err))
    return results


def devnet(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    """`triggerx-node devnet <arguments>`, run to its end."""
    [result] = devnets(arguments)
    return result


def start_in_foreground(folder: Path, *options: str) -> subprocess.Popen[str]:
    """`triggerx-node devnet --instant --keepers 1` in `folder`, running."""
    command = [CLI, "devnet", "--instant", "--keepers", "1", "--dir", str(folder), *options]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(process: subprocess.Popen[str], prefix: str) -> list[str]:
    """The process's output lines up to the first that starts with `prefix` (it included)."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no line starting with {prefix!r} in:\n{''.join(lines)}{process.stderr.read()}")


def interrupt(process: subprocess.Popen[str]) -> tuple[str, str, int]:
    """Ctrl-C; the rest of its stdout, its stderr and its exit code."""
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return out, err, process.returncode


def running(pid: int) -> bool:
    """Whether the process runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def port_open(url: str) -> bool:
    address = urlparse(url)
    with socket.socket() as connection:
        return connection.connect_ex((address.hostname, address.port)) == 0


def assert_one_line_error(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("triggerx-node: error: devnet: ")
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_detach_then_status_then_a_refused_second_start_then_stop(tmp_path):
    folder = tmp_path / "devnet"
    started = devnet("--detach", "--instant", "--keepers", "1", "--dir", folder)
    assert started.returncode == 0, started.stdout + started.stderr
    out = started.stdout
    for step in (
        "anvil on :",
        "contracts deployed",
        "started (pids",
        "gateway answering on",
        "keeper 1/1 online",
    ):
        assert step in out, out
    assert out.count(" ... ok (") >= 4, out
    facts = json.loads((folder / "devnet.json").read_text())
    gateway = facts["gatewayUrl"]
    for shown in (
        f"{gateway}/docs",
        f"dashboard    {gateway}/",
        f"{facts['rpcUrl']}   (chain id {facts['chainId']})",
        str(folder / "devnet.json"),
        facts["demoOwnerKey"],
        "for this devnet only",
        facts["keepers"]["keeper-1"],
        f"{folder}/<node>/node.log",
        "from triggerx import Client, Job",
        "triggerx-node jobs create interval --devnet",
        f"triggerx-node devnet stop --dir {folder}",
    ):
        assert shown in out, (shown, out)
    assert httpx.get(f"{gateway}/api/health").status_code == 200  # up after the command returned
    run = json.loads((folder / "run.json").read_text())
    pids = [run["supervisor"]["pid"], *(p["pid"] for p in run["processes"])]
    assert [p["name"] for p in run["processes"]] == ["anvil", "aggregator", "gateway", "keeper-1"]
    try:
        second = devnet("--instant", "--keepers", "1", "--dir", folder, "--force")
        assert_one_line_error(second, "still running", f"triggerx-node devnet stop --dir {folder}")
        assert all(running(pid) for pid in pids)
        assert (folder / "devnet.json").read_text() == json.dumps(facts, indent=2) + "\n"

        status = devnet("status", "--dir", folder)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"devnet in {folder}: running (supervisor pid {pids[0]}, detached")
        for process in run["processes"]:
            assert f"{process['name']} " in status.stdout
            assert f"pid {process['pid']} " in status.stdout
        assert status.stdout.count("  alive") == 4
        assert " gone" not in status.stdout
        assert "health:    ok, 1 keeper online" in status.stdout, status.stdout
        assert gateway in status.stdout
    finally:
        stopped = devnet("stop", "--dir", folder)
    assert stopped.returncode == 0, stopped.stderr
    assert not [pid for pid in pids if running(pid)]
    assert not port_open(gateway)
    assert not port_open(facts["rpcUrl"])
    reported = {line.split()[1]: line for line in stopped.stdout.splitlines() if line.startswith("stopped ")}
    assert sorted(reported) == sorted(p["name"] for p in run["processes"]), stopped.stdout
    assert all(line.endswith("exit 0") for line in reported.values()), stopped.stdout
    assert f"the logs stay in {folder}" in stopped.stdout
    assert (folder / "keeper-1" / "node.log").stat().st_size > 0

    again, nothing = devnets(("status", "--dir", folder), ("stop", "--dir", folder))
    assert again.returncode == 1
    assert again.stdout.startswith(f"no devnet runs in {folder} (the last run stopped ")
    assert (nothing.returncode, nothing.stdout) == (1, f"no devnet runs in {folder}; nothing to stop\n")


def test_an_interrupted_start_stops_what_it_started_and_only_force_reuses_its_folder(tmp_path):
    folder = tmp_path / "devnet"
    first = start_in_foreground(folder)
    read_until(first, "anvil on :")
    out, err, code = interrupt(first)
    assert code == 1
    assert "interrupted before it was ready" in err, (out, err)
    assert "stopped anvil" in out, out
    assert f"the logs stay in {folder}" in out

    refused = devnet("--instant", "--keepers", "1", "--dir", folder)
    assert_one_line_error(refused, "holds an earlier devnet run", "--force")
    assert (folder / "run.json").exists()

    (folder / "left-over").write_text("from the run before")
    second = start_in_foreground(folder, "--force")
    progress = read_until(second, "devnet ready")
    assert progress[0] == f"folder {folder}: wiped what it held (--force)\n"
    assert progress[-2].startswith("keeper 1/1 online")
    assert not (folder / "left-over").exists()
    facts = json.loads((folder / "devnet.json").read_text())
    assert httpx.get(f"{facts['gatewayUrl']}/api/health").status_code == 200
    out, err, code = interrupt(second)
    assert code == 0, err
    [keeper] = [line for line in out.splitlines() if line.startswith("stopped keeper-1")]
    assert keeper.endswith("exit 0")
    assert f"pid {facts['processes']['keeper-1']}" in keeper
    assert out.rstrip().endswith(f"the logs stay in {folder}: <node>/node.log")


def test_a_folder_that_is_no_devnets_is_refused_and_kept(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me too")
    refused, refused_file, status, stop, misplaced = (
        in_process(capsys, "devnet", *map(str, arguments))
        for arguments in (
            ("--dir", folder),
            ("--dir", a_file),
            ("status", "--dir", tmp_path / "none"),
            ("stop", "--dir", tmp_path / "none"),
            ("stop", "--keepers", "2", "--dir", folder),
        )
    )
    assert_one_line_error(refused, "not a devnet's folder", "'notes.txt'", "--force")
    assert (folder / "notes.txt").read_text() == "keep me"
    assert_one_line_error(refused_file, "is a file, not a folder")
    assert a_file.read_text() == "keep me too"
    assert (status.returncode, status.stdout) == (
        1,
        f"no devnet in {tmp_path / 'none'} (no run record there)\n",
    )
    assert (stop.returncode, stop.stdout) == (1, f"no devnet runs in {tmp_path / 'none'}; nothing to stop\n")
    assert not (tmp_path / "none").exists()
    assert misplaced.returncode == 2
    assert misplaced.stderr == "triggerx-node: error: devnet stop: --keepers only go with a start\n"
