"""What the mesh raises: MeshError and its subclasses, each message naming the peer or limit involved."""

from __future__ import annotations


class MeshError(Exception):
    """A mesh operation failed; the message says what and with which peer."""


class RequestRefused(Exception):  # noqa: N818 - it names what the handler does
    """A request handler refuses a request on purpose (malformed, not allowed, not now).

    The caller gets RemoteError with code `rejected` and this message; the serving node counts
    it without logging a traceback (a refusal is the handler working, not failing).
    """


class PeerUnreachableError(MeshError):
    """A peer could not be dialed (refused, no address, or no answer within the dial timeout)."""


class FrameError(MeshError):
    """A message broke the stream framing: over the size limit, cut off by the end of the stream, or stalled.

    `reason` names which, for metrics: `oversized`, `truncated` or `stalled`.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class RequestError(MeshError):
    """A request got no valid reply; subclasses say why."""


class RequestTimeoutError(RequestError):
    """No reply within the request's timeout (the dial included)."""


class ConnectionLostError(RequestError):
    """The stream to the peer broke before the reply came."""


class InvalidReplyError(RequestError):
    """The reply's envelope failed the checks (its reason is in the message and the metrics)."""


class RemoteError(RequestError):
    """The peer answered with a failure: `code` is one of rpc.FAILURE_CODES, `detail` its explanation."""

    def __init__(self, method: str, code: str, detail: str) -> None:
        super().__init__(f"{method} failed on the peer ({code}): {detail}")
        self.code = code
        self.detail = detail
