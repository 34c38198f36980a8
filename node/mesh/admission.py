"""Peer admission: only registered peers may hold a connection or a stream (security review, finding 8).

Without it any libp2p peer could connect, open RPC streams and make the node buffer and verify
whatever it sends. The registry's answer comes from the `allowed_peers` callback given to
MeshNode (base58 peer id -> bool: the active operators' peer ids, the aggregators, the
gateway); the bootstrap peers in the config are always allowed, since we dial them ourselves.

Where a peer is checked, and why there:
- every new connection, inbound or outbound, right after the Noise handshake proves the
  remote peer id and before the connection's muxer starts: so a refused peer never gets to
  open a single stream (`host.build_host` installs `PeerGate.admits` in py-libp2p's resource
  manager, whose denial py-libp2p logs at DEBUG only: a refused peer cannot flood our logs);
- every inbound RPC stream (`rpc.RpcLayer`), in case the registry changed in between;
- every `recheck_interval` seconds over all open connections: a peer that left the registry
  (deactivated) loses its connections within that time.
Each refusal is counted in `mesh_peers_refused_total{stage}`. A callback that raises refuses
(fail closed) and is logged once per minute at most.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID

from node.mesh.host import swarm_of
from node.mesh.logdedup import LogDedup
from node.mesh.metrics import Metrics

logger = logging.getLogger(__name__)

AllowedPeers = Callable[[str], bool]
"""Whether a base58 peer id belongs to a registered participant (active operator, aggregator, gateway)."""


class PeerGate:
    """Decides which peers may be connected, and closes the connections of those that may not."""

    def __init__(self, allowed: AllowedPeers | None, always: Iterable[ID], metrics: Metrics) -> None:
        self._allowed = allowed
        self._always = frozenset(always)
        self._metrics = metrics
        self._log = LogDedup(logger)

    @property
    def enforcing(self) -> bool:
        """False when the node was built without `allowed_peers`: every peer is then admitted."""
        return self._allowed is not None

    def allows(self, peer_id: ID) -> bool:
        """Whether `peer_id` may hold connections and streams to this node now."""
        if self._allowed is None or peer_id in self._always:
            return True
        try:
            return bool(self._allowed(peer_id.to_base58()))
        except Exception:  # the registry lookup failed: refuse rather than admit a stranger
            self._log.log(logging.ERROR, "allowed_peers", "allowed_peers raised; refusing", exc_info=True)
            return False

    def admits(self, peer_id: ID, stage: str) -> bool:
        """`allows`, counting a refusal under `stage` (connection, stream, recheck)."""
        if self.allows(peer_id):
            return True
        self._metrics.inc("mesh_peers_refused_total", stage=stage)
        self._log.log(
            logging.INFO, ("refused", stage), "refused peer %s (%s): not registered", peer_id, stage
        )
        return False

    async def recheck(self, host: IHost, interval: float) -> None:
        """Run until cancelled: every `interval` s, close the connections of peers no longer allowed."""
        if not self.enforcing:
            return
        swarm = swarm_of(host)
        while True:
            await trio.sleep(interval)
            for peer_id in list(swarm.connections):
                if not self.admits(peer_id, "recheck"):
                    with trio.move_on_after(
                        interval
                    ):  # closing a frozen peer's connection must not stall the loop
                        await swarm.close_peer(peer_id)
