"""Length-prefixed frames on a libp2p stream: a 4-byte big-endian length, then the bytes.

Framing is what tells a dead peer from a finished message: py-libp2p reports a peer that went
away as a clean EOF, not a reset (py-libp2p 11), so EOF in the middle of a frame is an error
and EOF between frames is the end. The reader buffers whatever the stream hands over and loops
until a frame is complete, with no cap on partial reads (py-libp2p's own `read_exactly` gives
up after 100 of them, which breaks messages over ~6.5 MB: py-libp2p 8).

A peer may sit idle between frames (the stream is persistent), but once a frame has begun it
must be complete within `frame_timeout` seconds of its first byte: otherwise a peer could hold
a buffer of up to `max_frame` bytes per stream forever by sending half a frame and stalling
(security review, finding 8). The deadline covers the whole frame, not each read, so trickling
a byte at a time does not extend it.
"""

from __future__ import annotations

import math

import trio
from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF

from node.mesh.errors import FrameError

HEADER_BYTES = 4
READ_CHUNK = 64 * 1024


def frame(data: bytes, max_frame: int) -> bytes:
    """`data` with its length prefix; FrameError if it is larger than `max_frame`."""
    if len(data) > max_frame:
        raise FrameError(
            f"message of {len(data)} bytes exceeds the {max_frame}-byte frame limit", reason="oversized"
        )
    return len(data).to_bytes(HEADER_BYTES, "big") + data


class FrameReader:
    """Reads frames from one stream, holding at most `max_frame` + one read chunk in memory."""

    def __init__(self, stream: INetStream, max_frame: int, frame_timeout: float = math.inf) -> None:
        self._stream = stream
        self._max_frame = max_frame
        self._frame_timeout = frame_timeout
        self._buffer = bytearray()
        self._deadline = math.inf
        """When the frame being buffered must be complete (inf while between frames)."""

    async def read(self) -> bytes | None:
        """The next frame, or None when the stream ended cleanly between frames.

        FrameError for an oversized frame, a stream that ended inside one, or a frame not
        complete within `frame_timeout` of its first byte; stream errors (a reset) propagate.
        """
        while True:
            if len(self._buffer) >= HEADER_BYTES:
                size = int.from_bytes(self._buffer[:HEADER_BYTES], "big")
                if size > self._max_frame:
                    raise FrameError(
                        f"peer sent a {size}-byte frame; the limit is {self._max_frame}", reason="oversized"
                    )
                end = HEADER_BYTES + size
                if len(self._buffer) >= end:
                    data = bytes(self._buffer[HEADER_BYTES:end])
                    del self._buffer[:end]
                    # Bytes already here belong to the next frame: its clock starts now.
                    self._deadline = self._start_clock() if self._buffer else math.inf
                    return data
            chunk = await self._read_chunk()
            if not chunk:
                if self._buffer:
                    raise FrameError(
                        f"stream ended inside a frame ({len(self._buffer)} bytes buffered)",
                        reason="truncated",
                    )
                return None
            if not self._buffer:
                self._deadline = self._start_clock()
            self._buffer += chunk

    async def _read_chunk(self) -> bytes:
        with trio.move_on_at(self._deadline):
            try:
                return await self._stream.read(READ_CHUNK)
            except StreamEOF:
                return b""
        raise FrameError(
            f"frame not complete within {self._frame_timeout} s ({len(self._buffer)} bytes buffered)",
            reason="stalled",
        )

    def _start_clock(self) -> float:
        return trio.current_time() + self._frame_timeout
