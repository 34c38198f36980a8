"""A keeper's votes are resent over the real mesh until decided, refused or expired (node.keeper.votes)."""

from __future__ import annotations

import time
from collections import Counter

import trio

from node.keeper import VoteSender
from node.mesh import RequestRefused

from .test_mesh import make_node, until

VOTES = 300
VOTE_REPLIES = ("decided", "rejected", "counted", "error")


async def test_votes_are_resent_with_backoff_until_decided_refused_or_expired():
    received: Counter[bytes] = Counter()

    async def vote(sender: str, payload: bytes) -> bytes:
        received[payload] += 1
        if payload.startswith(b"refuse"):
            raise RequestRefused("this vote never counts")
        if payload.startswith(b"undecided"):
            return b"counted"
        return b"decided" if received[payload] == 3 else b"counted"  # decided at the third send

    aggregator = make_node(1)
    aggregator.register_handler("vote", vote)
    async with make_node(0) as keeper, aggregator, trio.open_nursery() as nursery:
        await keeper.connect(aggregator.listen_addrs[0])
        sender = VoteSender(keeper, [aggregator.peer_id], resend_every=0.05)
        nursery.start_soon(sender.run)
        far = time.time() + 60
        for task in range(VOTES):
            sender.add((task, 1, b"r"), b"vote %d" % task, far)
        sender.add((VOTES, 1, b"r"), b"refuse", far)
        await until(lambda: not sender.pending)
        assert received == {**{b"vote %d" % task: 3 for task in range(VOTES)}, b"refuse": 1}

        sender.add((VOTES + 1, 1, b"r"), b"undecided", time.time() + 0.5)
        await until(lambda: not sender.pending)
        # Sent at 0, 0.05, 0.15 and 0.35 s, then given up at 0.5 s (the next send was due at 0.75 s).
        assert 3 <= received[b"undecided"] <= 4
        sends = received.total()
        await trio.sleep(0.5)
        assert received.total() == sends  # nothing is sent once a vote is dropped
        # Each send counted by reply (node.metrics), and the vote given up.
        sample = sender.stats.node.registry.get_sample_value
        replies = {r: sample("triggerx_keeper_votes_sent_total", {"reply": r}) for r in VOTE_REPLIES}
        assert replies == {"decided": VOTES, "rejected": 1, "counted": sends - VOTES - 1, "error": 0}
        assert sample("triggerx_keeper_votes_given_up_total", {"reason": "expired"}) == 1
        nursery.cancel_scope.cancel()
