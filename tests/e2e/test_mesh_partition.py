"""Acceptance (security review, finding 3): a node cut off from its bootstrap peer stays quiet and flat.

The bootstrap peer runs in a process of its own (tests/integration/mesh_peer.py) on a fixed
port. It is frozen (SIGSTOP) for 30 s and thawed, then killed and restarted on the same port.
All along, the node under test publishes 16 KiB every 50 ms, as a busy node would. It runs
here, on real libp2p hosts over 127.0.0.1, logging at INFO like a production node
(`triggerx-node` configures the root logger so). Over the whole episode it must reconnect
each time, with backoff, while its log grows by fewer than 100 lines and its RSS by less than
30 MB. Before the fix this episode made the node spin during the freeze, logging "connected
to bootstrap peer" ~10,000 times a second and never getting to send the SIGCONT (the
traffic is what makes py-libp2p leave a closed connection entry behind); the gateway that
found the bug logged 10 million lines in 11 minutes and grew to 2.5 GB.
"""

from __future__ import annotations

import gc
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from node.mesh import HEARTBEATS, MeshConfig, MeshNode, identity_from_seed, parse_peer_addr
from tests.integration.test_mesh import ACTIVE, CHAIN_ID, LOCALHOST, OPERATORS, ROOT, free_port

pytestmark = pytest.mark.slow

FROZEN_S = 30.0
MAX_LOG_LINES = 100
MAX_RSS_GROWTH = 30 * 1024 * 1024
TRAFFIC_BYTES = 16 * 1024
TRAFFIC_PERIOD_S = 0.05
RECONNECT_WAIT_S = 30.0
"""Upper bound on reconnecting after the peer is back (backoff tops out at 10 s, a dial at 5 s)."""


class LineCounter(logging.Handler):
    """Counts the log lines the node writes (and keeps them, to show when the bound is broken)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name} {record.getMessage()}")


def rss_bytes() -> int:
    """This process's resident set size (the node under test runs in it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@asynccontextmanager
async def production_logging() -> AsyncIterator[LineCounter]:
    """The root logger at INFO with a counting handler, as `triggerx-node` sets it up."""
    root = logging.getLogger()
    counter = LineCounter()
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(counter)
    try:
        yield counter
    finally:
        root.removeHandler(counter)
        root.setLevel(level)


async def start_peer(listen: str) -> tuple[trio.Process, str]:
    """The bootstrap peer in its own process, listening on `listen`; the process and its multiaddr."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.integration.mesh_peer", listen], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert process.stdout is not None
    line = b""
    with trio.fail_after(30):
        while not line.endswith(b"\n"):
            chunk = await process.stdout.receive_some(1)
            if not chunk:
                raise EOFError(f"the peer process exited before printing its address: {line!r}")
            line += chunk
    return process, line.decode().strip()


async def stop(process: trio.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGCONT)  # a stopped process cannot die of SIGKILL until resumed
        process.kill()
        await process.wait()


async def wait_for(condition: object, timeout: float, what: str) -> float:
    """Wait until `condition()` holds; the seconds it took. Fails naming `what` past `timeout`."""
    start = trio.current_time()
    with trio.move_on_after(timeout):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - no event for connection state
            await trio.sleep(0.05)
        return trio.current_time() - start
    pytest.fail(f"{what} did not happen within {timeout} s")


async def publish_steadily(node: MeshNode) -> None:
    """Traffic on the connection that is about to stall: what fills its buffers."""
    while True:
        await node.publish(HEARTBEATS, bytes(TRAFFIC_BYTES))
        await trio.sleep(TRAFFIC_PERIOD_S)


@pytest.mark.timeout(240)  # before the fix the node spins and never thaws its peer: this ends it
async def test_a_node_cut_off_from_its_bootstrap_peer_reconnects_with_a_quiet_log_and_flat_rss():
    listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
    process, address = await start_peer(listen)
    peer_id = parse_peer_addr(address).peer_id.to_base58()
    config = MeshConfig(chain_id=CHAIN_ID, listen=LOCALHOST, bootstrap=(address,))
    node = MeshNode(
        identity_from_seed(b"\x31" * 32),
        OPERATORS[0],
        ACTIVE.__contains__,
        config,
        allowed_peers={peer_id}.__contains__,
    )
    try:
        async with production_logging() as log, node, trio.open_nursery() as nursery:
            await wait_for(lambda: peer_id in node.connected_peers(), 15, "the first connection")
            nursery.start_soon(publish_steadily, node)
            await trio.sleep(2.0)  # let identify and the gossip mesh settle before the baseline
            gc.collect()
            rss_before, lines_before = rss_bytes(), len(log.lines)

            # 1. The peer freezes for 30 s (TCP stays up: only failed health pings can tell), then thaws.
            process.send_signal(signal.SIGSTOP)
            dropped_after = await wait_for(
                lambda: peer_id not in node.connected_peers(), 25, "noticing the freeze"
            )
            await trio.sleep(FROZEN_S - dropped_after)
            process.send_signal(signal.SIGCONT)
            back_after_thaw = await wait_for(
                lambda: peer_id in node.connected_peers(), RECONNECT_WAIT_S, "thaw"
            )

            # 2. The peer dies and restarts on the same port (same identity).
            process.kill()
            await process.wait()
            await wait_for(lambda: peer_id not in node.connected_peers(), 25, "noticing the death")
            await trio.sleep(3.0)
            process, _ = await start_peer(listen)
            back_after_restart = await wait_for(
                lambda: peer_id in node.connected_peers(), RECONNECT_WAIT_S, "restart"
            )

            await trio.sleep(1.0)
            gc.collect()
            growth, lines = rss_bytes() - rss_before, log.lines[lines_before:]
            failed = node.metrics.get("mesh_bootstrap_dials_total", outcome="failed")
            connected = node.metrics.get("mesh_bootstrap_dials_total", outcome="connected")
            stale = node.metrics.get("mesh_bootstrap_stale_entries_dropped_total")
            print(  # the figures, for `pytest -s`
                f"\nfreeze noticed after {dropped_after:.1f} s; reconnected {back_after_thaw:.1f} s after"
                f" the thaw and {back_after_restart:.1f} s after the restart; dials: {connected} connected,"
                f" {failed} failed; stale entries dropped: {stale}; log lines: {len(lines)};"
                f" RSS growth: {growth / 2**20:.1f} MiB"
            )
            assert len(lines) < MAX_LOG_LINES, "\n".join(lines)
            assert growth < MAX_RSS_GROWTH
            # Backoff: ~35 s without the peer, 0.25 s doubling to 10 s: about a dozen dials, not thousands.
            assert failed <= 25
            nursery.cancel_scope.cancel()
    finally:
        await stop(process)
