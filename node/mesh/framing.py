"""Length-prefixed frames on a libp2p stream: a 4-byte big-endian length, then the bytes.

Framing is what tells a dead peer from a finished message: py-libp2p reports a peer that went
away as a clean EOF, not a reset (FIELD-NOTES 11), so EOF in the middle of a frame is an error
and EOF between frames is the end. The reader buffers whatever the stream hands over and loops
until a frame is complete, with no cap on partial reads (py-libp2p's own `read_exactly` gives
up after 100 of them, which breaks messages over ~6.5 MB: FIELD-NOTES 8).
"""

from __future__ import annotations

from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF

from node.mesh.errors import FrameError

HEADER_BYTES = 4
READ_CHUNK = 64 * 1024


def frame(data: bytes, max_frame: int) -> bytes:
    """`data` with its length prefix; FrameError if it is larger than `max_frame`."""
    if len(data) > max_frame:
        raise FrameError(f"message of {len(data)} bytes exceeds the {max_frame}-byte frame limit")
    return len(data).to_bytes(HEADER_BYTES, "big") + data


class FrameReader:
    """Reads frames from one stream."""

    def __init__(self, stream: INetStream, max_frame: int) -> None:
        self._stream = stream
        self._max_frame = max_frame
        self._buffer = bytearray()

    async def read(self) -> bytes | None:
        """The next frame, or None when the stream ended cleanly between frames.

        FrameError for an oversized frame or a stream that ended inside one; stream errors
        (a reset) propagate.
        """
        while True:
            if len(self._buffer) >= HEADER_BYTES:
                size = int.from_bytes(self._buffer[:HEADER_BYTES], "big")
                if size > self._max_frame:
                    raise FrameError(f"peer sent a {size}-byte frame; the limit is {self._max_frame}")
                end = HEADER_BYTES + size
                if len(self._buffer) >= end:
                    data = bytes(self._buffer[HEADER_BYTES:end])
                    del self._buffer[:end]
                    return data
            try:
                chunk = await self._stream.read(READ_CHUNK)
            except StreamEOF:
                chunk = b""
            if not chunk:
                if self._buffer:
                    raise FrameError(f"stream ended inside a frame ({len(self._buffer)} bytes buffered)")
                return None
            self._buffer += chunk
