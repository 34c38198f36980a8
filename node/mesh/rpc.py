"""Request/response: named methods over ONE persistent framed stream per peer pair.

A stream per request (py-libp2p's `RequestResponse`) at ~4x the latency
of a kept stream (2.5 ms vs 0.62 ms p50), so each pair of peers keeps one `/triggerx/rpc/1`
stream, opened by whoever first needs it and then used by both sides for requests and
replies, matched by request id. Every request and every reply is a signed envelope, checked
like gossip (a reply must also name the request's nonce in `ref`). Each request has its own
timeout covering the dial too; a handler has its own timeout on the serving side; a stream
that breaks fails every request waiting on it at once.

What a peer can make this node hold is bounded (security review, finding 8): only allowed
peers get streams (admission.py), each at most `max_streams_per_peer` of them (a pair needs
one, two when both open at once; the rest are reset and counted), each buffering at most one
frame of `max_frame` bytes, which must arrive within `frame_timeout` of its first byte.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from node.mesh.admission import PeerGate
from node.mesh.channel import FAILURE, REPLY, REQUEST, Channel, Pending, RpcFrame
from node.mesh.envelope import Envelope, EnvelopeSigner, encode_envelope
from node.mesh.errors import (
    ConnectionLostError,
    FrameError,
    InvalidReplyError,
    PeerUnreachableError,
    RemoteError,
    RequestRefused,
    RequestTimeoutError,
)
from node.mesh.host import dial, is_connected
from node.mesh.logdedup import LogDedup
from node.mesh.metrics import Metrics
from node.mesh.names import RPC_PROTOCOL, reply_kind, request_kind
from node.mesh.validation import EnvelopeChecker, checksum

logger = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[bytes]]
"""A method's server side: (checksummed sender address, request payload) -> reply payload."""

# `rejected`: the handler refused the request (RequestRefused), final; `bad_envelope`: the
# request's envelope did not pass (stale, flooding, unknown or bad signer), maybe transient.
FAILURE_CODES = ("unknown_method", "bad_envelope", "rejected", "handler_error", "handler_timeout", "busy")
"""What a failure frame says went wrong (RemoteError.code)."""
MAX_DETAIL = 1000
"""Characters of a failure's explanation sent back (an exception's text can be huge)."""


@dataclass(frozen=True)
class RpcSettings:
    """Limits of the request/response layer."""

    max_frame: int = 256 * 1024
    """Largest frame in bytes, either way. Our largest message is an assignment carrying a
    transaction's calldata, and nodes (geth's pool) refuse transactions over 128 KiB: twice that
    leaves room for the rest. Each stream may buffer this much, so it bounds a peer's memory."""
    frame_timeout: float = 10.0
    """Seconds a frame may take from its first byte to its last (a half-sent frame is cut off)."""
    max_streams_per_peer: int = 4
    """Open RPC streams per peer, both directions together; further inbound ones are reset."""
    handler_timeout: float = 30.0
    """Seconds a handler may run before the caller is told `handler_timeout`."""
    write_timeout: float = 10.0
    """Seconds one frame may take to write before the stream is considered dead."""
    max_handlers_per_peer: int = 256
    """Concurrent handlers per peer; past that, requests are refused as `busy`."""


