"""One persistent `/triggerx/rpc/1` stream to a peer: frames, request ids, requests in flight.

Both sides send requests on it, so a frame says what it is: a request, a reply or a failure,
and which request id it answers. Writes are serialized and shielded (a request cancelled
mid-write must not leave half a frame); a stream that fails or stalls is reset, and every
request waiting on it fails at once with ConnectionLostError.
"""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec
import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID

from node.mesh.errors import ConnectionLostError, RequestError
from node.mesh.framing import FrameReader, frame

logger = logging.getLogger(__name__)

REQUEST, REPLY, FAILURE = 0, 1, 2


class RpcFrame(msgspec.Struct, array_like=True, frozen=True):
    """One message on the stream: a request, a reply, or a failure, matched by `request_id`."""

    kind: Annotated[int, msgspec.Meta(ge=REQUEST, le=FAILURE)]
    request_id: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    method: Annotated[str, msgspec.Meta(max_length=64)]
    body: bytes
    """The signed envelope (request, reply) or the UTF-8 explanation (failure)."""
    code: str = ""
    """The failure code (failures only)."""


_frame_decoder = msgspec.msgpack.Decoder(RpcFrame)
_frame_encoder = msgspec.msgpack.Encoder()


class Pending:
    """Where the answer to one request lands: its reply or failure frame, or the error that ended it."""

    __slots__ = ("done", "error", "reply")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: RpcFrame | None = None
        self.error: RequestError | None = None


class Channel:
    """One persistent stream to a peer: writes serialized, frames read by its owner's loop."""

    def __init__(
        self, stream: INetStream, max_frame: int, write_timeout: float, frame_timeout: float
    ) -> None:
        self.stream = stream
        self.peer_id: ID = stream.muxed_conn.peer_id
        self.closed = False
        self.reading = trio.CancelScope()
        """The scope its owner reads frames in: `abort` cancels it. py-libp2p does not wake a
        read blocked on a stream this side resets (py-libp2p 20): without it the reader would wait forever."""
        self._max_frame = max_frame
        self._write_timeout = write_timeout
        self._reader = FrameReader(stream, max_frame, frame_timeout)
        self._write_lock = trio.Lock()
        self._pending: dict[int, Pending] = {}
        self._next_id = 0

    @property
    def connection_lost(self) -> bool:
        """Whether the connection under the stream is closed (its stream may not know yet)."""
        return bool(getattr(self.stream.muxed_conn, "is_closed", False))

    def expect(self) -> tuple[int, Pending]:
        """A new request id and the slot its reply will land in."""
        self._next_id += 1
        pending = Pending()
        self._pending[self._next_id] = pending
        return self._next_id, pending

    def forget(self, request_id: int) -> None:
        """Stop waiting for `request_id` (a reply arriving later is dropped)."""
        self._pending.pop(request_id, None)

    async def send(self, message: RpcFrame) -> None:
        """Write one frame; ConnectionLostError if the stream is dead or stalls past `write_timeout`."""
        data = frame(_frame_encoder.encode(message), self._max_frame)
        # Shielded: a request timing out mid-write must not leave half a frame on the stream.
        with trio.CancelScope(shield=True):
            async with self._write_lock:
                if self.closed:
                    raise ConnectionLostError(f"the stream to {self.peer_id} is closed")
                with trio.move_on_after(self._write_timeout):
                    try:
                        await self.stream.write(data)
                    except Exception as error:  # py-libp2p raises several stream/muxer errors
                        await self.abort()
                        raise ConnectionLostError(f"writing to {self.peer_id} failed: {error}") from error
                    return
                await self.abort()
                raise ConnectionLostError(f"writing to {self.peer_id} stalled for {self._write_timeout} s")

    async def read(self) -> RpcFrame | None:
        """The next frame, None at a clean end; raises on broken framing or a broken stream."""
        data = await self._reader.read()
        return None if data is None else _frame_decoder.decode(data)

    def resolve(self, message: RpcFrame) -> None:
        """Hand a reply or failure to the request waiting for it (late ones are dropped)."""
        pending = self._pending.pop(message.request_id, None)
        if pending is not None:
            pending.reply = message
            pending.done.set()

    async def abort(self) -> None:
        """Close for good: fail every waiting request and reset the stream."""
        if self.closed:
            return
        self.closed = True
        self.reading.cancel()
        for pending in self._pending.values():
            pending.error = ConnectionLostError(f"the stream to {self.peer_id} closed before the reply")
            pending.done.set()
        self._pending.clear()
        with trio.CancelScope(shield=True), trio.move_on_after(self._write_timeout):
            try:
                await self.stream.reset()
            except Exception as error:  # already broken: nothing left to release
                logger.debug("resetting the rpc stream to %s: %s", self.peer_id, error)
