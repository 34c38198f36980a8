"""What an attester checks of a condition fire, against anvil and a local web server: the
block is the chain's, each value is what the chain (or, within the tolerance, the URL) says,
the condition holds for them, and the execution came after the confirmations."""

from __future__ import annotations

import pytest

from node.chain import deploy, load_artifact
from node.web import JsonValues, WebLimits
from protocol.triggers import NotYetVisibleError, Readers, TriggerFire
from protocol.triggers.condition import KIND, MAX_READING_AGE, ConditionProgram, ReadingEvidence

from ..web_server import Route, web_server

CHAIN = 31337


@pytest.fixture
async def feed(accounts, sender_for):
    return await deploy(sender_for(accounts[0]), load_artifact("PriceFeed"), 8, "ETH/USD", 2000 * 10**8)


async def head_block(rpc) -> dict:
    return await rpc.call("eth_getBlockByNumber", "latest", False)


def fire_of(
    spec: dict, block: dict, values: tuple[int, ...], *, block_hash: str | None = None
) -> TriggerFire:
    evidence = ReadingEvidence(
        CHAIN, int(block["number"], 16), bytes.fromhex((block_hash or block["hash"])[2:]), values
    )
    return TriggerFire("condition", spec, float(int(block["timestamp"], 16)), evidence.encode())


async def problem_of(fire: TriggerFire, readers: Readers, executed_in: int) -> str | None:
    spec = KIND.decode(fire.spec)
    assert KIND.check_fire(spec, fire) is None
    return await KIND.check_on_chain(spec, fire, readers, executed_in)


async def test_a_reading_is_approved_only_if_the_chain_says_so(rpc, feed):
    spec = {"chainId": CHAIN, "values": [f"p = feed {feed.address}"], "when": "p < 2500", "confirmations": 2}
    block = await head_block(rpc)
    number, readers = int(block["number"], 16), Readers({CHAIN: rpc})
    honest = 2000 * 10**8
    assert await problem_of(fire_of(spec, block, (honest,)), readers, number + 2) is None
    problems = [
        await problem_of(fire_of(spec, block, (honest + 1,)), readers, number + 2),
        await problem_of(fire_of(spec, block, (honest,), block_hash="0x" + "ab" * 32), readers, number + 2),
        await problem_of(fire_of(spec, block, (honest,)), readers, number + 1),
        await problem_of(fire_of({**spec, "when": "p > 2500"}, block, (honest,)), readers, number + 2),
        await problem_of(fire_of(spec, block, (honest,)), readers, number + 2 + MAX_READING_AGE + 1),
    ]
    assert problems[0] == f"p is {honest} at block {number}, not {honest + 1}"
    assert problems[1] == f"block {number} is not 0x{'ab' * 32} on chain {CHAIN}"
    assert problems[2] == f"executed in block {number + 1}, before the reading's 2 confirmation(s)"
    assert problems[3] == f"`p > 2500` does not hold at block {number}"
    assert "over 1024 blocks after the reading was confirmed" in problems[4]
    other_chain = {**spec, "chainId": 1}
    assert KIND.check_fire(KIND.decode(other_chain), fire_of(other_chain, block, (honest,))) == (
        "the reading is of chain 31337, the job watches chain 1"
    )
    with pytest.raises(NotYetVisibleError, match="follows no chain 31337"):
        await problem_of(fire_of(spec, block, (honest,)), Readers({}), number + 2)


async def test_a_feed_stale_at_the_block_read_is_rejected(rpc, feed):
    spec = {
        "chainId": CHAIN,
        "values": [f"p = feed {feed.address}"],
        "when": "p > 0",
        "maxFeedAgeSeconds": 60,
    }
    await rpc.call("evm_increaseTime", hex(61))
    await rpc.call("anvil_mine", "0x1")
    block = await head_block(rpc)
    problem = await problem_of(fire_of(spec, block, (2000 * 10**8,)), Readers({CHAIN: rpc}), 100)
    assert "the feed's answer is 61 s old" in problem


async def test_web_values_are_checked_within_the_jobs_tolerance(rpc):
    async with web_server() as server, JsonValues(WebLimits(allow_private=True, timeout=1)) as web:
        server.routes["/eth"] = Route(b'{"price": 1000.00}')
        spec = {
            "chainId": CHAIN,
            "values": [f"v = http {server.url('/eth')} $.price decimals 2"],
            "when": "v >= 995",
            "httpToleranceBps": 100,
        }
        block, readers = await head_block(rpc), Readers({CHAIN: rpc}, web)
        assert await problem_of(fire_of(spec, block, (99_500,)), readers, 100) is None  # 0.5 % away
        assert "not within 100 bps of the reported 98000" in await problem_of(
            fire_of({**spec, "when": "v >= 970"}, block, (98_000,)), readers, 100
        )
        assert await problem_of(fire_of(spec, block, (99_400,)), readers, 100) == (
            "`v >= 995` does not hold at block 0"
        )
        server.routes["/eth"] = Route(b"down", status=503)
        with pytest.raises(NotYetVisibleError, match="HTTP 503"):  # cannot look: abstain
            await problem_of(fire_of(spec, block, (99_500,)), readers, 100)
        with pytest.raises(NotYetVisibleError, match="fetches no web values"):
            await problem_of(fire_of(spec, block, (99_500,)), Readers({CHAIN: rpc}), 100)
    assert ConditionProgram.of(KIND.decode(spec)).tolerance_bps == 100
