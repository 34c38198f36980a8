"""Heartbeats make keepers online; silence longer than the threshold makes them offline."""

from __future__ import annotations

import dataclasses

import pytest
from libp2p.peer.id import ID

from gateway import HealthTracker, heartbeat_peer, listen_addrs

# The module's limit, tested here (not the gateway's API).
from gateway.health import MAX_LISTEN_ADDRS
from node.mesh import identity_from_seed
from protocol import Operator


def test_online_until_silent_for_longer_than_the_threshold():
    tracker = HealthTracker(offline_after=15)
    assert tracker.heartbeat("0xa", "peer-a", at=100) is True
    assert tracker.heartbeat("0xa", "peer-a", at=105) is False
    assert [h.address for h in tracker.online(120)] == ["0xa"]
    assert tracker.online(120.5) == []
    assert tracker.heartbeat("0xa", "peer-a2", at=130) is True  # back online, maybe a new peer id
    assert tracker.keepers["0xa"].peer_id == "peer-a2"


def test_late_and_duplicate_heartbeats_change_nothing():
    tracker = HealthTracker(offline_after=15)
    tracker.heartbeat("0xa", "p", at=100)
    assert tracker.heartbeat("0xa", "p", at=100) is False
    assert tracker.heartbeat("0xa", "p", at=90) is False
    assert tracker.keepers["0xa"].last_seen == 100


def test_uptime_counts_silence_beyond_the_threshold_as_downtime():
    tracker = HealthTracker(offline_after=10)
    for at in (0, 5, 10):
        tracker.heartbeat("0xa", "p", at=at)
    tracker.heartbeat("0xa", "p", at=40)  # offline from 20 to 40
    health = tracker.keepers["0xa"]
    assert health.uptime(40, 10) == pytest.approx(20 / 40)
    assert health.uptime(45, 10) == pytest.approx(25 / 45)


def test_low_a_heartbeat_is_bound_to_the_registered_peer_id():
    """Heartbeats were keyed by the peer id they claimed: a keeper could announce another
    keeper's peer id with its own addresses and have its assignments dialled to itself."""
    mine, theirs = (ID.from_pubkey(identity_from_seed(bytes([i]) * 32).public_key) for i in (1, 2))
    operator = Operator(0, "0x" + "11" * 20, 100, True, b"", mine.to_bytes())
    assert heartbeat_peer(operator, mine.to_base58()) == mine.to_base58()
    assert heartbeat_peer(operator, theirs.to_base58()) is None
    assert heartbeat_peer(dataclasses.replace(operator, active=False), mine.to_base58()) is None
    assert heartbeat_peer(None, mine.to_base58()) is None
    assert heartbeat_peer(dataclasses.replace(operator, peer_id=b"junk"), mine.to_base58()) is None


def test_low_announced_addresses_are_bounded():
    announced = [f"/ip4/127.0.0.1/tcp/{4000 + i}" for i in range(1000)] + ["/dns4/" + "a" * 10_000]
    assert listen_addrs(announced) == announced[:MAX_LISTEN_ADDRS]
    assert listen_addrs(["/dns4/" + "a" * 10_000, "/ip4/1.2.3.4/tcp/1"]) == ["/ip4/1.2.3.4/tcp/1"]