class RpcLayer:
    """The node's side of `/triggerx/rpc/1`: its handlers, its channels, its requests."""

    def __init__(
        self,
        host: IHost,
        signer: EnvelopeSigner,
        checker: EnvelopeChecker,
        metrics: Metrics,
        settings: RpcSettings,
        dial_timeout: float,
        nursery: trio.Nursery,
        handlers: dict[str, Handler],
        gate: PeerGate,
    ) -> None:
        self._host = host
        self._gate = gate
        self._signer = signer
        self._checker = checker
        self._metrics = metrics
        self._settings = settings
        self._dial_timeout = dial_timeout
        self._nursery = nursery
        self._handlers = handlers  # the node's: handlers registered before start are served too
        self._channels: dict[ID, Channel] = {}
        self._opening: dict[ID, trio.Lock] = {}
        self._all: set[Channel] = set()
        self._streams: Counter[ID] = Counter()
        """Open channels per peer (the per-peer cap)."""
        self._running: Counter[ID] = Counter()
        """Handlers running per peer, over all its channels (a peer must not escape the cap by
        opening a new stream while the old one's handlers run)."""
        self._log = LogDedup(logger)
        host.set_stream_handler(TProtocol(RPC_PROTOCOL), self._accept)

    async def request(self, peer_id: ID, method: str, payload: bytes, timeout: float) -> bytes:
        """`method(payload)` on `peer_id`, its reply payload; a MeshError subclass on any failure."""
        envelope = self._signer.seal(request_kind(method), payload)
        self._metrics.inc("mesh_rpc_requests_total", method=method)
        pending: Pending | None = None
        with trio.move_on_after(timeout):
            channel = await self._channel_to(peer_id)
            request_id, pending = channel.expect()
            try:
                await channel.send(RpcFrame(REQUEST, request_id, method, encode_envelope(envelope)))
                await pending.done.wait()
            finally:
                channel.forget(request_id)
        if pending is None or not pending.done.is_set():
            self._metrics.inc("mesh_rpc_timeouts_total", method=method)
            raise RequestTimeoutError(f"{method} request to {peer_id}: no reply within {timeout} s")
        return self._reply_payload(method, envelope, pending)

    def _reply_payload(self, method: str, request: Envelope, pending: Pending) -> bytes:
        if pending.error is not None:
            raise pending.error
        reply = pending.reply
        if reply is None:
            raise ConnectionLostError(f"{method}: the stream closed before the reply")
        if reply.kind == FAILURE:
            raise RemoteError(method, reply.code, reply.body.decode(errors="replace"))
        checked = self._checker.check(reply.body, reply_kind(method), ref=request.nonce)
        if isinstance(checked, str):
            raise InvalidReplyError(f"{method}: the reply was rejected ({checked})")
        return checked.payload

    async def _channel_to(self, peer_id: ID) -> Channel:
        channel = self._channels.get(peer_id)
        if channel is not None and not channel.closed and not channel.connection_lost:
            return channel
        async with self._opening.setdefault(peer_id, trio.Lock()):
            self._drop_dead_channels(peer_id)
            channel = self._channels.get(peer_id)
            if channel is not None and not channel.closed:
                return channel
            if not self._gate.allows(peer_id):
                raise PeerUnreachableError(f"{peer_id} is not an allowed peer")
            if not is_connected(self._host, peer_id):
                try:
                    addrs = self._host.get_peerstore().addrs(peer_id)
                except Exception as error:  # PeerStoreError: nothing known about the peer
                    raise PeerUnreachableError(f"no known address for {peer_id}") from error
                await dial(self._host, PeerInfo(peer_id, addrs), self._dial_timeout)
            try:
                stream = await self._host.new_stream(peer_id, [TProtocol(RPC_PROTOCOL)])
            except Exception as error:  # stream, muxer and negotiation errors
                raise PeerUnreachableError(f"cannot open {RPC_PROTOCOL} to {peer_id}: {error}") from error
            channel = self._adopt(stream)
            self._nursery.start_soon(self._serve, channel)
            return channel

    def _adopt(self, stream: INetStream) -> Channel:
        settings = self._settings
        channel = Channel(stream, settings.max_frame, settings.write_timeout, settings.frame_timeout)
        self._all.add(channel)
        self._streams[channel.peer_id] += 1
        current = self._channels.get(channel.peer_id)
        # Both sides may open at once: keep the first live stream for our requests, serve both.
        if current is None or current.closed:
            self._channels[channel.peer_id] = channel
        return channel

    def _drop_dead_channels(self, peer_id: ID) -> None:
        """Forget the peer's channels whose connection is closed, and abort them in the background.

        A connection can close (a failed health ping, a peer that restarted) before its
        streams' reads end: their channels would hold the peer's places under
        `max_streams_per_peer`, and requests sent on them would wait out their timeouts.
        Nothing here waits, so two streams accepted at once both see the places freed.
        """
        for channel in [c for c in self._all if c.peer_id == peer_id and c.connection_lost]:
            self._release(channel)
            self._nursery.start_soon(channel.abort)

    def _release(self, channel: Channel) -> None:
        """Forget `channel` (once): it no longer counts against its peer or serves requests."""
        if channel not in self._all:
            return
        self._all.discard(channel)
        self._streams[channel.peer_id] -= 1
        if self._streams[channel.peer_id] <= 0:
            del self._streams[channel.peer_id]
        if self._channels.get(channel.peer_id) is channel:
            del self._channels[channel.peer_id]

    async def _accept(self, stream: INetStream) -> None:
        # py-libp2p runs each stream handler in its own task: serve the stream right here.
        peer_id = stream.muxed_conn.peer_id
        self._drop_dead_channels(peer_id)
        if not self._gate.admits(peer_id, "stream"):
            await self._refuse(stream, "not_allowed")
        elif self._streams[peer_id] >= self._settings.max_streams_per_peer:
            await self._refuse(stream, "per_peer_limit")
        else:
            await self._serve(self._adopt(stream))

    async def _refuse(self, stream: INetStream, reason: str) -> None:
        self._metrics.inc("mesh_rpc_streams_refused_total", reason=reason)
        self._log.log(
            logging.INFO,
            ("refused", reason),
            "refused an rpc stream from %s: %s",
            stream.muxed_conn.peer_id,
            reason,
        )
        with trio.CancelScope(shield=True), trio.move_on_after(self._settings.write_timeout):
            try:
                await stream.reset()
            except Exception as error:  # already broken: nothing left to release
                logger.debug("resetting a refused rpc stream: %s", error)

    async def _serve(self, channel: Channel) -> None:
        try:
            with channel.reading:
                while (message := await channel.read()) is not None:
                    if message.kind == REQUEST:
                        self._on_request(channel, message)
                    else:
                        channel.resolve(message)
        except FrameError as error:  # oversized, truncated or stalled: the peer broke the framing
            self._metrics.inc("mesh_rpc_streams_cut_total", reason=error.reason)
            self._log.log(
                logging.INFO, ("cut", error.reason), "rpc stream with %s cut: %s", channel.peer_id, error
            )
        except Exception as error:  # a reset or an undecodable frame ends the stream
            logger.debug("rpc stream with %s ended: %s", channel.peer_id, error)
        finally:
            # Bookkeeping first: it must happen even if this task is being cancelled.
            self._release(channel)
            await channel.abort()

    def _on_request(self, channel: Channel, message: RpcFrame) -> None:
        try:
            kind = request_kind(message.method)
        except ValueError:
            self._metrics.inc("mesh_messages_dropped_total", reason="malformed")
            self._fail(channel, message, "bad_envelope", "malformed method name")
            return
        checked = self._checker.check(message.body, kind)
        if isinstance(checked, str):
            self._fail(channel, message, "bad_envelope", f"request envelope rejected: {checked}")
            return
        handler = self._handlers.get(message.method)
        if handler is None:
            self._fail(channel, message, "unknown_method", f"no handler for {message.method!r}")
        elif self._running[channel.peer_id] >= self._settings.max_handlers_per_peer:
            running = self._running[channel.peer_id]
            self._fail(channel, message, "busy", f"{running} requests already running")
        else:
            self._running[channel.peer_id] += 1
            self._nursery.start_soon(self._handle, channel, message, checked, handler)

    def _fail(self, channel: Channel, message: RpcFrame, code: str, detail: str) -> None:
        # Label with the method only if it is ours: a peer must not mint new metric series.
        method = message.method if message.method in self._handlers else "unknown"
        self._metrics.inc("mesh_rpc_failures_total", method=method, code=code)
        failure = RpcFrame(FAILURE, message.request_id, message.method, detail[:MAX_DETAIL].encode(), code)
        self._nursery.start_soon(self._send_quietly, channel, failure)

    async def _handle(self, channel: Channel, message: RpcFrame, request: Envelope, handler: Handler) -> None:
        method = message.method
        try:
            with trio.move_on_after(self._settings.handler_timeout):
                try:
                    result = await handler(checksum(request.sender), request.payload)
                    if not isinstance(result, bytes):
                        raise TypeError(f"handler returned {type(result).__name__}, not bytes")
                except RequestRefused as refused:
                    self._fail(channel, message, "rejected", str(refused))
                    return
                except Exception as error:  # the handler's failure goes back to the caller, not up
                    # A peer can make a handler fail on every request: once a minute per method at most.
                    self._log.log(
                        logging.WARNING, ("handler", method), "handler for %s failed", method, exc_info=True
                    )
                    self._fail(channel, message, "handler_error", f"{type(error).__name__}: {error}")
                    return
                reply = self._signer.seal(reply_kind(method), result, ref=request.nonce)
                try:
                    await channel.send(RpcFrame(REPLY, message.request_id, method, encode_envelope(reply)))
                except FrameError as error:
                    self._fail(channel, message, "handler_error", str(error))
                except ConnectionLostError as error:
                    logger.debug("could not answer %s: %s", method, error)
                else:
                    self._metrics.inc("mesh_rpc_served_total", method=method)
                return
            self._fail(
                channel, message, "handler_timeout", f"no result within {self._settings.handler_timeout} s"
            )
        finally:
            self._running[channel.peer_id] -= 1
            if self._running[channel.peer_id] <= 0:
                del self._running[channel.peer_id]

    async def _send_quietly(self, channel: Channel, message: RpcFrame) -> None:
        try:
            await channel.send(message)
        except ConnectionLostError as error:  # the requester is gone: nobody is left to tell
            logger.debug("could not answer %s: %s", message.method, error)

    async def close(self) -> None:
        """Reset every stream (waiting requests fail with ConnectionLostError)."""
        for channel in list(self._all):
            await channel.abort()
