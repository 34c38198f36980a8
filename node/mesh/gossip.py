"""GossipSub topics: signed publishes, validation before delivery and forwarding, buffered delivery.

py-libp2p's defaults fixed here (docs/architecture.md, py-libp2p 2-5):
- heartbeat every second (default 120 s: the mesh would take minutes to form and repair), and
  adaptive gossip off: when it judges the network unhealthy (a peer lost, no peers) it sets
  the heartbeat to 30-60 s, so a partition took a minute to repair and the message cache,
  shifted per heartbeat, held a minute of our own publishes (measured: +1.3 MB/s RSS at
  20 x 64 KiB publishes/s);
- spam protection off: it forwards at most 10 messages/s per topic, our own publishes
  included, and drops the rest with only a warning;
- `publish()` never blocks and a peer's outbound queue silently drops past 32 RPCs, so a
  publish first waits (bounded) while any peer's queue is above `publish_high_water`;
- a subscription buffers 32 messages and drops the rest: one task per topic drains it at once
  into each local subscriber's own channel of `subscription_buffer` messages, and a full one
  is counted as `slow_consumer` instead of going unnoticed;
- validators are async and never raise (an escaping error kills the node);
- the equivocation check (same origin and seqno, different content) kept up to 1,000 whole
  messages, our own included: up to 1,000 x 256 KiB for the largest messages we accept. It
  keeps a 32-byte fingerprint per message instead (`lean_equivocation_check`).

Also: message ids are `sha256(origin peer || envelope)`, not py-libp2p's origin + seqno, whose
seqnos restart from the wall clock in seconds: a node restarted under load would reuse seqnos
its peers still remember, and its messages would vanish as duplicates (seqnos, still sent, now
start from the clock in nanoseconds). Envelopes are unique (random nonce), so content ids never
collide, and an old envelope re-injected by another peer gets a new id and meets the replay
check. The seen-message cache (`seen_ttl`) outlives the validation-result cache, which outlives
the freshness window, so a message delivered once is never delivered again on a cached verdict.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType

import msgspec
import trio
from libp2p.abc import IHost, INetStream
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

from node.mesh.envelope import EnvelopeSigner, decode_envelope, encode_envelope
from node.mesh.host import is_connected
from node.mesh.logdedup import LogDedup
from node.mesh.metrics import Metrics
from node.mesh.names import check_name
from node.mesh.validation import EnvelopeChecker, checksum

logger = logging.getLogger(__name__)

BACKPRESSURE_POLL_S = 0.002
RESET_TIMEOUT_S = 5.0
EQUIVOCATION_KEYS = 4096
"""Messages whose fingerprint the equivocation check keeps (py-libp2p kept 500-1,000 whole ones)."""
ACCEPTED_IDS = 65536
"""Ids of accepted messages kept to recognise concurrent duplicates (minutes of traffic at 500 msg/s)."""


class Delivery(msgspec.Struct, frozen=True):
    """A validated message from another node."""

    topic: str
    sender: str
    """The checksummed operator address that signed it."""
    payload: bytes
    sent_at_ms: int
    """The sender's clock (unix ms) when it signed the message."""


@dataclass(frozen=True)
class GossipSettings:
    """GossipSub tuning and the mesh's buffers."""

    heartbeat_interval: int = 1
    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    subscription_buffer: int = 1024
    """Messages held for each local subscriber before new ones are dropped (and counted)."""
    publish_high_water: int = 16
    """A publish waits while any peer's outbound queue (capacity 32 RPCs) holds this many."""
    publish_wait_timeout: float = 2.0
    """Seconds a publish waits for queues to drain before it goes out anyway (counted)."""


def message_id(message: rpc_pb2.Message) -> bytes:
    """sha256 of the origin peer and the data: unique per envelope and per injecting peer."""
    return hashlib.sha256(message.from_id + message.data).digest()


