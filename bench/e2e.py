"""End-to-end latency on a devnet with instant mining: trigger → target tx mined → attested on chain.

    .venv/bin/python bench/e2e.py [--tasks 60] [--keepers 3]

Starts a devnet (separate processes, `--instant`), creates 5 jobs firing every second, and
polls the hub's TaskExecuted and the AttestationCenter's TaskSubmitted logs every 10 ms. For each
task: trigger = its scheduled fire time (what the owner asked for, not when the gateway got
to it); mined = when the TaskExecuted log is first seen; attested = when TaskSubmitted is (one
machine, one clock; 10 ms resolution). It measures twice, each time on a fresh devnet: with
no dispatch lead, and with the gateway's default lead (tasks dispatched ahead of their fire
time, transactions sent at it: docs/protocol.md, "Lead time").
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trio

from node.chain import RpcClient, load_artifact
from node.config import SETTINGS
from node.devnet import Devnet, devnet_demo_job

JOBS = 5
LEAD_MS = next(s.default for s in SETTINGS if (s.section, s.key) == ("gateway", "dispatch_lead_ms"))
T = TypeVar("T")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class LogWatcher:
    """When each task's TaskExecuted (hub) and TaskSubmitted (center) logs were first seen."""

    def __init__(self, facts: dict, rpc: RpcClient, from_block: int) -> None:
        contracts = facts["contracts"]
        self.rpc = rpc
        self.abis = {
            contracts["taskExecutionHub"].lower(): load_artifact("TaskExecutionHub").abi,
            contracts["attestationCenter"].lower(): load_artifact("AttestationCenter").abi,
        }
        self.seen: dict[str, dict[int, float]] = {"TaskExecuted": {}, "TaskSubmitted": {}}
        self.next_block = from_block

    async def poll(self) -> None:
        """Read the blocks mined since the last poll."""
        head = int(await self.rpc.call("eth_blockNumber"), 16)
        if head < self.next_block:
            return
        window = {"address": list(self.abis), "fromBlock": hex(self.next_block), "toBlock": hex(head)}
        for log in await self.rpc.call("eth_getLogs", window):
            event = self.abis[log["address"].lower()].decode_log(log)
            if event is not None and event.name in self.seen:
                self.seen[event.name].setdefault(event.args["taskId"], time.time())
        self.next_block = head + 1


async def measure(facts: dict, tasks: int) -> tuple[list[float], list[float]]:
    async with RpcClient(facts["rpcUrl"]) as rpc, httpx.AsyncClient(base_url=facts["gatewayUrl"]) as http:
        watcher = LogWatcher(facts, rpc, int(await rpc.call("eth_blockNumber"), 16))
        jobs = []
        for _ in range(JOBS):
            body = devnet_demo_job(facts, every_seconds=1)
            jobs.append((await http.post("/api/jobs", json=body)).json()["job"]["id"])
        with trio.fail_after(300):
            while len(watcher.seen["TaskSubmitted"]) < tasks:
                await watcher.poll()
                await trio.sleep(0.01)
        fired: dict[int, float] = {}
        for job in jobs:
            page = (await http.get(f"/api/tasks/job/{job}", params={"limit": 500})).json()["tasks"]
            fired.update({t["id"]: t["fireAt"] for t in page})
    seen = watcher.seen
    done = [t for t in seen["TaskSubmitted"] if t in seen["TaskExecuted"] and t in fired]
    mined = [seen["TaskExecuted"][t] - fired[t] for t in done]
    attested = [seen["TaskSubmitted"][t] - fired[t] for t in done]
    return mined, attested


def on_devnet(
    keepers: int, measurement: Callable[..., Awaitable[T]], *args: Any, logs: Path | None = None
) -> T:
    """Start a devnet (separate processes, anvil --instant), run `measurement(facts, *args)`
    under trio, and stop the devnet; with `logs`, copy each node's log there first."""
    with tempfile.TemporaryDirectory() as folder:
        devnet = Devnet(Path(folder) / "devnet", keepers, instant=True, http_port=None, anvil_port=None)
        try:
            return trio.run(measurement, devnet.start(), *args)
        finally:
            devnet.stop()
            if logs is not None:
                logs.mkdir(parents=True, exist_ok=True)
                for log in (Path(folder) / "devnet").glob("*/node.log"):
                    shutil.copy(log, logs / f"{log.parent.name}.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=60, help="tasks to measure (default 60)")
    parser.add_argument("--keepers", type=int, default=3, help="keepers in the devnet (default 3)")
    parser.add_argument("--logs", type=Path, help="copy the nodes' logs to this folder at the end")
    args = parser.parse_args()
    print(f"end to end on a devnet: {args.keepers} keepers, 1 aggregator, 1 gateway, anvil --instant;")
    print(f"{args.tasks} tasks from {JOBS} jobs firing every second, on one devnet per lead time")
    print(f"{'':44}{'p50 (ms)':>10}{'p99 (ms)':>10}")
    ms = lambda seconds: f"{seconds * 1000:.0f}"  # noqa: E731
    for lead_ms in (0, LEAD_MS):
        os.environ["TRIGGERX_GATEWAY_DISPATCH_LEAD_MS"] = str(lead_ms)  # the gateway's [gateway] setting
        logs = None if args.logs is None else args.logs / f"lead-{lead_ms}"
        mined, attested = on_devnet(args.keepers, measure, args.tasks, logs=logs)
        for name, samples in (
            ("trigger → target tx mined", mined),
            ("trigger → attested on chain", attested),
        ):
            label = f"{name}, lead {lead_ms} ms"
            print(f"{label:44}{ms(statistics.median(samples)):>10}{ms(percentile(samples, 0.99)):>10}")


if __name__ == "__main__":
    main()
