"""The chain client against a real anvil: batches, errors, retries, subscriptions, nonces, replacement."""

from __future__ import annotations

import httpx
import pytest
import trio
from eth_account import Account
from hypercorn.trio import serve

from gateway import server_config
from node.chain import (
    RevertError,
    RpcClient,
    RpcError,
    TransactionSender,
    TransportError,
    deploy,
    free_port,
    load_artifact,
    subscribe,
)

from ..conftest import CHAIN_ID

GWEI = 10**9
JSON = {"content-type": "application/json"}


async def test_batch_returns_results_in_order(rpc, accounts):
    chain_id, block, balance = await rpc.batch(
        [("eth_chainId", []), ("eth_blockNumber", []), ("eth_getBalance", [accounts[0].address, "latest"])]
    )
    assert int(chain_id, 16) == CHAIN_ID
    assert int(block, 16) == 0
    assert int(balance, 16) == 10_000 * 10**18


async def test_batch_reports_each_failure_in_its_place(rpc):
    results = await rpc.batch(
        [("eth_chainId", []), ("no_such_method", []), ("eth_blockNumber", [])], return_exceptions=True
    )
    assert int(results[0], 16) == CHAIN_ID
    assert isinstance(results[1], RpcError)
    assert results[1].method == "no_such_method"
    assert results[2] == "0x0"
    with pytest.raises(RpcError, match="no_such_method"):
        await rpc.batch([("eth_chainId", []), ("no_such_method", [])])


async def test_revert_reasons_are_decoded(rpc, accounts, sender_for):
    counter = await deploy(sender_for(accounts[0]), load_artifact("Counter"))
    with pytest.raises(RevertError) as caught:
        await counter.call("failWithReason")
    assert caught.value.reason == "Counter: failure requested"
    assert caught.value.error_name == "Error"
    with pytest.raises(RevertError) as caught:
        await counter.call("fail")
    assert caught.value.reason == "ForcedFailure(count=0)"
    # A mined transaction that failed: the reason comes from replaying it.
    sender = sender_for(accounts[0])
    with pytest.raises(RevertError) as caught:
        await sender.transact(counter.address, counter.encode("failWithReason"), gas=100_000)
    assert caught.value.reason == "Counter: failure requested"
    assert caught.value.tx_hash is not None
    receipt = await rpc.call("eth_getTransactionReceipt", caught.value.tx_hash)
    assert receipt["status"] == "0x0"


async def test_unknown_revert_data_is_still_reported(rpc, accounts, sender_for):
    counter = await deploy(sender_for(accounts[0]), load_artifact("Counter"))
    bare = RpcClient(rpc.url)  # knows Error and Panic only, not Counter's custom errors
    async with bare:
        with pytest.raises(RevertError, match="unrecognised revert data 0x") as caught:
            await bare.call(
                "eth_call", {"to": counter.address, "data": "0x" + counter.encode("fail").hex()}, "latest"
            )
    [forced_failure] = counter.abi.errors  # Counter's only custom error
    assert caught.value.data[:4] == forced_failure
    assert caught.value.error_name is None


async def test_transport_failure_is_retried_then_reported():
    url = f"http://127.0.0.1:{free_port()}"
    async with RpcClient(url, retries=2, backoff=0.01) as client:
        with pytest.raises(TransportError) as caught:
            await client.call("eth_chainId")
    assert caught.value.attempts == 3
    assert caught.value.url == url


