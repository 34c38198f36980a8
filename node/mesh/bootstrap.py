"""Staying connected to the bootstrap peers (the aggregators): redial with bounded backoff, forever.

One task per bootstrap peer checks the connection every `check_interval` seconds; when it is
gone (the peer restarted, or a health ping failed) it dials again, waiting `initial`, then
twice as long after each failure up to `maximum` (with +-20% jitter so that a restarted
aggregator is not hit by every keeper in the same instant). A success resets the delay.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import trio
from libp2p.abc import IHost
from libp2p.peer.peerinfo import PeerInfo

from node.mesh.errors import PeerUnreachableError
from node.mesh.host import dial, is_connected
from node.mesh.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackoffSettings:
    """How the bootstrap loop paces its dials."""

    initial: float = 0.25
    maximum: float = 10.0
    check_interval: float = 0.5


async def keep_connected(
    host: IHost, peer: PeerInfo, settings: BackoffSettings, dial_timeout: float, metrics: Metrics
) -> None:
    """Run until cancelled: whenever `host` is not connected to `peer`, dial it with backoff."""
    delay = settings.initial
    while True:
        if is_connected(host, peer.peer_id):
            await trio.sleep(settings.check_interval)
            continue
        try:
            await dial(host, peer, dial_timeout)
        except PeerUnreachableError as error:
            metrics.inc("mesh_bootstrap_dials_total", outcome="failed")
            logger.info("bootstrap peer unreachable, retrying in %.2f s: %s", delay, error)
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(2 * delay, settings.maximum)
        else:
            metrics.inc("mesh_bootstrap_dials_total", outcome="connected")
            logger.info("connected to bootstrap peer %s", peer.peer_id)
            delay = settings.initial
