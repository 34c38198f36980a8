"""The devnet's demo: a counter to call, an owner with a deposit, and signed jobs that call it."""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec
from eth_account import Account
from eth_account.signers.local import LocalAccount

from gateway import JobSpec, ScriptSpec, sign_job
from node.chain import Contract, RpcClient, TransactionSender, deploy, load_artifact, revert_decoder

ETH = 10**18


async def fund_and_deploy_demo(
    rpc_url: str,
    deployer: LocalAccount,
    owner: LocalAccount,
    aggregator: str,
    gateway: str,
    hub_address: str,
) -> str:
    """Give the aggregator gas money and the gateway its faucet's, the demo owner a task
    balance, and deploy the demo counter."""
    async with RpcClient(rpc_url, revert_decoder=revert_decoder()) as rpc:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        sender = TransactionSender(rpc, deployer, chain_id)
        await sender.transact(aggregator, b"", 100 * ETH)
        await sender.transact(gateway, b"", 1000 * ETH)
        counter = await deploy(sender, load_artifact("Counter"))
        hub = Contract(rpc, load_artifact("TaskExecutionHub"), hub_address)
        await hub.transact(TransactionSender(rpc, owner, chain_id), "deposit", value=10 * ETH)
        return counter.address


def demo_job(
    owner: LocalAccount,
    counter: str,
    chain_id: int,
    hub: str,
    every_seconds: int = 5,
    end: int | None = None,
    *,
    trigger: tuple[str, dict[str, Any]] | None = None,
    script: ScriptSpec | None = None,
) -> dict[str, object]:
    """A signed job that increments the demo counter every `every_seconds` until `end` (unix
    seconds; never by default), or on `trigger` (a kind's name and its schedule) when given,
    with a fresh random nonce each time, so every call makes a new job; the consent is valid
    for a week. With `script`, the counter goes up by what the script prints
    (`incrementBy(uint256)`)."""
    schedule_type, schedule = trigger or (
        "interval",
        {"everySeconds": every_seconds} | ({} if end is None else {"end": end}),
    )
    spec = JobSpec(
        owner=owner.address,
        nonce=str(secrets.randbits(64)),
        expiry=int(time.time()) + 7 * 86_400,
        target=counter,
        function="increment()" if script is None else "incrementBy(uint256)",
        schedule_type=schedule_type,
        schedule=schedule,
        max_fee_per_task=str(10**16),
        gas_limit=100_000,
        script=script,
    )
    return {"job": msgspec.to_builtins(spec), "signature": sign_job(spec, owner, chain_id, hub)}


def devnet_demo_job(
    facts: dict[str, Any],
    every_seconds: int = 5,
    end: int | None = None,
    *,
    trigger: tuple[str, dict[str, Any]] | None = None,
    script: ScriptSpec | None = None,
) -> dict[str, object]:
    """`demo_job` for the devnet described by `facts` (its devnet.json)."""
    owner = Account.from_key(facts["demoOwnerKey"])
    hub, counter = facts["contracts"]["taskExecutionHub"], facts["demoCounter"]
    return demo_job(owner, counter, facts["chainId"], hub, every_seconds, end, trigger=trigger, script=script)