async def test_retries_ride_out_a_node_restart(anvil):
    anvil.stop()
    async with (
        RpcClient(anvil.http_url, retries=8, backoff=0.05, max_backoff=0.5) as client,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(trio.to_thread.run_sync, anvil.start)
        assert int(await client.call("eth_chainId"), 16) == CHAIN_ID


async def test_subscription_survives_a_node_restart(anvil, rpc):
    async with subscribe(anvil.ws_url, "newHeads", idle_ping_after=1.0) as heads:
        await heads.wait_connected()
        await rpc.call("evm_mine")
        with trio.fail_after(10):
            first = await heads.__anext__()
        assert int(first["number"], 16) == 1

        await trio.to_thread.run_sync(anvil.restart)  # same port, fresh chain
        with trio.fail_after(10):
            await heads.wait_connected(2)
        await rpc.call("evm_mine")
        await rpc.call("evm_mine")
        with trio.fail_after(10):
            numbers = [int((await heads.__anext__())["number"], 16) for _ in range(2)]
        assert numbers == [1, 2]
        assert heads.reconnects == 1


async def test_log_subscription_is_renewed_with_its_filter(anvil, rpc, accounts, sender_for):
    async def deploy_counter():
        return await deploy(sender_for(accounts[0]), load_artifact("Counter"))

    counter = await deploy_counter()
    topic = counter.abi.event_topic("Incremented")
    async with subscribe(anvil.ws_url, "logs", {"address": counter.address, "topics": [topic]}) as logs:
        await logs.wait_connected()
        await counter.transact(sender_for(accounts[0]), "increment")
        with trio.fail_after(10):
            event = counter.abi.decode_log(await logs.__anext__())
        assert (event.name, event.args["count"]) == ("Incremented", 1)

        await trio.to_thread.run_sync(anvil.restart)
        with trio.fail_after(10):
            await logs.wait_connected(2)
        # The fresh chain repeats the same deployment, so the counter has the same address.
        sender = TransactionSender(rpc, accounts[0], CHAIN_ID)
        again = await deploy(sender, load_artifact("Counter"))
        assert again.address == counter.address
        await again.transact(sender, "incrementBy", 5)
        with trio.fail_after(10):
            event = counter.abi.decode_log(await logs.__anext__())
        assert event.args["by"] == 5


@pytest.mark.slow
async def test_200_concurrent_transactions_from_one_account(rpc, accounts, sender_for):
    sender = sender_for(accounts[0])
    counter = await deploy(sender, load_artifact("Counter"))
    start = int(await rpc.call("eth_getTransactionCount", sender.address, "latest"), 16)
    nonces: list[int] = []
    receipts = []

    async def one() -> None:
        pending = await sender.send(counter.address, counter.encode("increment"))
        nonces.append(pending.nonce)
        receipts.append(await sender.wait(pending, timeout=60))

    async with trio.open_nursery() as nursery:
        for _ in range(200):
            nursery.start_soon(one)
    assert sorted(nonces) == list(range(start, start + 200))
    assert all(r.status for r in receipts)
    assert await counter.call("count") == 200
    assert int(await rpc.call("eth_getTransactionCount", sender.address, "latest"), 16) == start + 200


async def test_a_failed_send_leaves_no_nonce_gap(rpc, accounts, sender_for):
    sender = sender_for(accounts[0])
    first = await sender.send(accounts[1].address, value=1, gas=21_000)
    with pytest.raises(RpcError, match=r"(?i)insufficient funds"):
        await sender.send(accounts[1].address, value=10**30, gas=21_000)
    after = await sender.send(accounts[1].address, value=1, gas=21_000)
    assert after.nonce == first.nonce + 1
    assert (await sender.wait(after)).status


async def test_two_wallets_sharing_a_key_resync(rpc, accounts):
    a = TransactionSender(rpc, accounts[0], CHAIN_ID)
    b = TransactionSender(rpc, accounts[0], CHAIN_ID)  # its own NonceManager: it collides
    for _ in range(5):
        for sender in (a, b):
            receipt = await sender.transact(accounts[1].address, value=1, gas=21_000)
            assert receipt.status
    assert int(await rpc.call("eth_getTransactionCount", accounts[0].address, "latest"), 16) == 10


@pytest.mark.slow
async def test_a_stuck_transaction_is_replaced(timed_anvil):
    async with RpcClient(timed_anvil.http_url) as client:
        account = Account.from_key(timed_anvil.private_keys[0])
        sender = TransactionSender(client, account, CHAIN_ID)
        pending = await sender.send(account.address, value=1, gas=21_000)
        # Before the next block, the base fee jumps past what the transaction offered:
        # it stays unmined until it is re-priced.
        await client.call("anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
        assert pending.fields["maxFeePerGas"] < 100 * GWEI
        receipt = await sender.wait(pending, timeout=30, replace_after=1.5)
        assert receipt.status
        assert receipt.tx_hash != pending.hashes[0]
        assert receipt.tx_hash in pending.hashes[1:]
        assert await client.call("eth_getTransactionReceipt", pending.hashes[0]) is None
        mined = await client.call("eth_getTransactionByHash", receipt.tx_hash)
        assert int(mined["nonce"], 16) == pending.nonce
        # The next transaction continues right after the replaced nonce.
        follow = await sender.send(account.address, value=1, gas=21_000)
        assert follow.nonce == pending.nonce + 1


async def test_a_send_cancelled_in_flight_gives_its_nonce_back(anvil, rpc, accounts):
    """A send cancelled while the node has its transaction (an API client that went away
    mid-request) kept its nonce reserved: every later transaction of the account waited behind
    the gap. The node here is anvil behind a proxy that holds raw transactions while told to."""
    holding, held = True, trio.Event()

    async def proxy(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if holding and b"eth_sendRawTransaction" in body:
            held.set()
            await trio.sleep_forever()
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                anvil.http_url, content=body, headers={"content-type": "application/json"}
            )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, proxy, server_config("127.0.0.1:0"))
        async with RpcClient(binds[0], retries=0) as slow:
            sender = TransactionSender(slow, accounts[3], CHAIN_ID)
            start = int(await rpc.call("eth_getTransactionCount", accounts[3].address, "pending"), 16)
            with trio.move_on_after(30) as waiting:
                async with trio.open_nursery() as sending:
                    sending.start_soon(sender.send, accounts[1].address, b"", 1, 21_000)
                    await held.wait()
                    sending.cancel_scope.cancel()
            assert not waiting.cancelled_caught
            holding = False
            after = await sender.send(accounts[1].address, value=1, gas=21_000)
            assert after.nonce == start  # given back, not skipped
            assert (await sender.wait(after)).status
        nursery.cancel_scope.cancel()
