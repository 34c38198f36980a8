"""MeshNode: the node's one libp2p host, its gossip topics and its request/response service.

    async with MeshNode(identity, operator, is_active, config, allowed_peers=peer_ids.__contains__) as node:
        results = await node.subscribe(RESULTS)
        await node.publish(HEARTBEATS, payload)
        reply = await node.request(peer_id, "vote", payload, timeout=2.0)

Everything runs in one trio nursery that the `async with` owns; leaving it closes the host,
listener included (py-libp2p 7: leaving `host.run()` alone leaves the TCP listener open, and
py-libp2p binds with SO_REUSEPORT, so a restarted node on the same port would silently share
its connections with the dead one's socket).

`allowed_peers` (base58 peer id -> bool) says which peers may connect at all (admission.py);
without it every peer is admitted and a warning says so at start.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import lru_cache
from types import TracebackType

import multiaddr
import trio
from eth_account.signers.local import LocalAccount
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID
from libp2p.tools.anyio_service import background_trio_service

from node.mesh.admission import AllowedPeers, PeerGate
from node.mesh.bootstrap import BackoffSettings, keep_connected
from node.mesh.envelope import EnvelopeSigner
from node.mesh.errors import MeshError, PeerUnreachableError
from node.mesh.gossip import (
    GossipLayer,
    GossipSettings,
    Subscription,
    guard_pubsub_streams,
    keep_pubsub_peers,
    new_pubsub,
)
from node.mesh.host import HostSettings, build_host, dial, is_connected, parse_peer_addr, peer_id_of
from node.mesh.metrics import Metrics
from node.mesh.names import ALL_TOPICS, check_method, check_name
from node.mesh.rpc import Handler, RpcLayer, RpcSettings
from node.mesh.validation import EnvelopeChecker, IsActive

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
PUBSUB_PEER_CHECK_S = 1.0  # how often pubsub peers are checked against connections (keep_pubsub_peers)


@dataclass(frozen=True)
class MeshConfig:
    """Where the node listens, whom it keeps connected to, and the mesh's limits."""

    chain_id: int
    """Envelopes are signed for this chain (EIP-712 domain); other networks' do not verify."""
    listen: str = "/ip4/127.0.0.1/tcp/0"
    bootstrap: tuple[str, ...] = ()
    """Multiaddrs ending in /p2p/<id> (the aggregators) kept connected; our own is skipped."""
    topics: tuple[str, ...] = ALL_TOPICS
    """Topics joined at start: validated, delivered and relayed even with no local subscriber."""
    freshness_window_s: float = 30.0
    """Envelopes signed more than this many seconds before or after now are `stale`."""
    replay_cache_per_sender: int = 16384
    """Accepted envelope digests remembered per sender (covers ~500 msg/s over a 30 s window)."""
    host: HostSettings = field(default_factory=HostSettings)
    gossip: GossipSettings = field(default_factory=GossipSettings)
    rpc: RpcSettings = field(default_factory=RpcSettings)
    backoff: BackoffSettings = field(default_factory=BackoffSettings)


@dataclass(frozen=True)
class _Running:
    """What a started node holds; `stack` undoes it all in order."""

    host: IHost
    gossip: GossipLayer
    rpc: RpcLayer
    stack: AsyncExitStack


def _describe(error: BaseException) -> str:
    # py-libp2p's startup errors arrive as nested ExceptionGroups (py-libp2p 12): name the leaves.
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


@lru_cache(maxsize=4096)
def _peer(peer_id: str) -> ID:
    try:
        return ID.from_base58(peer_id)
    except Exception as error:  # base58 and multihash decoders raise assorted types
        raise ValueError(f"not a peer id: {peer_id!r} ({error})") from None