def new_pubsub(host: IHost, settings: GossipSettings, freshness_window_s: float) -> tuple[Pubsub, GossipSub]:
    """Pubsub over GossipSub for `host`; run both as services (py-libp2p's background_trio_service)."""
    router = GossipSub(
        # Not v1.2: its IDONTWANT sends a control RPC to every mesh peer for every message,
        # which on meshes of a few peers halved throughput (200-message burst over 3 nodes).
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=settings.degree,
        degree_low=settings.degree_low,
        degree_high=settings.degree_high,
        heartbeat_interval=settings.heartbeat_interval,
        spam_protection_enabled=False,
        adaptive_gossip_enabled=False,  # it overrides heartbeat_interval with 30-60 s (module doc)
    )
    router._check_equivocation = lean_equivocation_check()  # type: ignore[method-assign]
    window = max(1, math.ceil(freshness_window_s))
    pubsub = Pubsub(
        host,
        router,
        msg_id_constructor=message_id,
        seen_ttl=4 * window,
        validation_cache_ttl=2 * window,
    )
    # Seqnos still travel (and feed the equivocation check): start them past any previous run's.
    pubsub.counter = time.time_ns()
    return pubsub, router


def lean_equivocation_check() -> Callable[[rpc_pb2.Message], bool]:
    """GossipSub's equivocation check, remembering a fingerprint of each message, not the message.

    Same verdict as py-libp2p's (False when a message reuses an origin and seqno with other
    content), over the last EQUIVOCATION_KEYS messages, at ~100 bytes each instead of the
    whole message.
    """
    seen: OrderedDict[bytes, bytes] = OrderedDict()
    log = LogDedup(logger)

    def check(message: rpc_pb2.Message) -> bool:
        key = message.from_id + message.seqno
        fingerprint = hashlib.sha256(message.data + "\0".join(message.topicIDs).encode()).digest()
        first = seen.setdefault(key, fingerprint)
        if first != fingerprint:
            log.log(logging.WARNING, "equivocation", "equivocation from peer %s", ID(message.from_id))
            return False
        if len(seen) > EQUIVOCATION_KEYS:
            seen.popitem(last=False)
        return True

    return check


def guard_pubsub_streams(host: IHost, pubsub: Pubsub, router: GossipSub, metrics: Metrics) -> None:
    """Serve pubsub's inbound streams through a handler that survives a malformed RPC.

    py-libp2p's `Pubsub.stream_handler` catches stream errors but not protobuf's DecodeError:
    one RPC that does not parse (sent on purpose, or cut mid-message when a stalled peer
    resumes, which is how the partition test met it) escapes into the swarm and stops the
    whole node. Here it ends only that stream, like any other read error, and is counted in
    `mesh_gossip_streams_cut_total`.
    """
    log = LogDedup(logger)

    async def handler(stream: INetStream) -> None:
        try:
            await pubsub.stream_handler(stream)
        except Exception as error:  # DecodeError and whatever else py-libp2p lets escape
            peer_id = stream.muxed_conn.peer_id
            metrics.inc("mesh_gossip_streams_cut_total", reason="malformed")
            log.log(logging.WARNING, "malformed", "cut a gossip stream from %s: %r", peer_id, error)
            # An already broken stream has nothing left to release: its reset may fail.
            with trio.CancelScope(shield=True), trio.move_on_after(RESET_TIMEOUT_S), suppress(Exception):
                await stream.reset()
            pubsub._handle_dead_peer(peer_id)  # what py-libp2p does after the errors it does catch

    for protocol in router.get_protocols():
        host.set_stream_handler(protocol, handler)


def forget_peer_record(host: IHost, peer_id: ID) -> None:
    """Drop the signed peer record stored for `peer_id`, so that its next one is taken."""
    host.get_peerstore().peer_record_map.pop(peer_id, None)


