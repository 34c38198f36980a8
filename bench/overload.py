"""Throughput under load on a devnet with instant mining: offered, executed and attested tasks/s.

    .venv/bin/python bench/overload.py --rate 10 [--seconds 60] [--keepers 3]

Starts a devnet (separate processes, `--instant`), creates `rate` jobs that each fire every
second for `seconds`, then removes the load (the jobs end) and waits up to 180 s more. Prints,
per 10-second window, the tasks executed and attested on chain per second (the hub's
TaskExecuted and the AttestationCenter's TaskSubmitted logs), and at the end how many tasks
executed on chain were never attested. Run it at rising rates to find the knee: the highest
rate at which attestation keeps up.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for e2e.LogWatcher

from e2e import LogWatcher, on_devnet

from node.chain import RpcClient
from node.devnet import devnet_demo_job

WINDOW_S = 10
SETTLE_S = 180


async def run(facts: dict, rate: int, seconds: int) -> tuple[dict[str, dict[int, float]], float, int]:
    """The logs seen (task id → when), the load's start, and the tasks the gateway created."""
    async with RpcClient(facts["rpcUrl"]) as rpc, httpx.AsyncClient(base_url=facts["gatewayUrl"]) as http:
        watcher = LogWatcher(facts, rpc, int(await rpc.call("eth_blockNumber"), 16))
        end = int(time.time()) + 5 + seconds
        jobs = []
        for _ in range(rate):
            body = devnet_demo_job(facts, every_seconds=1, end=end)
            jobs.append((await http.post("/api/jobs", json=body)).json()["job"]["id"])
        started = time.time()
        with trio.move_on_after(end - time.time() + SETTLE_S):
            while True:
                await watcher.poll()
                executed, attested = watcher.seen["TaskExecuted"], watcher.seen["TaskSubmitted"]
                if time.time() > end + 5 and set(executed) <= set(attested):
                    break
                await trio.sleep(0.05)
        created = 0
        for job in jobs:
            created += len((await http.get(f"/api/tasks/job/{job}", params={"limit": 500})).json()["tasks"])
    return watcher.seen, started, created


def per_second(times: dict[int, float], start: float) -> float:
    """How many of `times` fall in the window from `start`, per second."""
    return sum(start <= t < start + WINDOW_S for t in times.values()) / WINDOW_S


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, required=True, help="tasks offered per second (jobs at 1/s)")
    parser.add_argument("--seconds", type=int, default=60, help="how long the load lasts (default 60)")
    parser.add_argument("--keepers", type=int, default=3, help="keepers in the devnet (default 3)")
    parser.add_argument("--logs", type=Path, help="copy the nodes' logs to this folder at the end")
    args = parser.parse_args()
    seen, started, created = on_devnet(args.keepers, run, args.rate, args.seconds, logs=args.logs)
    executed, attested = seen["TaskExecuted"], seen["TaskSubmitted"]
    print(f"load on a devnet: {args.keepers} keepers, 1 aggregator, 1 gateway, anvil --instant")
    print(f"offered {args.rate} tasks/s for {args.seconds} s; the gateway created {created} tasks")
    print(f"{'window (s)':>12}{'executed/s':>12}{'attested/s':>12}")
    last = max([*executed.values(), *attested.values(), started])
    for start in range(0, int(last - started) + 1, WINDOW_S):
        rates = [per_second(times, started + start) for times in (executed, attested)]
        print(f"{f'{start}-{start + WINDOW_S}':>12}{rates[0]:>12.1f}{rates[1]:>12.1f}")
    print(f"executed {len(executed)}, attested {len(attested)}, executed but never attested "
          f"{len(set(executed) - set(attested))}")  # fmt: skip


if __name__ == "__main__":
    main()
