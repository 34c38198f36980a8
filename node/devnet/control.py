"""The `devnet` command's actions: start (in the foreground, or `--detach`ed: a supervisor process
keeps the devnet once it is ready), `status` and `stop`, on the run a folder's run.json records."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec

from node.devnet.record import FACTS_FILE, SUPERVISOR_LOG, ProcessRecord, RunRecord, read_record, stop_hint
from node.devnet.report import keepers_text, stop_report
from node.devnet.run import run_devnet

DEFAULT_KEEPERS = 3
DEFAULT_CHAINS = 1
SUPERVISOR_STOP_TIMEOUT = 60.0  # its nodes get 10 s each to stop, then anvil 5 s
LEFTOVER_STOP_TIMEOUT = 10.0
# What only a start takes: status and stop refuse them rather than ignore them.
START_OPTIONS = ("keepers", "chains", "instant", "http_port", "anvil_port", "force", "detach")


class _Facts(msgspec.Struct, rename="camel"):
    """What `status` reads of devnet.json."""

    gateway_url: str
    rpc_url: str
    chain_id: int


def devnet_usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the `devnet` command's options, in one line; None when nothing is."""
    if args.action != "start":
        given = [
            f"--{name.replace('_', '-')}"
            for name in START_OPTIONS
            if getattr(args, name) not in (None, False)
        ]
        return f"devnet {args.action}: {', '.join(given)} only go with a start" if given else None
    if args.keepers is not None and args.keepers < 1:
        return "--keepers: at least 1"
    if args.chains is not None and not 1 <= args.chains <= 8:
        return "--chains: from 1 to 8"
    return None


def run_devnet_command(args: argparse.Namespace) -> int:
    """Carry out `triggerx-node devnet [start|status|stop]` (options already checked by
    devnet_usage_error); the exit code."""
    args.dir = args.dir.absolute()  # the nodes' configs name their files from their own folders
    if args.action == "status":
        return devnet_status(args.dir)
    if args.action == "stop":
        return stop_devnet(args.dir)
    keepers = DEFAULT_KEEPERS if args.keepers is None else args.keepers
    chains = DEFAULT_CHAINS if args.chains is None else args.chains
    if args.detach:
        return start_detached(_supervisor_command(args, keepers, chains), args.dir)
    return run_devnet(
        args.dir,
        keepers,
        args.instant,
        args.http_port,
        args.anvil_port,
        chains,
        force=args.force,
        detached=args.supervise,
    )


def _supervisor_command(args: argparse.Namespace, keepers: int, chains: int) -> list[str]:
    """This start, as the command line of the supervisor that runs it (`--supervise`: it
    writes to its log once it is ready)."""
    command = [str(Path(sys.executable).with_name("triggerx-node")), "devnet", "--supervise"]
    command += ["--dir", str(args.dir), "--keepers", str(keepers), "--chains", str(chains)]
    for flag, value in (("--http-port", args.http_port), ("--anvil-port", args.anvil_port)):
        if value is not None:
            command += [flag, str(value)]
    return command + [flag for flag, on in (("--instant", args.instant), ("--force", args.force)) if on]


def start_detached(command: list[str], root: Path) -> int:
    """Start the supervisor `command` in a session of its own, pass on what it says until it is
    ready (it then closes its output: the pipe ends), and return leaving it running; its exit code
    if it stopped instead. Ctrl-C meanwhile stops it."""
    supervisor = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True
    )
    assert supervisor.stdout is not None
    output = supervisor.stdout.fileno()
    interrupted = False
    while True:
        try:
            chunk = os.read(output, 4096)
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: the stop is already asked
            supervisor.send_signal(signal.SIGTERM)
            interrupted = True
            continue
        if not chunk:
            break
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    supervisor.stdout.close()
    record = read_record(root)
    if not interrupted and record is not None and record.supervisor.pid == supervisor.pid and record.ready:
        print(f"detached: the supervisor (pid {supervisor.pid}) keeps it running", flush=True)
        return 0
    code = supervisor.wait()
    return 130 if interrupted else code or 1


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _facts(root: Path) -> _Facts | None:
    try:
        return msgspec.json.decode((root / FACTS_FILE).read_bytes(), type=_Facts)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _health(gateway_url: str) -> str:
    """The gateway's /api/health in one line."""
    from gateway.service_health import HealthAnswer

    try:
        response = httpx.get(f"{gateway_url}/api/health", timeout=3)
        health = msgspec.json.decode(response.content, type=HealthAnswer)
    except (httpx.HTTPError, msgspec.DecodeError, msgspec.ValidationError) as error:
        return f"no answer from {gateway_url}/api/health ({type(error).__name__}: {error})"
    failing = [f"{name}: {s.detail or 'failing'}" for name, s in health.services.items() if not s.ok]
    if not health.chain.ok:
        failing.append(f"chain: {health.chain.detail or 'failing'}")
    state = "ok" if health.ok else "NOT ok (" + "; ".join(failing) + ")"
    return (
        f"{state}, {keepers_text(health.keepers_online)} online, chain {health.chain.chain_id} at block "
        f"{health.chain.head}, gateway up {_duration(health.uptime_seconds)}"
    )