class MeshNode:
    """The node's mesh presence; use as `async with MeshNode(...) as node`.

    Enter and leave it in the same trio task (it owns a nursery); to stop a node from another
    task, run it in its own task and end that.
    """

    def __init__(
        self,
        identity: KeyPair,
        operator: LocalAccount,
        is_active: IsActive,
        config: MeshConfig,
        *,
        allowed_peers: AllowedPeers | None = None,
    ) -> None:
        """`is_active` vets envelope senders (operator addresses), `allowed_peers` connecting peers."""
        multiaddr.Multiaddr(config.listen)  # ValueError now rather than deep inside the host
        for topic in config.topics:
            check_name(topic)
        self.config = config
        self.metrics = Metrics()
        self._identity = identity
        self._peer_id = peer_id_of(identity)
        self._signer = EnvelopeSigner(operator, config.chain_id)
        self._checker = EnvelopeChecker(
            config.chain_id,
            is_active,
            self.metrics,
            freshness_window_s=config.freshness_window_s,
            replay_cache_per_sender=config.replay_cache_per_sender,
        )
        self._bootstrap = [parse_peer_addr(address) for address in config.bootstrap]
        # The bootstrap peers come from our own config: always admitted.
        self._gate = PeerGate(allowed_peers, (peer.peer_id for peer in self._bootstrap), self.metrics)
        self._handlers: dict[str, Handler] = {}
        self._running: _Running | None = None

    @property
    def peer_id(self) -> str:
        """This node's base58 peer id."""
        return self._peer_id

    @property
    def address(self) -> str:
        """The operator address that signs this node's envelopes."""
        return self._signer.account.address

    @property
    def listen_addrs(self) -> list[str]:
        """Where peers can reach this node, as multiaddrs ending in /p2p/<peer id>."""
        return [str(address) for address in self._parts().host.get_addrs()]

    def _parts(self) -> _Running:
        if self._running is None:
            raise RuntimeError("the mesh node is not running: use it inside `async with`")
        return self._running

    async def __aenter__(self) -> MeshNode:
        if self._running is not None:
            raise RuntimeError("the mesh node is already running")
        stack = AsyncExitStack()
        try:
            self._running = await self._start(stack)
        except BaseException as error:
            await stack.aclose()
            if isinstance(error, Exception) and not isinstance(error, MeshError):
                raise MeshError(
                    f"cannot start the mesh node on {self.config.listen}: {_describe(error)}"
                ) from error
            raise
        return self

    async def _start(self, stack: AsyncExitStack) -> _Running:
        config = self.config
        if not self._gate.enforcing:
            logger.warning("peer admission is off (no allowed_peers): any libp2p peer may connect")
        host = build_host(self._identity, config.listen, config.host, self._gate.admits)
        # Registered before `host.run` is entered, so it runs after it is left: only close() frees the port.
        stack.push_async_callback(self._close_host, host)
        await stack.enter_async_context(host.run([multiaddr.Multiaddr(config.listen)]))
        if not host.get_transport_addrs():
            # py-libp2p logs a failed listen at DEBUG and runs on without a listener.
            raise MeshError(f"cannot listen on {config.listen}: address not local, or port unavailable")
        pubsub, router = new_pubsub(host, config.gossip, config.freshness_window_s)
        guard_pubsub_streams(host, pubsub, router, self.metrics)
        # Its seen-message cache sweeps in an OS thread that py-libp2p never stops (py-libp2p 14).
        stack.callback(pubsub.seen_messages.stop)
        await stack.enter_async_context(background_trio_service(pubsub))
        await stack.enter_async_context(background_trio_service(router))
        await pubsub.wait_until_ready()
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)
        gossip = GossipLayer(
            pubsub, router, self._signer, self._checker, self.metrics, config.gossip, nursery
        )
        stack.callback(gossip.close)
        rpc = RpcLayer(
            host,
            self._signer,
            self._checker,
            self.metrics,
            config.rpc,
            config.host.dial_timeout,
            nursery,
            self._handlers,
            self._gate,
        )
        stack.push_async_callback(rpc.close)
        for topic in config.topics:
            await gossip.join(topic)
        nursery.start_soon(self._gate.recheck, host, config.host.peer_recheck_interval)
        nursery.start_soon(keep_pubsub_peers, host, pubsub, PUBSUB_PEER_CHECK_S)
        own = ID.from_base58(self._peer_id)
        for peer in self._bootstrap:
            if peer.peer_id != own:
                nursery.start_soon(
                    keep_connected, host, peer, config.backoff, config.host.dial_timeout, self.metrics
                )
        return _Running(host, gossip, rpc, stack)

    async def _close_host(self, host: IHost) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            await host.close()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool | None:
        stack = self._parts().stack
        self._running = None
        return await stack.__aexit__(kind, error, trace)

    async def connect(self, address: str) -> str:
        """Connect to the peer at `address` (a multiaddr ending in /p2p/<id>); its peer id.

        PeerUnreachableError if it cannot be reached within the dial timeout. A peer py-libp2p
        blocked after a failed dial is unblocked first: asking to connect means trying again.
        A peer that `allowed_peers` refuses is not dialed (PeerUnreachableError).
        """
        peer = parse_peer_addr(address)
        if not self._gate.allows(peer.peer_id):
            raise PeerUnreachableError(f"{peer.peer_id} is not an allowed peer")
        await dial(self._parts().host, peer, self.config.host.dial_timeout)
        return peer.peer_id.to_base58()

    def connected_peers(self) -> list[str]:
        """Peer ids of every peer with an open connection."""
        host = self._parts().host
        # py-libp2p lists every peer with a connection entry, closed ones included: check each.
        return sorted(peer.to_base58() for peer in host.get_connected_peers() if is_connected(host, peer))

    def topic_peers(self, topic: str) -> list[str]:
        """Peer ids of the peers this node sends `topic`'s messages to (its GossipSub mesh)."""
        return self._parts().gossip.topic_peers(topic)

    async def publish(self, topic: str, payload: bytes) -> None:
        """Sign `payload` and publish it on `topic` (first waiting, bounded, while peers are backed up)."""
        await self._parts().gossip.publish(topic, payload)

    async def subscribe(self, topic: str) -> Subscription:
        """Messages other nodes publish on `topic` from now on, validated (see Subscription)."""
        return await self._parts().gossip.subscribe(topic)

    def register_handler(self, method: str, handler: Handler) -> None:
        """Answer `method` requests with `handler(sender_address, payload) -> reply payload`.

        Register before starting the node so that no early request finds the method unknown.
        A handler refuses a request by raising RequestRefused: the caller gets
        RemoteError("rejected") with its message. Any other exception is a failure, returned
        as RemoteError("handler_error") and logged.
        """
        self._handlers[check_method(method)] = handler

    async def request(self, peer_id: str, method: str, payload: bytes, timeout: float) -> bytes:
        """Call `method` on `peer_id` with `payload`; the reply's payload.

        Raises RequestTimeoutError (no reply within `timeout` s, dial included), PeerUnreachableError,
        ConnectionLostError, RemoteError (the peer's handler failed or refused), InvalidReplyError:
        all MeshError.
        """
        return await self._parts().rpc.request(_peer(peer_id), method, payload, timeout)
