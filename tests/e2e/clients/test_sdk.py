"""The Python SDK (triggerx) against a live devnet: every trigger kind and both argument modes
created through it and watched over the WebSocket until a task completes, pause, resume and
cancel, refusals as typed errors naming the field, and the gas balance on chain; synchronously,
under trio and under asyncio."""

from __future__ import annotations

import asyncio
import time

import pytest
import trio
from eth_account import Account

from node.chain import load_artifact
from triggerx import (
    AsyncClient,
    ChainError,
    Client,
    ConfigurationError,
    InvalidRequestError,
    Job,
    NotFoundError,
    Script,
)

from ..conftest import rpc, transact

pytestmark = pytest.mark.e2e

TOKEN = load_artifact("TestToken")
FEED = load_artifact("PriceFeed")
TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"
FEE = {"max_fee_per_task": 10**16}
SEVEN = b"import json, sys\njson.load(sys.stdin)\nprint(json.dumps([7]))\n"


def completed_task(client: Client, job_id: int) -> int:
    """Watch job `job_id` until one of its tasks is completed with its execution's transaction
    known (the gateway notes it just after the decision: a TASK_UPDATED); that task's id.
    Every event's task must be the job's."""
    for event in client.watch(job_id):
        assert event.task.job_id == job_id
        if event.task.status == "completed" and any(a.tx_hash for a in event.task.attempts):
            return event.task.id
    raise AssertionError("the watch ended")


@pytest.mark.timeout(240)
def test_every_kind_and_argument_mode_runs_to_a_completed_task(client_devnet):
    devnet = client_devnet
    url, counter, chain_id = devnet["rpcUrl"], devnet["demoCounter"], devnet["chainId"]
    sender, receiver = rpc(url, "eth_accounts")[9], rpc(url, "eth_accounts")[8]
    token = transact(url, sender, None, TOKEN.abi.encode_deploy(TOKEN.bytecode, ["E", "E"]))[
        "contractAddress"
    ]
    feed = transact(url, sender, None, FEED.abi.encode_deploy(FEED.bytecode, [8, "ETH/USD", 2000 * 10**8]))[
        "contractAddress"
    ]
    with Client(devnet["gatewayUrl"], devnet["demoOwnerKey"]) as client:
        now = int(time.time())
        script = Script(client.upload_script(SEVEN), "python")
        jobs = {
            "interval": Job.interval(counter, "increment()", every_seconds=2, end=now + 6),
            "cron": Job.cron(
                counter, "increment()", expression="*/2 * * * * *", timezone="Asia/Tokyo", end=now + 6
            ),
            "specific": Job.at(counter, "increment()", times=[now + 3]),
            "event": Job.on_event(
                counter,
                "increment()",
                chain_id=chain_id,
                contracts=[token],
                event=TRANSFER,
                where=[f"to = {receiver}"],
                confirmations=1,
            ),
            "condition": Job.when(
                counter,
                "increment()",
                chain_id=chain_id,
                values=[f"price = feed {feed}"],
                condition="price < 1500",
                confirmations=1,
            ),
            "script": Job.interval(
                counter,
                "incrementBy(uint256)",
                every_seconds=2,
                end=now + 6,
                script=script,
                max_fee_per_task=10**16,
            ),
        }
        created = {kind: client.create(job) for kind, job in jobs.items()}
        first, then = client.create_chain(
            [Job.at(counter, "increment()", times=[now + 4]), Job.after_previous(counter, "increment()")]
        )
        assert {kind: view.spec.schedule_type for kind, view in created.items()} == {
            **{kind: kind for kind in jobs},
            "script": "interval",
        }
        assert then.spec.schedule == {"jobId": first.chain_job_id}
        time.sleep(
            1.5
        )  # the gateway follows the chain every second: the event and condition jobs are watched
        transact(url, sender, token, TOKEN.abi.encode_call("mint", [receiver, 5]))
        transact(url, sender, feed, FEED.abi.encode_call("setAnswer", [1400 * 10**8]))
        rpc(url, "anvil_mine", "0x2")
        for kind, view in [*created.items(), ("after", then)]:
            task = client.task(completed_task(client, view.id))
            assert (task.status, task.fee is not None) == ("completed", True), kind
        seventh = client.tasks(created["script"].id).tasks
        assert any(t.status == "completed" for t in seventh)


async def test_the_async_client_under_trio_pauses_resumes_cancels_and_names_bad_fields(client_devnet):
    devnet = client_devnet
    counter = devnet["demoCounter"]
    async with AsyncClient(devnet["gatewayUrl"], devnet["demoOwnerKey"]) as client:
        with pytest.raises(InvalidRequestError) as refused:
            await client.create(Job.interval(counter, "increment()", every_seconds=2, gas_limit=10))
        assert (refused.value.status, refused.value.field) == (400, "gasLimit")  # in the fee estimate
        with pytest.raises(InvalidRequestError) as refused:
            await client.create(Job.interval(counter, "increment()", every_seconds=2, gas_limit=10, **FEE))
        assert (refused.value.status, refused.value.field) == (400, "$.job.gasLimit")
        with pytest.raises(InvalidRequestError) as refused:
            await client.create(
                Job.interval(counter, "increment(uint256)", every_seconds=2, args=["x"], **FEE)
            )
        assert refused.value.field == "$.job.args[0]"
        with pytest.raises(NotFoundError):
            await client.job(10**9)
        job = await client.create(Job.interval(counter, "increment()", every_seconds=2))
        assert (await client.pause(job.id)).status == "paused"
        assert (await client.resume(job.id)).status == "active"
        with trio.fail_after(90):
            async with client.watch(job.id) as events:
                async for event in events:
                    if event.task.status == "completed":
                        break
        assert (await client.cancel(job.id)).status == "deleted"
        assert (await client.job(job.id)).status == "deleted"
        assert (await client.cancel(job.id)).status == "deleted"  # cancelling twice is no error
    async with AsyncClient(devnet["gatewayUrl"]) as reader:
        with pytest.raises(ConfigurationError):
            await reader.create(Job.interval(counter, "increment()", every_seconds=2))
    async with AsyncClient(devnet["gatewayUrl"], devnet["demoOwnerKey"], chain_id=1) as pinned:
        with pytest.raises(ConfigurationError, match="chain id"):
            await pinned.create(Job.interval(counter, "increment()", every_seconds=2))


def test_the_async_client_under_asyncio_keeps_the_gas_balance(client_devnet):
    devnet = client_devnet
    owner = Account.create()
    rpc(devnet["rpcUrl"], "anvil_setBalance", owner.address, hex(10**18))

    async def main() -> tuple[int, int, int]:
        async with AsyncClient(devnet["gatewayUrl"], owner, rpc_url=devnet["rpcUrl"]) as client:
            before = await client.balance()
            await client.deposit(10**17)
            deposited = await client.balance()
            await client.withdraw(4 * 10**16)
            left = await client.balance()
            with pytest.raises(ChainError):
                await client.withdraw(10**18)
            return before, deposited, left

    assert asyncio.run(main()) == (0, 10**17, 6 * 10**16)
