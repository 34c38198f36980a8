"""The gateway's HTTP server: hypercorn, behind a lane that answers the hot reads itself.

hypercorn (h11, its protocol machinery, ASGI events) costs ~1 ms of CPU per request: a bare
ASGI app on it answers ~1,000-1,300 req/s per core, where a plain trio loop that reads and
writes the same bytes answers ~24,000 (wrk, 50 connections, on the same 2-core machine). Issue
12 asks 1,500 req/s of `GET /api/jobs/id/{id}` and `GET /api/tasks/job/{id}`. So every
connection starts in `FastLane`: while its requests are exactly of the narrow form below, the
lane parses them and gives gateway.api.fast_reads' answers; at the first request that is not,
the connection, with every byte read so far, is handed to hypercorn for the rest of its life.

A request stays in the lane only if it is, byte for byte, a form whose meaning is not in doubt:
`GET` or `HEAD` of a hot path (a prefix and ASCII digits: no query, no escapes), `HTTP/1.1`,
CRLF line ends, every header line matching RFC 9110's field syntax as h11 reads it, exactly one
`Host`, no `Content-Length`, `Transfer-Encoding`, `Upgrade` or `Expect`, and `Connection` only
`keep-alive` or `close`. Anything else (a body, an odd byte, a head over the size limit) is
hypercorn's to accept or refuse, so the lane adds no parsing of its own to the ambiguous cases
that request smuggling lives in. It keeps hypercorn's limits (`gateway.http.server_config`):
the head's size, the time a head may take to arrive after the connection opens or goes idle,
and the backstop for a client that does not read its answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from math import inf
from time import time

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework
from hypercorn.utils import repr_socket_addr, wrap_app

from gateway.api.fast_reads import READ_HEADERS, FastAnswer, FastReads, HotRoute

log = logging.getLogger("triggerx.gateway.api")

_RECEIVE_BYTES = 2**16  # as hypercorn reads
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_VCHAR = rb"[\x21-\x7e\x80-\xff]"
# A header line as h11 reads it: name, colon, optional whitespace, value, optional whitespace.
_HEADER_LINE = re.compile(rb"(%s):[ \t]*(%s+(?:[ \t]+%s+)*)?[ \t]*" % (_TOKEN, _VCHAR, _VCHAR))
_HEAD_END = re.compile(rb"\n\r?\n")  # where h11 ends a head; the lane takes only CRLF CRLF
# Headers that give a request a body, another protocol or an interim answer: hypercorn's.
_NOT_IN_LANE = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect"})
_CONNECTION_OPTIONS = frozenset({b"keep-alive", b"close", b""})


@dataclass(frozen=True, slots=True)
class HotRequest:
    """A request the lane answers: `headers` holds the first of each of READ_HEADERS sent."""

    method: str
    route: HotRoute
    headers: dict[bytes, bytes]
    keep_alive: bool


def hot_request(head: bytes, reads: FastReads) -> HotRequest | None:
    """`head` (a request's line and headers, without the blank line) as a request the lane
    answers, or None when hypercorn is to have it."""
    line, *header_lines = head.split(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD") or parts[2] != b"HTTP/1.1":
        return None
    route = reads.route(parts[1].decode("latin-1"))
    if route is None:
        return None
    found: dict[bytes, bytes] = {}
    hosts = 0
    keep_alive = True
    for header_line in header_lines:
        header = _HEADER_LINE.fullmatch(header_line)
        if header is None:
            return None
        name, value = header[1].lower(), header[2] or b""
        if name in _NOT_IN_LANE:
            return None
        if name == b"host":
            hosts += 1
        elif name == b"connection":
            options = {option.strip().lower() for option in value.split(b",")}
            if not options <= _CONNECTION_OPTIONS:
                return None
            keep_alive = keep_alive and b"close" not in options
        elif name in READ_HEADERS and name not in found:
            found[name] = value
    if hosts != 1:  # h11 refuses none or several: hypercorn's 400
        return None
    return HotRequest(parts[0].decode(), route, found, keep_alive)


class _Replayed(trio.abc.HalfCloseableStream):
    """A connection handed to hypercorn: the bytes the lane read first, then the socket's.
    (No `do_handshake`: hypercorn takes a stream without it for plain HTTP.)"""

    def __init__(self, stream: trio.SocketStream, read: bytes) -> None:
        self._stream = stream
        self._read = read
        self.socket = stream.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._read:
            size = len(self._read) if max_bytes is None else max_bytes
            data, self._read = self._read[:size], self._read[size:]
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class _HttpDate:
    """The Date header's value, made once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time())
        if second != self._second:
            self._second, self._value = second, formatdate(second, usegmt=True).encode()
        return self._value


class FastLane:
    """Serves one connection at a time (`serve_connection`): hot reads from `reads`, the rest by
    `hand_over`, within `config`'s limits."""

    def __init__(
        self, reads: FastReads, config: Config, hand_over: Callable[[trio.abc.Stream], Awaitable[None]]
    ) -> None:
        self.reads = reads
        self.hand_over = hand_over
        self.max_head_bytes = config.h11_max_incomplete_size
        self.head_timeout = config.keep_alive_timeout
        self.send_timeout = config.read_timeout or inf
        self._date = _HttpDate()
        self._open: set[trio.SocketStream] = set()

    async def close_all_when_cancelled(self) -> None:
        """Sleep; when cancelled, close every connection's socket. hypercorn sends in a shielded
        scope, so a client that never reads would otherwise hold the server's stop forever:
        closing the socket wakes that send."""
        try:
            await trio.sleep_forever()
        finally:
            for stream in list(self._open):
                stream.socket.close()

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        """Answer `stream`'s requests until it closes, idles too long, or is handed over. Nothing
        one connection does ends the server: its errors end the connection."""
        read = b""
        self._open.add(stream)
        try:
            # A client that resets before the accept makes this raise: inside the guard.
            client = stream.socket.getpeername()[0]
            while True:
                with trio.move_on_after(self.head_timeout) as waiting:
                    read, head_end = await self._head(stream, read)
                if waiting.cancelled_caught:
                    return  # no head in time: closed, as hypercorn closes an idle connection
                request = None if head_end is None else hot_request(read[: head_end - 4], self.reads)
                if head_end is None or request is None:
                    break  # too big a head, or not the lane's: hypercorn's (or the client left)
                read = read[head_end:]
                answer = await self.reads.answer(request.method, request.route, request.headers, client)
                with trio.fail_after(self.send_timeout):
                    await stream.send_all(self._response(request, answer))
                if not request.keep_alive:
                    return
            if read:
                await self.hand_over(_Replayed(stream, read))
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
            pass
        except Exception:
            log.exception("the HTTP connection from %s failed", stream.socket)
        finally:
            self._open.discard(stream)
            await stream.aclose()

    async def _head(self, stream: trio.SocketStream, read: bytes) -> tuple[bytes, int | None]:
        """`read` and what follows it, until a whole head has arrived (then its end, after its
        blank line, if that is CRLF CRLF and the head is within the size limit), the bytes
        pass the size limit or the client leaves (None)."""
        searched = 0
        while True:
            if read and read[0] < 0x21:
                return read, None  # not a request line (TLS, a control byte): hypercorn's 400, now
            end = _HEAD_END.search(read, searched)
            if end is not None:
                if end.start() == 0 or read[end.start() - 1 : end.end()] != b"\r\n\r\n":
                    return read, None  # LF line ends: h11 reads them, the lane does not
                return read, end.end() if end.end() <= self.max_head_bytes else None
            if len(read) > self.max_head_bytes:
                return read, None
            searched = max(0, len(read) - 2)
            data = await stream.receive_some(_RECEIVE_BYTES)
            if not data:
                return b"", None
            read += data

    def _response(self, request: HotRequest, answer: FastAnswer) -> bytes:
        """The answer's bytes as h11 writes them (hypercorn adds Date after the app's headers)."""
        lines = [b"HTTP/1.1 %d " % answer.status]
        lines += [name + b": " + value for name, value in answer.headers]
        lines.append(b"date: " + self._date.now())
        if not request.keep_alive:
            lines.append(b"Connection: close")
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        return head if request.method == "HEAD" else head + answer.body


async def serve_api(
    app: ASGIFramework,
    config: Config,
    reads: FastReads,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` as hypercorn.trio.serve does (lifespan, `config`'s plain-HTTP binds), each
    connection through a FastLane over `reads`; started, it gives the bound URLs."""
    if config.ssl_enabled or config.quic_bind:
        raise ValueError("the gateway serves plain HTTP (put TLS in a proxy in front of it)")
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    state: dict = {}
    lifespan = Lifespan(wrapped, config, state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        sockets = config.create_sockets().insecure_sockets
        listeners = []
        for sock in sockets:
            sock.listen(config.backlog)
            listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))

        async def hand_over(stream: trio.abc.Stream) -> None:
            await TCPServer(wrapped, config, context, state.copy(), stream).run()  # type: ignore[arg-type]

        lane = FastLane(reads, config, hand_over)
        task_status.started([f"http://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets])
        try:
            async with trio.open_nursery() as connections:
                connections.start_soon(lane.close_all_when_cancelled)
                await trio.serve_listeners(lane.serve_connection, listeners, handler_nursery=connections)
        finally:
            lifespan_nursery.cancel_scope.cancel()
