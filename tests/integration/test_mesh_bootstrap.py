"""Security review finding 3: the bootstrap loop always paces itself, and repeated log lines are counted.

Found live: after a stall the gateway logged "connected to bootstrap peer" in a tight loop
(10 million lines in 11 minutes, 2.5 GB RSS). py-libp2p's `connect` returns at once while any
connection entry for the peer remains, even a closed one, and the loop never slept on that
"success". These tests plant such an entry by hand (the state py-libp2p leaves when a
connection's cleanup hangs) on real hosts, and check the loop's dials and log lines.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID

from node.mesh import LogDedup, MeshNode

# The host and logging internals of node.mesh, tested here.
from node.mesh.host import is_connected, route_libp2p_logging, swarm_of
from node.mesh.logdedup import DedupHandler
from tests.integration.test_mesh import free_port, make_node, until
from tests.integration.test_mesh_admission import gated_node, peer_of

BOOTSTRAP_LOGGER = "node.mesh.bootstrap"


def bootstrap_lines(caplog: pytest.LogCaptureFixture) -> int:
    return sum(record.name == BOOTSTRAP_LOGGER for record in caplog.records)


def dials(node: MeshNode) -> int:
    return sum(node.metrics.get("mesh_bootstrap_dials_total", outcome=o) for o in ("connected", "failed"))


async def plant_stale_entry(node: MeshNode, peer: ID, conns: list[Any] | None = None) -> None:
    """Close `node`'s connections to `peer` (or take `conns`, closed) and put the closed entries back.

    That is the state py-libp2p leaves when a connection's cleanup hangs on a frozen peer.
    """
    swarm = swarm_of(node._parts().host)
    if conns is None:
        conns = swarm.get_connections(peer)
        for conn in conns:
            await conn.close()
    swarm.connections.setdefault(peer, []).extend(conns)
    assert swarm.connections[peer]
    assert not is_connected(node._parts().host, peer)


@pytest.mark.timeout(60)  # before the fix the loop spins without a checkpoint: only this timeout ends it
async def test_finding3_a_stale_connection_entry_does_not_make_the_bootstrap_loop_spin(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO, logger=BOOTSTRAP_LOGGER)
    listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
    aggregator = make_node(1, listen=listen)
    peer = ID.from_base58(aggregator.peer_id)
    async with make_node(0, bootstrap=(f"{listen}/p2p/{aggregator.peer_id}",)) as keeper:
        host = keeper._parts().host
        async with aggregator:
            await until(lambda: is_connected(host, peer))
            # The peer is alive: the stale entry is cleaned up and the peer redialed.
            before = (dials(keeper), bootstrap_lines(caplog))
            await plant_stale_entry(keeper, peer)
            await until(lambda: is_connected(host, peer))
            await trio.sleep(1.0)
            assert 1 <= dials(keeper) - before[0] <= 3  # a redial can race the peer's cleanup of the old one
            assert bootstrap_lines(caplog) - before[1] <= 2
            last = swarm_of(host).get_connections(peer)
        await until(lambda: not is_connected(host, peer))

        # The peer is gone and its entry stale: dials back off, and the lines say so once.
        await plant_stale_entry(keeper, peer, last)
        before = (dials(keeper), bootstrap_lines(caplog))
        await trio.sleep(4.0)
        # Backoff 0.25, 0.5, 1, 2 s (+-20%): at most about 4 dials in 4 s, where the old loop made
        # millions (fewer on a loaded machine, where a failing dial itself takes a while).
        assert 1 <= dials(keeper) - before[0] <= 6
        assert bootstrap_lines(caplog) - before[1] <= 2


async def test_finding3_a_peer_that_drops_us_at_once_is_redialed_with_backoff(
    caplog: pytest.LogCaptureFixture,
):
    """The aggregator does not admit us: each dial gets through the handshake, then is closed."""
    caplog.set_level(logging.INFO, logger=BOOTSTRAP_LOGGER)
    listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
    async with (
        gated_node(21, 1, set(), listen=listen) as aggregator,
        make_node(0, bootstrap=(f"{listen}/p2p/{peer_of(21)}",)) as keeper,
    ):
        await trio.sleep(5.0)
        assert aggregator.metrics.get("mesh_peers_refused_total", stage="connection") >= 1
        assert keeper.peer_id not in aggregator.connected_peers()
        assert dials(keeper) <= 6  # 0.25 + 0.5 + 1 + 2 s of backoff, not one every 0.5 s
        assert bootstrap_lines(caplog) <= 3


def test_finding3_repeated_log_events_are_logged_once_with_a_count(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="test.dedup")
    now = [1000.0]
    log = LogDedup(logging.getLogger("test.dedup"), window_s=60, clock=lambda: now[0])
    for attempt in range(1235):
        log.log(logging.INFO, "connected", "connected to bootstrap peer %s (attempt %d)", "P", attempt)
        now[0] += 0.01
    assert [record.getMessage() for record in caplog.records] == ["connected to bootstrap peer P (attempt 0)"]
    now[0] = 1060.0
    log.log(logging.INFO, "connected", "connected to bootstrap peer %s (attempt %d)", "P", 1235)
    assert caplog.records[-1].getMessage() == (
        "connected to bootstrap peer P (attempt 1235) (repeated 1234 times in the last 60 s)"
    )
    # A different event is not swallowed by another's window; flush reports what is pending.
    log.log(logging.WARNING, "lost", "lost %s", "P")
    log.log(logging.WARNING, "lost", "lost %s", "P")
    now[0] += 5
    log.flush("lost")
    assert [record.getMessage() for record in caplog.records[-2:]] == [
        "lost P",
        "lost P (repeated 1 times in the last 5 s)",
    ]
    assert len(caplog.records) == 4


def test_finding3_py_libp2p_warnings_repeated_per_message_are_logged_once(caplog: pytest.LogCaptureFixture):
    """py-libp2p warned once per publish (~20 lines/s) about a peer's full pending queue after a restart."""
    route_libp2p_logging()
    libp2p_logger = logging.getLogger("libp2p.pubsub.gossipsub")
    for number in range(500):
        libp2p_logger.warning(
            "pending message queue for peer %s exceeded limit (%d > %d)", "P", 100 + number, 100
        )
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("libp2p")]
    assert lines == ["pending message queue for peer P exceeded limit (100 > 100)"]


def test_finding3_dedup_handler_reports_the_count_after_its_window(caplog: pytest.LogCaptureFixture):
    now = [0.0]
    source = logging.getLogger("test.dedup.source")
    source.propagate = False
    source.addHandler(DedupHandler(logging.getLogger(), window_s=60, clock=lambda: now[0]))
    try:
        for _ in range(1235):
            source.warning("health check failed for %s", "P")
        now[0] = 61.0
        source.warning("health check failed for %s", "P")
    finally:
        source.handlers.clear()
    assert [record.getMessage() for record in caplog.records] == [
        "health check failed for P",
        "health check failed for P (repeated 1234 times in the last 61 s)",
    ]
