"""The gateway under load: req/s and latency of its hot HTTP routes (wrk), WebSocket fan-out latency.

    .venv/bin/python bench/gateway.py [--seconds 12] [--connections 50] [--subscribers 1000]

Starts a devnet (separate processes, anvil `--instant`, 3 keepers), issues an API key with a
limit of 1,000,000 requests a minute (every request carries it: the keyed path's cost is
measured, not the limiter's refusals), creates 3 jobs firing every second for 10 s and waits
until their tasks are done. Then wrk (Debian's `wrk`: installed with apt-get when missing and
run as root) drives each route for `--seconds` at `--connections` connections on 2 threads,
with `--latency`:
- GET /api/jobs/id/{id} and GET /api/tasks/job/{id} (a job with ~10 tasks: one page);
- POST /api/jobs: every request a new job, signed before the clock starts (wrk cycles through
  a file of bodies with a Lua script, which also counts the answers' statuses). The gateway
  takes at most 100 active jobs per owner, so the bodies are spread over `--post-jobs / 100`
  fresh owners, each funded and with a deposit in the hub; each job fires once, a day ahead,
  so none runs during the benchmark. When the bodies run out wrk starts them over: those
  answers are 409s, shown as such.
Last, `--subscribers` WebSocket clients (one trio process) subscribe to one job's room on
/ws/tasks (the devnet's gateway is started with TRIGGERX_GATEWAY_WEBSOCKETS_PER_ADDRESS
raised above them: they all come from 127.0.0.1), and the job fires every second `--tasks`
times. For each TASK_CREATED frame, latency = arrival at the subscriber minus the task's
`createdAt` (the gateway's clock: the same machine); for every task event, arrival minus the
task's `updatedAt`. The receiving side is one Python process: its own time to read 1,000
frames is part of the figure (the last subscriber served waits for the other 999).
Prints figures only: a target missed is shown, never an error (exit 1 only if the run fails).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount

# Run as a script, sys.path[0] is bench/, where this file's name would hide the gateway package:
# the repository goes first (and the other benches are imported from the bench namespace).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.e2e import on_devnet, percentile
from bench.ws_fanout import FanOut, fan_out
from node.chain import Contract, RpcClient, TransactionSender, load_artifact
from node.devnet import devnet_demo_job
from node.devnet.run import demo_job

ETH = 10**18
JOBS_PER_OWNER = 100  # gateway.intake.MAX_ACTIVE_JOBS_PER_OWNER
TASK_JOBS = 3  # jobs firing every second for TASK_SECONDS, for tasks to read
TASK_SECONDS = 10
GET_TARGET = (1500.0, 60.0)  # req/s at least, p99 (ms) at most: issue 12, on a 2-core machine
TERMINAL = ("completed", "failed")

# wrk's Lua: each thread sends its share of the bodies (one JSON document a line), in turn,
# starting over when they run out, and counts the statuses of the answers; done() sums them.
POST_LUA = """
local threads = {}
local count = 0
function setup(thread)
  thread:set("id", count)
  table.insert(threads, thread)
  count = count + 1
end
function init(args)
  local n, i = tonumber(args[1]), 0
  bodies, next_body, statuses = {}, 1, {}
  for line in io.lines(args[2]) do
    if i % n == id then table.insert(bodies, line) end
    i = i + 1
  end
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/api/jobs", nil, body)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do totals[status] = (totals[status] or 0) + n end
  end
  for status, n in pairs(totals) do io.write(string.format("status %d %d\\n", status, n)) end
end
"""


@dataclass
class WrkRun:
    """What wrk measured for one route."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int  # non-2xx or 3xx answers
    socket_errors: int
    statuses: dict[int, int]  # from the Lua script, when it counts them
    cpu_ms: float = 0.0  # the gateway process's CPU time (all its threads), per request
    cpu_share: float = 0.0  # its CPU time over the run's wall time (1.0: one core, all the time)