def _process_lines(processes: list[ProcessRecord]) -> list[str]:
    width = max((len(p.name) for p in processes), default=0)
    return [f"  {p.name:<{width}}  pid {p.pid:<7}  {'alive' if p.alive() else 'gone'}" for p in processes]


def devnet_status(root: Path) -> int:
    """Print whether a devnet runs in `root`, each of its processes, the gateway's health and
    its URLs; 0 when it runs, 1 when not."""
    record = read_record(root)
    if record is None:
        print(f"no devnet in {root} (no run record there)")
        return 1
    if not record.supervisor.alive():
        return _not_running(root, record)
    how = "detached" if record.detached else "in a terminal"
    state = "running" if record.ready else "starting"
    print(f"devnet in {root}: {state} (supervisor pid {record.supervisor.pid}, {how}, "
          f"up {_duration(time.time() - record.started_at)})")  # fmt: skip
    print("\n".join(_process_lines(record.processes)))
    facts = _facts(root)
    if facts is not None:
        print(f"health:    {_health(facts.gateway_url)}")
        url = facts.gateway_url
        print(f"gateway:   {url}   (API docs {url}/docs, dashboard {url}/)")
        print(f"chain:     {facts.rpc_url}   (chain id {facts.chain_id})")
        print(f"contracts: {root / FACTS_FILE}")
    logs = f"{root}/<node>/node.log" + (
        f", the supervisor's {root / SUPERVISOR_LOG}" if record.detached else ""
    )
    print(f"logs:      {logs}")
    return 0


def _not_running(root: Path, record: RunRecord) -> int:
    """Status of a run whose supervisor is gone: stopped, or left processes behind."""
    if leftovers := [p for p in record.processes if p.alive()]:
        print(f"devnet in {root}: its supervisor is gone but {len(leftovers)} of its processes still run "
              f"(`{stop_hint(root)}` stops them)")  # fmt: skip
        print("\n".join(_process_lines(record.processes)))
        return 1
    when = record.stopped_at
    ago = (
        f"stopped {_duration(time.time() - when)} ago" if when else "it ended without stopping its processes"
    )
    print(f"no devnet runs in {root} (the last run {ago})")
    return 1


def _wait_gone(processes: list[ProcessRecord], timeout: float) -> list[ProcessRecord]:
    """Wait up to `timeout` seconds for the processes to end; those still alive."""
    deadline = time.monotonic() + timeout
    while (alive := [p for p in processes if p.alive()]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def _signal(processes: list[ProcessRecord], signum: signal.Signals) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(process.pid, signum)


def stop_devnet(root: Path) -> int:
    """Stop the devnet in `root`: SIGTERM to its supervisor, which stops its nodes and anvil and
    records their exits; what it left (or what runs without a supervisor) gets SIGTERM, then
    SIGKILL. Print what stopped and where the logs stay; 0 when something was stopped, 1 when
    nothing ran there."""
    record = read_record(root)
    if record is None or not record.alive():
        print(f"no devnet runs in {root}; nothing to stop")
        return 1
    print(f"stopping the devnet in {root} (supervisor pid {record.supervisor.pid}) ...", flush=True)
    if record.supervisor.alive():
        _signal([record.supervisor], signal.SIGTERM)
        if _wait_gone([record.supervisor], SUPERVISOR_STOP_TIMEOUT):
            _signal([record.supervisor], signal.SIGKILL)
        record = read_record(root) or record  # with the exits it recorded
    if leftovers := [p for p in record.processes if p.alive()]:
        _signal(leftovers, signal.SIGTERM)
        _signal(_wait_gone(leftovers, LEFTOVER_STOP_TIMEOUT), signal.SIGKILL)
        for process in leftovers:
            process.exit = None  # not this command's child: its exit status is not known here
    if still := _wait_gone(record.processes, LEFTOVER_STOP_TIMEOUT):
        print(
            f"triggerx-node: error: devnet: could not stop {', '.join(p.name for p in still)}",
            file=sys.stderr,
        )
        return 1
    print(stop_report(record.processes, root, record.detached))
    return 0
