"""What one HTTP connection may cost the gateway: hypercorn's settings and a body guard for the app.

An unauthenticated client could stall the gateway with a big or endless request body (a
12.9 MB body took the whole gateway 11–26 s). So:

- `server_config` bounds what hypercorn itself spends: header size, time to send headers
  (and to stay idle between requests), and a backstop for silent connections.
- `BoundedBodies` (ASGI middleware, installed by `gateway.api.create_app`) reads every body
  before the app sees it, refuses one over `max_body_bytes` with a JSON 413 as soon as the
  size is known (from Content-Length, before any of the body is read), and answers a body
  that has not arrived within `body_timeout` with a JSON 408. Nothing is held but at most
  `max_body_bytes`, and waiting on a slow client costs nothing but a sleeping task.

After a refusal the connection stays usable when it can be: the rest of the body is read
and thrown away (up to `drain_bytes`, before the body deadline) and the next request on the
connection is answered. A body too big to throw away gets `Connection: close` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

import msgspec
import trio
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGIReceiveEvent, ASGISendCallable, Scope

# Bigger than any job body with the calldata limits (protocol.calldata); small enough to buffer.
DEFAULT_MAX_BODY_BYTES = 64 * 1024
# Before closing a connection on a refused body, go on reading it this long at most (see
# BoundedBodies._keep_or_close).
LINGER_SECONDS = 2.0
_HUGE = 10**18  # stands for any Content-Length of more than 18 digits


@dataclass(frozen=True)
class HttpLimits:
    """How much a request may send, and how long it may take to send it."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The whole body must have arrived this long after the request's headers.
    body_timeout: float = 10.0
    # After a refusal, read and discard up to this much of the rest of the body to keep the
    # connection open for its next request; beyond it, close the connection.
    drain_bytes: int = 1024 * 1024
    # Request line and headers together (hypercorn/h11 answer 400 or 431 beyond it).
    max_header_bytes: int = 16 * 1024
    # A connection's headers must arrive this long after it opens or goes idle (hypercorn's
    # keep_alive_timeout covers both), else it is closed.
    header_timeout: float = 5.0
    # Backstop: a connection that sends nothing for this long is closed, whatever it is doing.
    # Longer than any answer takes, since it also runs while the app is working.
    read_timeout: float = 60.0


def server_config(listen: str, limits: HttpLimits | None = None) -> Config:
    """Hypercorn's config for serving the gateway API on `listen` ("host:port")."""
    limits = limits or HttpLimits()
    config = Config()
    config.bind = [listen]
    config.accesslog = None
    config.h11_max_incomplete_size = limits.max_header_bytes
    config.h2_max_header_list_size = limits.max_header_bytes
    config.keep_alive_timeout = limits.header_timeout
    config.read_timeout = limits.read_timeout  # type: ignore[assignment]  # a float works (trio.fail_after)
    config.include_server_header = False
    # A WebSocket client's frame is buffered whole before the app sees it: keep that small
    # (gateway.api.streams takes frames of 4 KiB at most).
    config.websocket_max_message_size = 64 * 1024
    return config


def json_error_body(reason: str) -> bytes:
    """The API's error document, `{"error": reason}`."""
    return msgspec.json.encode({"error": reason})


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The declared body size; None if the body is chunked (or absent with no header)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            value = value.strip()
            # h11 has checked it is digits; more than 18 is more than any limit (and int()
            # of thousands of digits is refused by Python anyway).
            return int(value) if len(value) <= 18 else _HUGE
    return None


class _Read(Enum):
    COMPLETE = "complete"
    OVER_LIMIT = "over the limit, more to come"
    OVER_LIMIT_ENDED = "over the limit, ended"
    LATE = "not in time"
    GONE = "client went away"