@dataclass
class Figures:
    """Everything the benchmark measured."""

    job_tasks: int
    post_owners: int
    post_bodies: int
    load: float  # the machine's 1-minute load average before the HTTP runs
    gets: list[WrkRun]  # GET /api/jobs/id/{id}, GET /api/tasks/job/{id}
    post: WrkRun
    fan: FanOut


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> WrkRun:
    """wrk's figures from its `--latency` report (and the Lua script's `status` lines)."""

    def find(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            if default is None:
                raise RuntimeError(f"wrk's report has no {pattern!r}:\n{output}")
            return default
        return match.group(1)

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkRun(
        requests_per_s=float(find(r"^Requests/sec:\s+([0-9.]+)")),
        p50_ms=_ms(find(r"^\s+50%\s+(\S+)")),
        p99_ms=_ms(find(r"^\s+99%\s+(\S+)")),
        requests=int(find(r"^\s+(\d+) requests in")),
        non_2xx=int(find(r"Non-2xx or 3xx responses: (\d+)", "0")),
        socket_errors=sum(map(int, errors.groups())) if errors else 0,
        statuses={int(s): int(n) for s, n in re.findall(r"^status (\d+) (\d+)$", output, re.MULTILINE)},
    )


def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get first if it is missing and we may."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("bench/gateway.py needs wrk: sudo apt-get install -y wrk")
    print("wrk is missing: apt-get install -y wrk", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True)
    return shutil.which("wrk") or sys.exit("apt-get installed wrk, but it is not on PATH")


def cpu_seconds(pid: int) -> float:
    """The CPU time process `pid` has used so far (user and system, all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@dataclass(frozen=True)
class Load:
    """How wrk runs: its binary and settings, the API key, and the gateway process it loads."""

    wrk: str
    threads: int
    connections: int
    seconds: int
    key: str
    gateway_pid: int


async def run_wrk(load: Load, url: str, *script: str) -> WrkRun:
    """Run wrk against `url` with the API key (and a Lua `script` with its arguments); with the
    gateway's CPU time, which tells its own cost apart from a machine busy with other work."""
    command = [load.wrk, f"-t{load.threads}", f"-c{load.connections}", f"-d{load.seconds}s", "--latency"]
    command += ["--timeout", "10s", "-H", f"X-Api-Key: {load.key}"]
    command += ["-s", script[0], url, "--", *script[1:]] if script else [url]
    cpu_before, began = cpu_seconds(load.gateway_pid), time.monotonic()
    done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False)
    cpu, wall = cpu_seconds(load.gateway_pid) - cpu_before, time.monotonic() - began
    output = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr.decode(errors='replace')}")
    run = parse_wrk(output)
    run.cpu_ms, run.cpu_share = cpu * 1000 / max(run.requests, 1), cpu / wall
    return run


async def fund_owners(facts: dict, count: int) -> list[LocalAccount]:
    """`count` fresh job owners, each with gas money and a 1 ETH deposit in the hub."""
    owners = [Account.create() for _ in range(count)]
    async with RpcClient(facts["rpcUrl"]) as rpc:
        hub = Contract(rpc, load_artifact("TaskExecutionHub"), facts["contracts"]["taskExecutionHub"])

        async def fund(owner: LocalAccount) -> None:
            await rpc.call("anvil_setBalance", owner.address, hex(2 * ETH))  # anvil's own cheat
            await hub.transact(TransactionSender(rpc, owner, facts["chainId"]), "deposit", value=ETH)

        async with trio.open_nursery() as nursery:
            for owner in owners:
                nursery.start_soon(fund, owner)
    return owners


def signed_bodies(facts: dict, owners: list[LocalAccount]) -> list[str]:
    """JOBS_PER_OWNER new signed jobs per owner, owners taking turns; each fires once, in a day."""
    hub, counter = facts["contracts"]["taskExecutionHub"], facts["demoCounter"]
    trigger = ("specific", {"times": [int(time.time()) + 86_400]})
    bodies = []
    for _ in range(JOBS_PER_OWNER):
        for owner in owners:
            body = demo_job(owner, counter, facts["chainId"], hub, trigger=trigger)
            bodies.append(json.dumps(body, separators=(",", ":")))
    return bodies


async def settled(http: httpx.AsyncClient, job_ids: list[int], timeout: float) -> int:
    """Wait until every task of `job_ids` is completed or failed; the first job's task count."""
    with trio.fail_after(timeout):
        while True:
            pages = [(await http.get(f"/api/tasks/job/{job}")).json()["tasks"] for job in job_ids]
            if all(page and all(t["status"] in TERMINAL for t in page) for page in pages):
                return len(pages[0])
            await trio.sleep(0.5)