async def keep_pubsub_peers(host: IHost, pubsub: Pubsub, interval: float) -> None:
    """Keep pubsub's peers in step with the host's connections, every `interval` seconds.

    py-libp2p opens a pubsub stream only when a connection is new to it: a peer that restarts
    (same peer id) and reconnects before its dead connection is noticed is skipped as already
    known, and when the dead stream is then dropped, the peer goes with it, although its new
    connection is up. It never gossips with us again (docs/architecture.md, py-libp2p 19).
    Here a peer whose stream's connection is closed is dropped, and a connected peer without
    a stream gets one. The peer's stored signed peer record goes too: pubsub ignores every
    message of a peer whose record it cannot store, and it refused the records of restarted
    keepers on the devnet (py-libp2p 19).
    """
    opening: set[ID] = set()

    async def open_stream(peer_id: ID) -> None:
        try:
            await pubsub._handle_new_peer_with_retry(peer_id)
        except Exception as error:  # a peer gone again: the next round tries anew
            logger.debug("no pubsub stream to %s: %r", peer_id, error)
        finally:
            opening.discard(peer_id)

    async with trio.open_nursery() as nursery:
        while True:
            await trio.sleep(interval)
            for peer_id, stream in list(pubsub.peers.items()):
                if getattr(stream.muxed_conn, "is_closed", False):
                    pubsub._handle_dead_peer(peer_id)
                    forget_peer_record(host, peer_id)
            for peer_id in host.get_connected_peers():
                if peer_id in pubsub.peers or peer_id in opening or not is_connected(host, peer_id):
                    continue
                if pubsub.is_peer_blacklisted(peer_id):
                    continue
                opening.add(peer_id)
                forget_peer_record(host, peer_id)
                nursery.start_soon(open_stream, peer_id)


