"""Security review finding 2 (low): the replay cache must never forget an envelope that is still fresh.

The checker is the real one (the node's); the last test runs the same through a node's
request/response service on real hosts.
"""

from __future__ import annotations

import time

import pytest
import trio

from node.mesh import HEARTBEATS, EnvelopeSigner, Metrics, RemoteError

# The envelope codec and validation internals of node.mesh, tested here.
from node.mesh.envelope import encode_envelope
from node.mesh.validation import EnvelopeChecker, ReplayCache
from tests.integration.test_mesh import ACTIVE, CHAIN_ID, OPERATORS, make_node


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def checker(window_s: float, per_sender: int) -> tuple[EnvelopeChecker, Metrics]:
    metrics = Metrics()
    return (
        EnvelopeChecker(
            CHAIN_ID,
            ACTIVE.__contains__,
            metrics,
            freshness_window_s=window_s,
            replay_cache_per_sender=per_sender,
        ),
        metrics,
    )


def test_finding2_a_sender_over_capacity_is_refused_and_its_fresh_envelopes_stay_remembered():
    check, metrics = checker(window_s=30, per_sender=4)
    signer = EnvelopeSigner(OPERATORS[0], CHAIN_ID)
    sent = [encode_envelope(signer.seal(HEARTBEATS, bytes([number]))) for number in range(6)]
    assert [isinstance(check.check(data, HEARTBEATS), str) for data in sent[:4]] == [False] * 4
    # The flood: refused (and counted) rather than evicting the first, still fresh, envelopes...
    assert [check.check(data, HEARTBEATS) for data in sent[4:]] == ["flood", "flood"]
    # ...so that replaying them is still caught.
    assert [check.check(data, HEARTBEATS) for data in sent[:4]] == ["replay"] * 4
    assert (metrics.dropped("flood"), metrics.dropped("replay")) == (2, 4)
    # Another sender is not affected by this one's flood.
    other = EnvelopeSigner(OPERATORS[1], CHAIN_ID).seal(HEARTBEATS, b"other")
    assert not isinstance(check.check(encode_envelope(other), HEARTBEATS), str)


async def test_finding2_digests_leave_exactly_when_their_envelopes_go_stale():
    check, metrics = checker(window_s=1, per_sender=3)
    signer = EnvelopeSigner(OPERATORS[0], CHAIN_ID)
    start = now_ms()
    # Out of timestamp order on purpose: a future-dated envelope first must not pin older ones.
    stamps = [start + 900, start - 700, start - 800]
    sent = [encode_envelope(signer.seal(HEARTBEATS, b"%d" % stamp, timestamp_ms=stamp)) for stamp in stamps]
    assert [isinstance(check.check(data, HEARTBEATS), str) for data in sent] == [False] * 3
    assert check.check(encode_envelope(signer.seal(HEARTBEATS, b"next")), HEARTBEATS) == "flood"
    await trio.sleep(0.35)  # the two past-dated ones are stale now, the future-dated one is not
    assert check.check(sent[0], HEARTBEATS) == "replay"
    assert [check.check(data, HEARTBEATS) for data in sent[1:]] == ["stale", "stale"]
    assert not isinstance(check.check(encode_envelope(signer.seal(HEARTBEATS, b"room")), HEARTBEATS), str)
    assert metrics.dropped("flood") == 1


def test_finding2_replay_cache_keeps_an_entry_until_its_expiry_and_no_longer():
    cache = ReplayCache(window_ms=1000, per_sender=2)
    cache.add(b"s", b"a", timestamp_ms=10_000)
    assert cache.seen(b"s", b"a", now_ms=11_000)  # at exactly t + window: still fresh
    assert not cache.seen(b"s", b"a", now_ms=11_001)
    assert cache.size(b"s") == 0


async def test_finding2_a_flooding_requester_is_refused_over_rpc():
    capacity = 8

    async def echo(sender: str, payload: bytes) -> bytes:
        return payload

    server = make_node(1, replay_cache_per_sender=capacity)
    server.register_handler("echo", echo)
    async with server, make_node(0) as client:
        await client.connect(server.listen_addrs[0])
        for number in range(capacity):
            assert await client.request(server.peer_id, "echo", b"%d" % number, timeout=5) == b"%d" % number
        with pytest.raises(RemoteError, match="flood"):
            await client.request(server.peer_id, "echo", b"one too many", timeout=5)
        assert server.metrics.dropped("flood") == 1