async def measure(facts: dict, args: argparse.Namespace, wrk: str, folder: Path) -> Figures:
    """Set the devnet up, then run each measurement in turn."""
    url = facts["gatewayUrl"]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        admin = {"Authorization": f"Bearer {facts['adminToken']}"}
        issued = await http.post(
            "/api/admin/api-keys", json={"owner": "bench", "requestsPerMinute": 1_000_000}, headers=admin
        )
        issued.raise_for_status()
        load = Load(
            wrk,
            args.threads,
            args.connections,
            args.seconds,
            issued.json()["apiKey"],
            facts["processes"]["gateway"],
        )
        end = int(time.time()) + TASK_SECONDS
        job_ids = []
        for _ in range(TASK_JOBS):
            created = await http.post("/api/jobs", json=devnet_demo_job(facts, every_seconds=1, end=end))
            created.raise_for_status()
            job_ids.append(created.json()["job"]["id"])
        owners = await fund_owners(facts, -(-args.post_jobs // JOBS_PER_OWNER))
        bodies = await trio.to_thread.run_sync(signed_bodies, facts, owners)
        (folder / "bodies.jsonl").write_text("\n".join(bodies) + "\n")
        (folder / "post.lua").write_text(POST_LUA)
        job_tasks = await settled(http, job_ids, timeout=TASK_SECONDS + 120)
        load_average = os.getloadavg()[0]
        gets = [
            await run_wrk(load, url + route)
            for route in (f"/api/jobs/id/{job_ids[0]}", f"/api/tasks/job/{job_ids[0]}")
        ]
        post = await run_wrk(
            load, url, str(folder / "post.lua"), str(args.threads), str(folder / "bodies.jsonl")
        )
        fan = await fan_out(facts, http, args.subscribers, args.tasks, lambda: cpu_seconds(load.gateway_pid))
    return Figures(job_tasks, len(owners), len(bodies), load_average, gets, post, fan)


def report(figures: Figures, args: argparse.Namespace) -> None:
    """Print the figures, with the targets beside them."""
    rate, p99 = GET_TARGET
    print(
        f"gateway under load: {os.cpu_count()} cores, a devnet ({args.keepers} keepers, anvil --instant); "
        f"wrk {args.connections} connections, {args.threads} threads, {args.seconds} s per route, "
        "with an API key"
    )
    print(
        f"machine load average before the HTTP runs (1 min): {figures.load:.2f}; gw CPU: the gateway "
        "process's CPU time per request, and over the run (100 %: one core all the time)"
    )
    print(
        f"{'':34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'errors':>8}"
        f"{'gw CPU ms/req':>15}{'gw CPU':>8}   target"
    )
    names = ["GET /api/jobs/id/{id}", f"GET /api/tasks/job/{{id}} ({figures.job_tasks} tasks)"]
    for name, run in zip(names, figures.gets, strict=True):
        met = run.requests_per_s >= rate and run.p99_ms <= p99
        target = f"≥ {rate:,.0f} req/s, p99 ≤ {p99:.0f} ms: {'met' if met else 'missed'}"
        _row(name, run, run.non_2xx + run.socket_errors, target)
    post = figures.post
    _row("POST /api/jobs (a new job each)", post, post.socket_errors, "none set")
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(post.statuses.items()))
    print(
        f"{'':34}answers by status: {statuses} "
        f"({figures.post_bodies} bodies signed, by {figures.post_owners} owners)"
    )
    if post.statuses.get(409) and post.statuses.get(201, 0) >= figures.post_bodies:
        print(f"{'':34}the bodies ran out (409s are repeats): raise --post-jobs")
    fan = figures.fan
    print(
        f"WebSocket fan-out: {fan.subscribers} subscribers of one job room (subscribed in "
        f"{fan.subscribe_seconds:.1f} s), {fan.tasks} tasks a second apart; {fan.frames} task frames "
        f"received, {fan.dropped} subscribers dropped; CPU from the first fire: gateway "
        f"{fan.gateway_cpu:.0%}, receiving process {fan.receiver_cpu:.0%}"
    )
    print(f"{'':34}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'samples':>10}   target")
    for name, samples in (
        ("TASK_CREATED, from createdAt", fan.created),
        ("  first subscriber of each task", fan.first),
        ("every task event, from updatedAt", fan.events),
    ):
        if not samples:
            print(f"{name:34}{'none':>9}")
            continue
        figures_ms = [percentile(samples, 0.5), percentile(samples, 0.99), max(samples)]
        print(
            f"{name:34}" + "".join(f"{v * 1000:>9.1f}" for v in figures_ms) + f"{len(samples):>10}   none set"
        )


def _row(name: str, run: WrkRun, errors: int, target: str) -> None:
    print(
        f"{name:34}{run.requests_per_s:>9,.0f}{run.p50_ms:>9.1f}{run.p99_ms:>9.1f}"
        f"{run.requests:>10}{errors:>8}{run.cpu_ms:>15.2f}{run.cpu_share:>8.0%}   {target}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=12, help="wrk's run per route (default 12)")
    parser.add_argument("--connections", type=int, default=50, help="wrk's connections (default 50)")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads (default 2)")
    parser.add_argument(
        "--post-jobs", type=int, default=3000, help="signed job bodies for POST /api/jobs (default 3000)"
    )
    parser.add_argument("--subscribers", type=int, default=1000, help="WebSocket subscribers (default 1000)")
    parser.add_argument("--tasks", type=int, default=10, help="tasks of the fan-out job (default 10)")
    parser.add_argument("--keepers", type=int, default=3, help="keepers in the devnet (default 3)")
    parser.add_argument("--logs", type=Path, help="copy the nodes' logs to this folder at the end")
    args = parser.parse_args()
    wrk = ensure_wrk()
    # The gateway, started by the devnet, inherits both: file descriptors for 1,000 sockets, and
    # a per-address WebSocket cap above the subscribers (all of them connect from 127.0.0.1).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.environ["TRIGGERX_GATEWAY_WEBSOCKETS_PER_ADDRESS"] = str(args.subscribers + 16)
    with tempfile.TemporaryDirectory() as folder:
        figures = on_devnet(args.keepers, measure, args, wrk, Path(folder), logs=args.logs)
    report(figures, args)


if __name__ == "__main__":
    main()
