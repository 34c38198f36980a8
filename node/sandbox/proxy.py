"""A script's one way to the web: an HTTP proxy on a unix socket bound into its sandbox.

The run has no network. A job that names hosts (its allow-list) gets this proxy for each run:
the script sends `GET <absolute URL>` over /sandbox/http.sock (node/sandbox/lib has helpers for
Python and Node), and the proxy answers. Recording, for the performer and the gateway's dry run,
it fetches URLs on the allow-list through a WebFetcher (deadline, size cap, no private
addresses unless allowed) and keeps every answer it gives, refusals included. Replaying, for
an attester, it answers from the performer's recording and fetches nothing, so the re-run reads
what the performer's run read (docs/protocol.md, "Jobs with scripts").
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import urlsplit

import h11
import msgspec
import trio
from eth_utils import keccak

from node.web import WebFetcher, WebSourceError

MAX_EXCHANGES = 8
"""Requests a run may make (more are answered 429, and recorded so)."""
MAX_RECORDED_BYTES = 64 * 1024
"""Bytes of answers a run may record in all: they travel with its result."""
MAX_URL = 2048
MAX_REQUEST_HEAD = 8192
MAX_CONNECTIONS = 4
"""Connections a run's proxy serves at once; it serves 2 x MAX_EXCHANGES in all, then closes
each at once (the keeper's file descriptors are not a script's to use up)."""
SOCKET_NAME = "http.sock"
_MEDIA_TYPE = r"[a-z0-9!#$&^_.+-]{1,63}/[a-z0-9!#$&^_.+-]{1,63}"


class Exchange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One request a script made through the proxy, and the answer it got (bounded: a recording
    comes from the performer, and attesters decode it)."""

    url: Annotated[str, msgspec.Meta(max_length=MAX_URL)]
    status: Annotated[int, msgspec.Meta(ge=200, le=599)]  # final answers only
    # A media type only (no parameters, no CR or LF): it goes back into a response header.
    content_type: Annotated[str, msgspec.Meta(pattern=f"^{_MEDIA_TYPE}$")]
    body: Annotated[bytes, msgspec.Meta(max_length=MAX_RECORDED_BYTES)]


def exchanges_hash(exchanges: Sequence[Exchange]) -> bytes:
    """What a result signs of a run's exchanges: keccak256 of their JSON list; 32 zero bytes for
    none (a run without the web)."""
    return keccak(msgspec.json.encode(list(exchanges))) if exchanges else bytes(32)


def allowed(url: str, hosts: frozenset[str]) -> bool:
    """Whether `url` is http(s) to a host on the allow-list (`name`, any port, or `name:port`)."""
    try:
        parts = urlsplit(url)
        netloc, name = parts.netloc.lower(), (parts.hostname or "").lower()
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and (netloc in hosts or name in hosts)


