"""Staying connected to the bootstrap peers (the aggregators): redial with bounded backoff, forever.

One task per bootstrap peer checks the connection every `check_interval` seconds; when it is
gone (the peer restarted, or a health ping failed) it dials again, waiting `initial`, then
twice as long after each failure up to `maximum` (with +-20% jitter so that a restarted
aggregator is not hit by every keeper in the same instant).

Every path through the loop sleeps (security review, finding 3: a gateway spun on a
"successful" connect that left it unconnected and logged 10 million lines in 11 minutes):
- a dial counts as a success only if it leaves an open connection (`host.dial` checks);
- the backoff is reset only by a connection that stayed up `stable_after` seconds, so a peer
  that accepts and then drops us at once (it restarts, or does not admit us) is redialed with
  a growing delay, not every `check_interval`;
- the loop's log lines go through LogDedup: one line per event per minute, then a count.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import trio
from libp2p.abc import IHost
from libp2p.peer.peerinfo import PeerInfo

from node.mesh.errors import PeerUnreachableError
from node.mesh.host import dial, drop_stale_connections, is_connected
from node.mesh.logdedup import LogDedup
from node.mesh.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackoffSettings:
    """How the bootstrap loop paces its dials."""

    initial: float = 0.25
    maximum: float = 10.0
    check_interval: float = 0.5
    stable_after: float = 5.0
    """Seconds a connection must last before the next loss of it redials without backoff."""


class _Backoff:
    """The delay before the next dial: doubles on every failure, reset by a stable connection."""

    def __init__(self, settings: BackoffSettings) -> None:
        self._settings = settings
        self.delay = settings.initial

    async def wait(self) -> None:
        await trio.sleep(self.delay * random.uniform(0.8, 1.2))
        self.delay = min(2 * self.delay, self._settings.maximum)

    def reset(self) -> None:
        self.delay = self._settings.initial


async def keep_connected(
    host: IHost, peer: PeerInfo, settings: BackoffSettings, dial_timeout: float, metrics: Metrics
) -> None:
    """Run until cancelled: whenever `host` is not connected to `peer`, dial it with backoff."""
    backoff = _Backoff(settings)
    log = LogDedup(logger)
    name = peer.peer_id
    while True:
        if is_connected(host, peer.peer_id):
            lasted = await _until_disconnected(host, peer, settings.check_interval)
            metrics.inc("mesh_bootstrap_disconnects_total")
            log.log(logging.INFO, "lost", "lost the bootstrap peer %s after %.1f s", name, lasted)
            if lasted >= settings.stable_after:
                backoff.reset()
            else:  # it accepted us and dropped us at once (restarting, or not admitting us): back off
                await backoff.wait()
        # `dial` drops them too; here they are counted, to see how often py-libp2p leaves them.
        if stale := drop_stale_connections(host, peer.peer_id):
            metrics.inc("mesh_bootstrap_stale_entries_dropped_total", stale)
        try:
            await dial(host, peer, dial_timeout)
        except PeerUnreachableError as error:
            metrics.inc("mesh_bootstrap_dials_total", outcome="failed")
            log.log(
                logging.INFO,
                "unreachable",
                "bootstrap peer unreachable, retrying in %.2f s: %s",
                backoff.delay,
                error,
            )
            await backoff.wait()
        else:
            metrics.inc("mesh_bootstrap_dials_total", outcome="connected")
            log.flush("unreachable")
            log.log(logging.INFO, "connected", "connected to bootstrap peer %s", name)


async def _until_disconnected(host: IHost, peer: PeerInfo, interval: float) -> float:
    """Sleep until `host` loses `peer`; how many seconds the connection lasted (from now)."""
    since = trio.current_time()
    while is_connected(host, peer.peer_id):  # noqa: ASYNC110 - py-libp2p has no per-peer disconnect event
        await trio.sleep(interval)
    return trio.current_time() - since
