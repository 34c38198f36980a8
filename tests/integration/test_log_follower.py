"""The log follower on anvil: every watched job from one pair of batches per poll, each log
fired once after its confirmations, and a log that a reorg removed never fired while the new
branch's are."""

from __future__ import annotations

import pytest

from gateway.triggers import LogFollower
from node.chain import RpcClient, deploy, load_artifact
from protocol.triggers.event import KIND, EventFilter

TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"
CHAIN = 31337


def watching(token: str, *where: str, confirmations: int | None = None) -> EventFilter:
    spec = {"chainId": CHAIN, "addresses": [token], "event": TRANSFER, "where": list(where)}
    if confirmations is not None:
        spec["confirmations"] = confirmations
    return EventFilter.of(KIND.decode(spec))


@pytest.fixture
async def token(accounts, sender_for):
    return await deploy(sender_for(accounts[0]), load_artifact("TestToken"), "T", "T")


async def mine(rpc, blocks: int) -> None:
    await rpc.call("anvil_mine", hex(blocks))


def fired(matches) -> list[tuple[int, int]]:
    """(job, value) of each match."""
    return [(m.job_id, int(m.log["data"], 16)) for m in matches]


async def test_each_matching_log_fires_once_after_its_confirmations(rpc, accounts, sender_for, token):
    minter, receiver = sender_for(accounts[0]), accounts[2].address
    follower = LogFollower(rpc, CHAIN, confirmations=2)
    follower.watch(1, watching(token.address, f"to = {receiver}", "value >= 1000000"))
    follower.watch(2, watching(token.address))
    follower.watch(3, watching(token.address, confirmations=0))
    assert await follower.poll() == []  # starts at the head: history is not fired
    await token.transact(minter, "mint", receiver, 2_000_000)
    await token.transact(minter, "mint", accounts[3].address, 7)
    assert fired(await follower.poll()) == [(3, 2_000_000), (3, 7)]  # no confirmation asked
    await mine(rpc, 1)
    assert fired(await follower.poll()) == [(1, 2_000_000), (2, 2_000_000)]  # the first has 2 on top
    await mine(rpc, 5)
    assert fired(await follower.poll()) == [(2, 7)]
    assert await follower.poll() == []  # each once
    follower.unwatch(2)
    await token.transact(minter, "mint", receiver, 3_000_000)
    await mine(rpc, 2)
    matches = await follower.poll()
    assert fired(matches) == [(1, 3_000_000), (3, 3_000_000)]
    block = await rpc.call("eth_getBlockByNumber", matches[0].log["blockNumber"], False)
    evidence = matches[0].evidence
    assert (evidence.chain_id, evidence.block_number, "0x" + evidence.block_hash.hex()) == (
        CHAIN,
        int(block["number"], 16),
        block["hash"],
    )
    assert matches[0].timestamp == int(block["timestamp"], 16)


async def test_a_log_a_reorg_removed_never_fires_and_the_new_branchs_do(rpc, accounts, sender_for, token):
    minter, receiver = sender_for(accounts[0]), accounts[2].address
    follower = LogFollower(rpc, CHAIN, confirmations=3)
    follower.watch(1, watching(token.address, f"to = {receiver}"))
    await follower.poll()
    fork = await rpc.call("evm_snapshot")
    await token.transact(minter, "mint", receiver, 2_000_000)  # only on the branch that loses
    await mine(rpc, 1)
    assert await follower.poll() == []  # read, waiting for its confirmations
    assert await rpc.call("evm_revert", fork)
    await mine(rpc, 1)  # the new branch: another block at the old one's height, then
    # From another account: the reverted transaction's nonce is spent in the minter's sender.
    await token.transact(sender_for(accounts[1]), "mint", receiver, 5_000_000)
    await mine(rpc, 3)
    assert fired(await follower.poll()) == [(1, 5_000_000)]
    await mine(rpc, 5)
    assert await follower.poll() == []


async def test_a_follower_started_from_a_block_reads_what_it_missed(rpc, accounts, sender_for, token):
    """A restart resumes from the block after the last one read (the gateway's checkpoint)."""
    minter, receiver = sender_for(accounts[0]), accounts[2].address
    first = LogFollower(rpc, CHAIN, confirmations=1)
    first.watch(1, watching(token.address))
    await first.poll()
    resume = first.read_to + 1
    await token.transact(minter, "mint", receiver, 11)  # while no follower runs
    await token.transact(minter, "mint", receiver, 12)
    await mine(rpc, 1)
    second = LogFollower(rpc, CHAIN, confirmations=1, start=resume)
    second.watch(1, watching(token.address))
    assert fired(await second.poll()) == [(1, 11), (1, 12)]


class CountingRpc(RpcClient):
    """The real client, counting its HTTP requests (one per call or batch)."""

    requests = 0

    async def _post(self, payload):  # the client's internal: one call per HTTP request
        self.requests += 1
        return await super()._post(payload)


async def test_a_poll_is_two_requests_for_any_number_of_jobs(anvil, accounts, sender_for):
    minter = sender_for(accounts[0])
    tokens = [await deploy(minter, load_artifact("TestToken"), f"T{n}", "T") for n in range(8)]
    async with CountingRpc(anvil.http_url) as rpc:
        follower = LogFollower(rpc, CHAIN, confirmations=0)
        for job in range(40):  # five jobs on each token: receivers 1..5
            follower.watch(job, watching(tokens[job % 8].address, f"to = {accounts[1 + job // 8].address}"))
        await follower.poll()
        for n, token in enumerate(tokens):
            await token.transact(minter, "mint", accounts[1 + n % 5].address, 100 + n)
        before = rpc.requests
        matches = await follower.poll()
        assert rpc.requests - before == 2  # 8 new blocks, 40 jobs: two batches
    # Token n minted to receiver n % 5 + 1: job j (token j % 8, receiver j // 8 + 1) fires for it.
    assert sorted(fired(matches)) == sorted((j, 100 + j % 8) for j in range(40) if (j % 8) % 5 == j // 8)