class ScriptProxy:
    """The proxy of one run (see the module docstring): given `replay`, it answers from those
    exchanges only and fetches nothing; else it fetches through `fetcher` (with none, every
    allowed request is answered 502). `exchanges` is what it answered, in order."""

    def __init__(
        self,
        hosts: Sequence[str],
        *,
        fetcher: WebFetcher | None = None,
        replay: Sequence[Exchange] | None = None,
    ) -> None:
        self.hosts = frozenset(host.lower() for host in hosts)
        self.fetcher = fetcher
        self._recorded: dict[str, deque[Exchange]] | None = None
        if replay is not None:
            self._recorded = defaultdict(deque)
            for exchange in replay:
                self._recorded[exchange.url].append(exchange)
        self.exchanges: list[Exchange] = []  # the first MAX_EXCHANGES answers (later ones are 429s)
        self._requests = 0
        self._connections = 0
        self._serving = trio.CapacityLimiter(MAX_CONNECTIONS)
        self._recorded_bytes = 0

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Serve on a fresh unix socket while in the block; its path. The socket is its owner's
        alone (0600): the sandbox gives it to the run's uid (node/sandbox/bwrap.py)."""
        directory = tempfile.mkdtemp(prefix="triggerx-proxy-")
        path = os.path.join(directory, SOCKET_NAME)
        try:
            os.chmod(directory, 0o711)
            listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            await listener.bind(path)
            os.chmod(path, 0o600)
            listener.listen(MAX_CONNECTIONS)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.serve_listeners, self._serve, [trio.SocketListener(listener)])
                yield path
                nursery.cancel_scope.cancel()
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    async def _serve(self, stream: trio.SocketStream) -> None:
        """One request per connection: read it, answer it, close."""
        self._connections += 1
        async with stream:
            if self._connections > 2 * MAX_EXCHANGES:
                return
            async with self._serving:
                connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
                with trio.move_on_after(10):  # a request never finished holds nothing long
                    request = await _next_request(stream, connection)
                    if request is None:
                        return
                    answer = await self._answer(request)
                    try:
                        await stream.send_all(_response(connection, answer))
                    except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                        return  # the script hung up, or sent what h11 cannot answer

    async def _answer(self, request: h11.Request) -> Exchange:
        """The answer to `request` (an absolute URL, or a path with its Host)."""
        target = request.target.decode("ascii", "replace")
        if not target.startswith(("http://", "https://")):
            host = dict(request.headers).get(b"host", b"").decode("ascii", "replace")
            target = f"http://{host}{target}"
        if request.method != b"GET":
            return _refusal(target, 405, "the proxy only GETs")
        if len(target) > MAX_URL:
            return _refusal(target[:MAX_URL], 414, f"a URL is at most {MAX_URL} characters")
        self._requests += 1
        if self._requests > MAX_EXCHANGES:  # not recorded: a replay answers the same from the count
            return _refusal(target, 429, f"a run makes at most {MAX_EXCHANGES} requests")
        answer = await self._recorded_answer(target)
        self.exchanges.append(answer)
        return answer

    async def _recorded_answer(self, target: str) -> Exchange:
        """One of the first MAX_EXCHANGES answers: each is recorded (refusals too)."""
        if not allowed(target, self.hosts):
            return _refusal(target, 403, "the host is not on the job's allow-list")
        if self._recorded is not None:
            queue = self._recorded.get(target)
            if not queue:
                return _refusal(target, 502, "not in the performer's recording")
            return queue.popleft()
        if self.fetcher is None:
            return _refusal(target, 502, "this node fetches nothing for scripts")
        try:
            response = await self.fetcher.get(target)
        except WebSourceError as error:
            return _refusal(target, 502, str(error))
        room = MAX_RECORDED_BYTES - self._recorded_bytes
        if len(response.body) > room:
            return _refusal(target, 507, f"the run's answers exceed {MAX_RECORDED_BYTES} bytes")
        self._recorded_bytes += len(response.body)
        kind = response.content_type if re.fullmatch(_MEDIA_TYPE, response.content_type) else ""
        status = response.status if 200 <= response.status <= 599 else 502
        return Exchange(target, status, kind or "application/octet-stream", response.body)


async def _next_request(stream: trio.SocketStream, connection: h11.Connection) -> h11.Request | None:
    """The request on `stream` (its body, if any, is not read), or None if it is not one."""
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError:
            return None
        if isinstance(event, h11.Request):
            return event
        if event is h11.NEED_DATA:
            data = await stream.receive_some(4096)
            if not data:
                return None
            connection.receive_data(data)
        else:
            return None


def _response(connection: h11.Connection, answer: Exchange) -> bytes:
    """`answer` as the bytes of an HTTP response on `connection`."""
    headers = [
        ("content-type", answer.content_type),
        ("content-length", str(len(answer.body))),
        ("connection", "close"),
    ]
    data = connection.send(h11.Response(status_code=answer.status, headers=headers))
    return data + connection.send(h11.Data(data=answer.body)) + connection.send(h11.EndOfMessage())


def _refusal(url: str, status: int, why: str) -> Exchange:
    return Exchange(url, status, "text/plain", why.encode())