async def _read_body(receive: ASGIReceiveCallable, limit: int, deadline: float) -> tuple[bytes, _Read]:
    """A request body, read until it ends, passes `limit` bytes, the deadline passes or the client goes."""
    body = bytearray()
    with trio.move_on_at(deadline):
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"", _Read.GONE
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                return b"", _Read.OVER_LIMIT if more else _Read.OVER_LIMIT_ENDED
            if not more:
                return bytes(body), _Read.COMPLETE
    return b"", _Read.LATE


class BoundedBodies:
    """ASGI middleware: bodies are read whole, within `limits`, before `app` is called.

    The app then gets the body in one message, so it never waits on a client.
    """

    def __init__(self, app: ASGIFramework, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, drain = self.limits.max_body_bytes, self.limits.drain_bytes
        deadline = trio.current_time() + self.limits.body_timeout
        declared = _content_length(scope["headers"])
        if declared is not None and declared > limit:
            # Refused on the header alone: none of the body has been read.
            size = f"{declared} bytes" if declared < _HUGE else "over 10**18 bytes"
            reason = f"request body of {size} is over the limit of {limit} bytes"
            await _answer(send, 413, reason, more_body=True, close=declared > drain)
            await self._keep_or_close(receive, send, deadline, keep=declared <= drain)
            return
        body, outcome = await _read_body(receive, limit, deadline)
        if outcome is _Read.COMPLETE:
            await self.app(scope, _replay(body, receive), send)
        elif outcome is _Read.OVER_LIMIT_ENDED:
            await _answer(send, 413, f"request body is over the limit of {limit} bytes")
        elif outcome is _Read.OVER_LIMIT:  # chunked: how much is still to come is unknown
            await _answer(send, 413, f"request body is over the limit of {limit} bytes", more_body=True)
            await self._keep_or_close(receive, send, deadline, keep=True)
        elif outcome is _Read.LATE:
            reason = f"request body did not arrive within {self.limits.body_timeout:g} s"
            await _answer(send, 408, reason, more_body=True, close=True)
            await _close(receive, send)
        # _Read.GONE: nobody left to answer.

    async def _keep_or_close(
        self, receive: ASGIReceiveCallable, send: ASGISendCallable, deadline: float, *, keep: bool
    ) -> None:
        """After an answer to a request whose body is still coming: throw the rest away and end
        the response, which lets hypercorn serve the connection's next request; or close it.

        Hypercorn reuses a connection only once both sides are done, so the response (already
        whole on the wire: it is sized) is ended only after the body. When closing, reading
        some of the body first gives the client time to read the answer before the close
        resets the connection.
        """
        if not keep:  # no need to wait for all of the body, only long enough to be heard
            deadline = min(deadline, trio.current_time() + LINGER_SECONDS)
        drained = await _discard(receive, self.limits.drain_bytes, deadline)
        if keep and drained:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await _close(receive, send)


async def _answer(
    send: ASGISendCallable, status: int, reason: str, *, more_body: bool = False, close: bool = False
) -> None:
    """Send a JSON error, whole; with `more_body` the response is left open (ended later)."""
    payload = json_error_body(reason)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": more_body})


def _replay(body: bytes, receive: ASGIReceiveCallable) -> ASGIReceiveCallable:
    """A `receive` that gives the app the whole body at once, then what the server sends (disconnect)."""
    given = False

    async def replay() -> ASGIReceiveEvent:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _discard(receive: ASGIReceiveCallable, budget: int, deadline: float) -> bool:
    """Read and drop the rest of a request body; whether it ended within `budget` bytes and in time."""
    with trio.move_on_at(deadline):
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False
            budget -= len(message.get("body", b""))
            if budget < 0:
                return False
            if not message.get("more_body", False):
                return True
    return False


async def _close(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """End the response with the request unfinished, which makes hypercorn close the connection.

    Hypercorn's reader may be blocked handing us a body chunk (its queue holds 10), and the
    close hands us one more message (the disconnect) from inside `send`: unless someone
    takes them, the close waits forever and the client never hears from the connection.
    """

    async def take_until_disconnect() -> None:
        with trio.move_on_after(5):
            while (await receive())["type"] != "http.disconnect":
                pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take_until_disconnect)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
