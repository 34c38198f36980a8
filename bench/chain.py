"""Chain client benchmark: send→receipt latency and one-account throughput, ours vs web3.py.

    .venv/bin/python bench/chain.py [--txs 500]

Every measurement runs against its own fresh anvil (instant mining) and sends the same
call, `Counter.increment()`. Latency: transactions one after another, each timed from
building it to holding its receipt. Throughput: as many as the client can keep in
flight from one account: ours sends them from concurrent trio tasks; synchronous
web3.py sends them all, then waits for every receipt. web3.py builds each transaction
the usual way (`build_transaction`: gas estimate and fee lookups) and polls receipts
every 2 ms (its default, 100 ms, would be unfair to it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from node.chain import Anvil, RpcClient, TransactionSender, anvil_binary, deploy, load_artifact


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def ours(txs: int) -> tuple[list[float], float]:
    with Anvil() as anvil:
        async with RpcClient(anvil.http_url) as rpc:
            sender = TransactionSender(rpc, Account.from_key(anvil.private_keys[0]), anvil.chain_id)
            counter = await deploy(sender, load_artifact("Counter"))
            call = counter.encode("increment")
            latencies = []
            for _ in range(txs):
                started = time.perf_counter()
                await sender.transact(counter.address, call)
                latencies.append(time.perf_counter() - started)

            async def one() -> None:
                await sender.transact(counter.address, call)

            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(txs):
                    nursery.start_soon(one)
            elapsed = time.perf_counter() - started
            assert await counter.call("count") == 2 * txs
    return latencies, txs / elapsed


def web3_baseline(txs: int) -> tuple[list[float], float]:
    with Anvil() as anvil:
        w3 = Web3(HTTPProvider(anvil.http_url))
        account: LocalAccount = Account.from_key(anvil.private_keys[0])
        artifact = load_artifact("Counter")
        deployed = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(
                account.sign_transaction(
                    w3.eth.contract(abi=artifact.abi.items, bytecode=artifact.bytecode)
                    .constructor()
                    .build_transaction({"from": account.address, "nonce": 0})
                ).raw_transaction
            )
        )
        counter = w3.eth.contract(address=deployed["contractAddress"], abi=artifact.abi.items)
        nonce = 1

        def send() -> bytes:
            nonlocal nonce
            tx = counter.functions.increment().build_transaction({"from": account.address, "nonce": nonce})
            nonce += 1
            return w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)

        def wait(tx_hash: bytes) -> None:
            w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.002)

        latencies = []
        for _ in range(txs):
            started = time.perf_counter()
            wait(send())
            latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        for tx_hash in [send() for _ in range(txs)]:
            wait(tx_hash)
        elapsed = time.perf_counter() - started
        assert counter.functions.count().call() == 2 * txs
    return latencies, txs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--txs", type=int, default=500, help="transactions per measurement (default 500)")
    args = parser.parse_args()

    our_latency, our_rate = trio.run(ours, args.txs)
    web3_latency, web3_rate = web3_baseline(args.txs)

    ms: Callable[[float], str] = lambda seconds: f"{seconds * 1000:.2f}"  # noqa: E731
    rows = [
        ("send→receipt p50 (ms)", ms(statistics.median(our_latency)), ms(statistics.median(web3_latency)),
         statistics.median(web3_latency) / statistics.median(our_latency)),
        ("send→receipt p99 (ms)", ms(percentile(our_latency, 0.99)), ms(percentile(web3_latency, 0.99)),
         percentile(web3_latency, 0.99) / percentile(our_latency, 0.99)),
        ("throughput, one account (tx/s)", f"{our_rate:.0f}", f"{web3_rate:.0f}", our_rate / web3_rate),
    ]  # fmt: skip
    anvil_version = json.loads((anvil_binary().parents[1] / "package.json").read_text())["version"]
    print(f"chain client: {args.txs} × Counter.increment() each, anvil {anvil_version} (instant mining)")
    print(f"{'':32}{'ours (trio+httpx)':>20}{'web3.py HTTPProvider':>23}{'ours is':>10}")
    for name, our, theirs, ratio in rows:
        print(f"{name:32}{our:>20}{theirs:>23}{ratio:>9.1f}×")


if __name__ == "__main__":
    main()
