"""Event and condition triggers at scale, on anvil with 1 s blocks: ours vs one poll per job.

    .venv/bin/python bench/conditions.py [--events 10000] [--contracts 1000] [--conditions 1000]
                                         [--seconds 60] [--naive-seconds 30] [--rate 20]

One anvil mining a block every second holds `--contracts` ERC-20 tokens (TestToken's code,
placed with anvil_setCode). The jobs, all with 2 confirmations:
- `--events` event jobs, spread evenly over the tokens, each on transfers to its own receiver;
- `--conditions` condition jobs `held = erc20 <token> <holder>`, `held >= 1`, each on its own
  holder (one ERC-20 balance: two calls, balanceOf and decimals).
Each engine runs in a fresh process, one after the other, against the same chain, while this
process mints each second `--rate` transfers to random event jobs' receivers and `--rate / 2`
to condition jobs' holders (each holder once, so each such mint is one rising edge):
- ours: the gateway's EventTriggers and ConditionTriggers (woken by newHeads, polling every
  second at the latest), writing each task to LevelDB through the TaskLedger;
- naive: what the reference backend does, each job polled on its own every second: one
  eth_getLogs per event job and one eth_call per condition job, 64 requests in flight.
Printed per engine: HTTP requests per block (JSON-RPC batches count once; ours also holds one
WebSocket subscription) in all and, for ours, those of the event jobs; its CPU %; fires made
against fires expected; and trigger → task latency p50/p99: from the moment the block that
confirms a transfer (its block + 2) appeared to the moment the engine recorded its task.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from eth_utils import keccak, to_checksum_address

CHAIN = 31337
CONFIRMATIONS = 2
TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
GRACE_S = 6  # the engines run this long after the last mint: its fire is counted too
ENGINES = ("ours", "naive")


def token(k: int) -> str:
    return to_checksum_address(f"0x{0x7000_0000 + k:040x}")


def receiver(i: int) -> str:
    return to_checksum_address(f"0x{0xE000_0000 + i:040x}")


class Layout:
    """Which token each job watches, and (per engine: its run starts with none held) the holders."""

    def __init__(self, events: int, contracts: int, conditions: int, engine: str) -> None:
        self.events, self.contracts, self.conditions = events, contracts, conditions
        self.holders_from = 0xC000_0000 + ENGINES.index(engine) * 10**7

    def holder(self, i: int) -> str:
        return to_checksum_address(f"0x{self.holders_from + i:040x}")

    def token_of(self, i: int) -> str:
        """The token event job i and condition job i watch."""
        return token(i % self.contracts)


def counting_rpc(url: str) -> Any:
    """An RpcClient that counts its HTTP requests (`requests`)."""
    from node.chain import RpcClient

    class Counting(RpcClient):
        requests = 0

        async def _post(self, payload: Any) -> Any:
            self.requests += 1
            return await super()._post(payload)

    return Counting(url)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the engines (each in its own process) ---------------------------------------------------


def job_records(layout: Layout) -> list[Any]:
    """The jobs as the gateway stores them."""
    from gateway import JobRecord, JobSpec
    from protocol import JobTerms, job_id_of

    owner, calldata = "0x" + "33" * 20, b"\xd0\x9d\xe0\x8a"
    terms = JobTerms.static_call(owner, calldata, 100_000, 10**15, bytes(32))
    records = []
    schedules: list[tuple[str, dict[str, Any]]] = [
        ("event", {
            "chainId": CHAIN,
            "addresses": [layout.token_of(i)],
            "event": "Transfer(address indexed from, address indexed to, uint256 value)",
            "where": [f"to = {receiver(i)}"],
        })
        for i in range(layout.events)
    ] + [
        ("condition", {
            "chainId": CHAIN,
            "values": [f"held = erc20 {layout.token_of(i)} {layout.holder(i)}"],
            "when": "held >= 1",
        })
        for i in range(layout.conditions)
    ]  # fmt: skip
    for number, (kind, schedule) in enumerate(schedules, start=1):
        spec = JobSpec(
            owner=owner,
            nonce=str(number),
            expiry=2**40,
            target=terms.target,
            function="increment()",
            schedule_type=kind,
            schedule=schedule,
            max_fee_per_task=str(terms.max_fee_per_task),
        )
        records.append(
            JobRecord(
                id=number,
                owner=owner,
                chain_job_id=job_id_of(owner, number),
                spec=spec,
                calldata=calldata,
                terms=terms,
                consent_signature=b"",
                created_at=0.0,
            )
        )
    return records


async def run_ours(layout: Layout, url: str, ws_url: str, seconds: float) -> dict[str, Any]:
    from gateway import GatewayStorage, TaskLedger
    from gateway.triggers import ConditionTriggers, EventTriggers, HeadSignal, WatchedChain, WebPoller
    from node.mesh import Metrics
    from node.store import Store
    from node.web import JsonValues
    from protocol.triggers.condition import KIND as CONDITION
    from protocol.triggers.condition import ConditionProgram, ReadingEvidence
    from protocol.triggers.event import LogEvidence

    rpc, logs_rpc = counting_rpc(url), counting_rpc(url)  # conditions', events' (counted apart)
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "gateway.db") as store:
        storage = GatewayStorage(store)
        jobs = job_records(layout)
        for job in jobs:
            storage.jobs.put(job)
        ledger = TaskLedger(storage)
        heads = HeadSignal(ws_url)
        chain = [WatchedChain(CHAIN, rpc, CONFIRMATIONS, 1.0, heads)]
        async with JsonValues() as web:
            logs_chain = [WatchedChain(CHAIN, logs_rpc, CONFIRMATIONS, 1.0, heads)]
            events = EventTriggers(storage, ledger, lambda task_id: None, logs_chain)
            conditions = ConditionTriggers(
                storage, ledger, lambda task_id: None, chain, WebPoller(web, Metrics())
            )
            for job in jobs:
                events.schedule(job)
                conditions.schedule(job)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(heads.run)
                await heads.wait(5)  # subscribed
                await events.poll(CHAIN)  # the followers start at the head
                print("ready", flush=True)
                began_cpu, began, first = cpu_seconds(), time.time(), await rpc.call("eth_blockNumber")
                requests, logs_requests = rpc.requests, logs_rpc.requests
                nursery.start_soon(events.run)
                nursery.start_soon(conditions.run)
                await trio.sleep(seconds)
                nursery.cancel_scope.cancel()
        cpu, wall, last = cpu_seconds() - began_cpu, time.time() - began, await rpc.call("eth_blockNumber")
        fires = []
        for task in storage.tasks.scan(limit=10**6).items:
            job = jobs[task.job_id - 1]
            if job.spec.schedule_type == "event":
                block = LogEvidence.decode(task.trigger_detail).block_number
                fires.append(("event", task.job_id - 1, block, task.created_at))
            else:
                program = ConditionProgram.of(CONDITION.decode(job.spec.schedule))
                block = ReadingEvidence.decode(task.trigger_detail, program).block_number
                fires.append(("condition", task.job_id - 1 - layout.events, block, task.created_at))
    await rpc.aclose()
    await logs_rpc.aclose()
    result = stats(rpc.requests - requests - 1, cpu, wall, int(first, 16), int(last, 16), fires)
    return {**result, "event_requests": logs_rpc.requests - logs_requests}


async def run_naive(layout: Layout, url: str, seconds: float) -> dict[str, Any]:
    """Every job on its own, every second (the reference backend's way)."""
    import eth_abi

    rpc = counting_rpc(url)
    slots = trio.CapacityLimiter(64)
    fires: list[tuple[str, int, int, float]] = []
    head = int(await rpc.call("eth_blockNumber"), 16)
    read_to = [head - CONFIRMATIONS] * layout.events
    held = [False] * layout.conditions
    balance_of = keccak(text="balanceOf(address)")[:4]

    async def event_job(i: int, to_block: int) -> None:
        async with slots:
            topic = "0x" + eth_abi.encode(["address"], [receiver(i)]).hex()
            query = {
                "address": layout.token_of(i),
                "topics": [TRANSFER, None, topic],
                "fromBlock": hex(read_to[i] + 1),
                "toBlock": hex(to_block),
            }
            logs = await rpc.call("eth_getLogs", query)
        read_to[i] = to_block
        fires.extend(("event", i, int(entry["blockNumber"], 16), time.time()) for entry in logs)

    async def condition_job(i: int, block: int) -> None:
        async with slots:
            data = "0x" + (balance_of + eth_abi.encode(["address"], [layout.holder(i)])).hex()
            answer = await rpc.call("eth_call", {"to": layout.token_of(i), "data": data}, hex(block))
        now = int(answer, 16) >= 10**18
        if now and not held[i]:
            fires.append(("condition", i, block, time.time()))
        held[i] = now

    print("ready", flush=True)
    began_cpu, began, requests = cpu_seconds(), time.time(), rpc.requests
    first = head
    with trio.move_on_after(seconds):
        while True:
            round_began = time.time()
            head = int(await rpc.call("eth_blockNumber"), 16)
            async with trio.open_nursery() as nursery:
                for i in range(layout.events):
                    if read_to[i] < head - CONFIRMATIONS:
                        nursery.start_soon(event_job, i, head - CONFIRMATIONS)
                for i in range(layout.conditions):
                    nursery.start_soon(condition_job, i, head - CONFIRMATIONS)
            await trio.sleep(max(0.0, 1.0 - (time.time() - round_began)))
    cpu, wall, last = (
        cpu_seconds() - began_cpu,
        time.time() - began,
        int(await rpc.call("eth_blockNumber"), 16),
    )
    await rpc.aclose()
    result = stats(rpc.requests - requests - 1, cpu, wall, first, last, fires)
    return {**result, "event_requests": None}


def stats(
    requests: int, cpu: float, wall: float, first: int, last: int, fires: list[tuple[str, int, int, float]]
) -> dict[str, Any]:
    """What an engine reports: the condition (or all, naive) requests, CPU and wall seconds,
    the blocks it ran from and to, and each fire (kind, job index, block, time recorded)."""
    return {"requests": requests, "cpu": cpu, "wall": wall, "first": first, "last": last, "fires": fires}


# --- the driver ---------------------------------------------------------------------------------


async def place_tokens(rpc: Any, layout: Layout) -> None:
    """TestToken's code at every token address: deployed once, its code copied (minting needs
    none of the constructor's storage)."""
    from node.chain import load_artifact

    artifact = load_artifact("TestToken")
    deployer = (await rpc.call("eth_accounts"))[0]
    creation = "0x" + artifact.abi.encode_deploy(artifact.bytecode, ["T", "T"]).hex()
    tx = await rpc.call("eth_sendTransaction", {"from": deployer, "data": creation, "gas": hex(5_000_000)})
    receipt = None
    while receipt is None:
        receipt = await rpc.call("eth_getTransactionReceipt", tx)
    deployed = receipt["contractAddress"]
    code = await rpc.call("eth_getCode", deployed, "latest")
    calls = [("anvil_setCode", [token(k), code]) for k in range(layout.contracts)]
    for first in range(0, len(calls), 50):  # anvil refuses a batch of ~2 MB
        await rpc.batch(calls[first : first + 50])


async def drive(
    rpc: Any, layout: Layout, seconds: float, rate: int, arrivals: dict[int, float], rng: random.Random
) -> list[tuple[str, int, str]]:
    """Mint for `seconds` (kind, job index, tx hash of each mint); record when blocks appear."""
    import eth_abi

    minter = (await rpc.call("eth_accounts"))[0]
    mint = keccak(text="mint(address,uint256)")[:4]
    unused_holders = list(range(layout.conditions))
    rng.shuffle(unused_holders)
    sent: list[tuple[str, int, str]] = []

    async def send(kind: str, i: int) -> None:
        to, contract = (
            (receiver(i), layout.token_of(i)) if kind == "event" else (layout.holder(i), layout.token_of(i))
        )
        data = "0x" + (mint + eth_abi.encode(["address", "uint256"], [to, 10**18])).hex()
        tx = {"from": minter, "to": contract, "data": data, "gas": hex(200_000)}
        sent.append((kind, i, await rpc.call("eth_sendTransaction", tx)))

    async def watch_blocks() -> None:
        while True:
            head = int(await rpc.call("eth_blockNumber"), 16)
            arrivals.setdefault(head, time.time())
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_blocks)
        end = time.time() + seconds
        while time.time() < end:
            for _ in range(rate):
                await send("event", rng.randrange(layout.events))
            for _ in range(rate // 2):
                if unused_holders:
                    await send("condition", unused_holders.pop())
            await trio.sleep(1.0)
        await trio.sleep(GRACE_S + 1)
        nursery.cancel_scope.cancel()
    return sent


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` percentile of `values` in milliseconds (nan for none)."""
    ordered = sorted(values)
    return 1000 * ordered[round(fraction * (len(ordered) - 1))] if ordered else float("nan")


async def measure(args: argparse.Namespace, engine: str, anvil: Any, rpc: Any) -> dict[str, Any]:
    """Run `engine` in a fresh process while minting; its figures."""
    layout = Layout(args.events, args.contracts, args.conditions, engine)
    seconds = args.seconds if engine == "ours" else args.naive_seconds
    command = [sys.executable, __file__, "--engine", engine, "--url", anvil.http_url,
               "--ws-url", anvil.ws_url, "--events", str(args.events), "--contracts", str(args.contracts),
               "--conditions", str(args.conditions), "--seconds", str(seconds + GRACE_S)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 - a bench driver
    assert process.stdout is not None
    assert (await trio.to_thread.run_sync(process.stdout.readline)).strip() == "ready"
    arrivals: dict[int, float] = {}
    sent = await drive(rpc, layout, seconds, args.rate, arrivals, random.Random(7))
    output = await trio.to_thread.run_sync(process.stdout.read)
    if process.wait() != 0:
        raise SystemExit(f"the {engine} engine failed")
    result = json.loads(output.strip().splitlines()[-1])
    receipts = await rpc.batch([("eth_getTransactionReceipt", [tx]) for _, _, tx in sent])
    mined = [(kind, i, int(r["blockNumber"], 16)) for (kind, i, _), r in zip(sent, receipts, strict=True)]
    due = [m for m in mined if m[2] + CONFIRMATIONS <= result["last"]]  # confirmed while it ran
    fired = {(kind, i, block): at for kind, i, block, at in result["fires"]}
    latencies: dict[str, list[float]] = {"event": [], "condition": []}
    for kind, i, block in due:
        at = (
            fired.get((kind, i, block))
            if kind == "event"
            else next((t for (k, j, _), t in fired.items() if k == kind and j == i), None)
        )
        if at is not None and block + CONFIRMATIONS in arrivals:
            latencies[kind].append(at - arrivals[block + CONFIRMATIONS])
    blocks = max(result["last"] - result["first"], 1)
    events = result["event_requests"]
    return {
        "requests_per_block": (result["requests"] + (events or 0)) / blocks,
        "event_requests_per_block": float("nan") if events is None else events / blocks,
        "cpu_pct": 100 * result["cpu"] / result["wall"],
        "expected": len(due),
        "fires": len(result["fires"]),
        **{f"{kind}_p50_ms": percentile(found, 0.5) for kind, found in latencies.items()},
        **{f"{kind}_p99_ms": percentile(found, 0.99) for kind, found in latencies.items()},
    }


async def main_driver(args: argparse.Namespace) -> None:
    from node.chain import Anvil, RpcClient

    with Anvil(chain_id=CHAIN) as anvil:
        async with RpcClient(anvil.http_url) as rpc:
            await place_tokens(rpc, Layout(args.events, args.contracts, args.conditions, "ours"))
            await rpc.call("evm_setIntervalMining", 1)
            results = {engine: await measure(args, engine, anvil, rpc) for engine in ENGINES}
    ours, naive = results["ours"], results["naive"]
    print(
        f"{args.events} event jobs over {args.contracts} contracts and {args.conditions} condition jobs, "
        f"1 s blocks, {CONFIRMATIONS} confirmations; ours for {args.seconds} s, naive for "
        f"{args.naive_seconds} s; {args.rate} event and {args.rate // 2} condition transfers a second"
    )
    print(f"{'':34}{'ours':>12}{'naive':>12}{'naive/ours':>12}")
    rows = [
        ("HTTP requests per block", "requests_per_block", "{:.1f}"),
        ("  of them for event jobs", "event_requests_per_block", "{:.1f}"),
        ("CPU (%)", "cpu_pct", "{:.1f}"),
        ("fires (expected)", None, None),
        ("event -> task p50 (ms)", "event_p50_ms", "{:.0f}"),
        ("event -> task p99 (ms)", "event_p99_ms", "{:.0f}"),
        ("condition -> task p50 (ms)", "condition_p50_ms", "{:.0f}"),
        ("condition -> task p99 (ms)", "condition_p99_ms", "{:.0f}"),
    ]
    for label, key, form in rows:
        if key is None:
            shown = [f"{r['fires']} ({r['expected']})" for r in (ours, naive)]
            print(f"{label:34}{shown[0]:>12}{shown[1]:>12}")
            continue
        ratio = naive[key] / ours[key] if ours[key] else float("nan")
        print(f"{label:34}{form.format(ours[key]):>12}{form.format(naive[key]):>12}{ratio:>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--contracts", type=int, default=1_000)
    parser.add_argument("--conditions", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=60, help="how long ours runs (default 60)")
    parser.add_argument(
        "--naive-seconds", type=int, default=30, help="how long the naive one runs (default 30)"
    )
    parser.add_argument("--rate", type=int, default=20, help="event transfers per second (default 20)")
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ws-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    layout = Layout(args.events, args.contracts, args.conditions, args.engine or "ours")
    if args.engine == "ours":
        print(json.dumps(trio.run(run_ours, layout, args.url, args.ws_url, args.seconds)))
    elif args.engine == "naive":
        print(json.dumps(trio.run(run_naive, layout, args.url, args.seconds)))
    else:
        trio.run(main_driver, args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