class Subscription:
    """A local subscriber's messages on one topic: iterate it, and close it (or `async with`) when done.

    It holds up to `subscription_buffer` messages; past that, new ones are dropped and counted
    as `mesh_messages_dropped_total{reason="slow_consumer"}`. The node's own publishes are not
    delivered to it. Iteration ends when the subscription or the node closes.
    """

    def __init__(self, topic: str, subscribers: set[trio.MemorySendChannel[Delivery]], size: int) -> None:
        self.topic = topic
        self._send, self._receive = trio.open_memory_channel[Delivery](size)
        self._subscribers = subscribers
        subscribers.add(self._send)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Delivery:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def receive(self) -> Delivery:
        """The next message; trio.EndOfChannel once the subscription or the node is closed."""
        return await self._receive.receive()

    def close(self) -> None:
        """Stop receiving; buffered messages are discarded (the topic stays joined, so still relayed)."""
        self._subscribers.discard(self._send)
        self._send.close()
        self._receive.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class GossipLayer:
    """The node's topics: validators, delivery to local subscribers, and publishing."""

    def __init__(
        self,
        pubsub: Pubsub,
        router: GossipSub,
        signer: EnvelopeSigner,
        checker: EnvelopeChecker,
        metrics: Metrics,
        settings: GossipSettings,
        nursery: trio.Nursery,
    ) -> None:
        self._pubsub = pubsub
        self._router = router
        self._signer = signer
        self._checker = checker
        self._metrics = metrics
        self._settings = settings
        self._log = LogDedup(logger)  # both of its lines can recur per message: once a minute each
        self._nursery = nursery
        self._my_id = pubsub.my_id
        self._my_id_bytes = self._my_id.to_bytes()
        self._joined: set[str] = set()
        self._subscribers: dict[str, set[trio.MemorySendChannel[Delivery]]] = {}
        self._accepted: OrderedDict[bytes, None] = OrderedDict()

    async def join(self, topic: str) -> None:
        """Validate, deliver and relay `topic` from now on (idempotent).

        A node relays only topics it has joined, which is why aggregators join them all.
        """
        check_name(topic)
        if topic in self._joined:
            return
        self._joined.add(topic)
        self._subscribers[topic] = set()

        async def validate(forwarder: ID, message: rpc_pb2.Message) -> bool:
            try:
                return self._validate(topic, forwarder, message)
            except Exception:  # an error escaping a validator takes py-libp2p down (py-libp2p 5)
                self._log.log(
                    logging.ERROR, ("validator", topic), "gossip validator failed on %s", topic, exc_info=True
                )
                self._metrics.inc("mesh_messages_dropped_total", reason="validator_error")
                return False

        self._pubsub.set_topic_validator(topic, validate, is_async_validator=True)
        subscription = await self._pubsub.subscribe(topic)
        self._nursery.start_soon(self._pump, topic, subscription.receive_channel)

    def _validate(self, topic: str, forwarder: ID, message: rpc_pb2.Message) -> bool:
        # Our own publish (pushed with ourselves as forwarder) was sealed in `publish` just now.
        if forwarder == self._my_id and message.from_id == self._my_id_bytes:
            return True
        # py-libp2p marks a message seen only after validating it, so a copy arriving meanwhile
        # from another neighbour is validated too. It is no replay: drop it (delivering it would
        # deliver twice) as a duplicate, without checking its signature again.
        key = message_id(message)
        if key in self._accepted:
            self._metrics.inc("mesh_messages_duplicate_total", topic=topic)
            return False
        if isinstance(self._checker.check(message.data, topic), str):
            return False
        self._accepted[key] = None
        if len(self._accepted) > ACCEPTED_IDS:
            self._accepted.popitem(last=False)
        self._metrics.inc("mesh_messages_accepted_total", topic=topic)
        return True

    async def _pump(self, topic: str, channel: trio.MemoryReceiveChannel[rpc_pb2.Message]) -> None:
        # Drain everything buffered before yielding: py-libp2p's channel holds only 32 messages.
        # The channel is left open: py-libp2p would fail writing to a closed one.
        while True:
            try:
                message = channel.receive_nowait()
            except trio.WouldBlock:
                try:
                    message = await channel.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return
            if message.from_id != self._my_id_bytes:
                self._deliver(topic, message)

    def _deliver(self, topic: str, message: rpc_pb2.Message) -> None:
        envelope = decode_envelope(message.data)  # it passed the validator, so it decodes
        delivery = Delivery(topic, checksum(envelope.sender), envelope.payload, envelope.timestamp_ms)
        for send in self._subscribers[topic]:
            try:
                send.send_nowait(delivery)
            except trio.WouldBlock:
                self._metrics.inc("mesh_messages_dropped_total", reason="slow_consumer")
            else:
                self._metrics.inc("mesh_messages_delivered_total", topic=topic)

    async def subscribe(self, topic: str) -> Subscription:
        """A new local subscription to `topic` (joining it first if needed)."""
        await self.join(topic)
        return Subscription(topic, self._subscribers[topic], self._settings.subscription_buffer)

    def close(self) -> None:
        """End every local subscription's iteration."""
        for senders in self._subscribers.values():
            for send in senders:
                send.close()
            senders.clear()

    async def publish(self, topic: str, payload: bytes) -> None:
        """Sign `payload` and publish it on `topic`, after waiting (bounded) for peer queues to drain."""
        check_name(topic)
        data = encode_envelope(self._signer.seal(topic, payload))
        await self._wait_for_queues()
        await self._pubsub.publish(topic, data)
        self._metrics.inc("mesh_messages_published_total", topic=topic)

    async def _wait_for_queues(self) -> None:
        high_water = self._settings.publish_high_water
        queues = self._pubsub.peer_queues
        if all(len(queue) < high_water for queue in queues.values()):
            return
        self._metrics.inc("mesh_publish_backpressure_waits_total")
        with trio.move_on_after(self._settings.publish_wait_timeout):
            # py-libp2p's queues signal pushes, never pops: polling is the only way to see them drain.
            while any(len(queue) >= high_water for queue in queues.values()):  # noqa: ASYNC110
                await trio.sleep(BACKPRESSURE_POLL_S)
            return
        # A stuck peer (until health pings drop it) must not stop us publishing to the others.
        self._metrics.inc("mesh_publish_backpressure_timeouts_total")
        self._log.log(
            logging.WARNING,
            "backpressure",
            "publishing despite a full peer queue after %s s",
            self._settings.publish_wait_timeout,
        )

    def topic_peers(self, topic: str) -> list[str]:
        """Peers in this node's GossipSub mesh for `topic`: those it sends the topic's messages to."""
        return sorted(peer.to_base58() for peer in self._router.mesh.get(topic, ()))
