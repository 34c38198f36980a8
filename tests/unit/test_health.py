"""Heartbeats make keepers online; silence longer than the threshold makes them offline."""

from __future__ import annotations

import pytest

from node.health.tracker import HealthTracker


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
