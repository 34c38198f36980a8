"""What the mesh raises: MeshError and its subclasses, each message naming the peer or limit involved."""

from __future__ import annotations


class MeshError(Exception):
    """A mesh operation failed; the message says what and with which peer."""


class PeerUnreachableError(MeshError):
    """A peer could not be dialed (refused, no address, or no answer within the dial timeout)."""


class FrameError(MeshError):
    """A message broke the stream framing: over the size limit, or cut off by the end of the stream."""
