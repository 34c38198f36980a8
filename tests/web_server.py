"""A local HTTP server for web sources: each path answers as the test sets it (a value, a slow
answer, a huge one, an error), so fetching is tested against real sockets on 127.0.0.1."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from node.chain import free_port


@dataclass
class Route:
    """How a path answers: `status`, `content_type` and `body`, after `delay` seconds; with
    `stream_bytes`, a body of that many bytes sent in chunks (never held whole)."""

    body: bytes = b"{}"
    status: int = 200
    content_type: str = "application/json"
    delay: float = 0.0
    stream_bytes: int = 0


class WebServer:
    """The server's routes (set them at any time) and where it listens."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.routes: dict[str, Route] = {}
        self.requests = 0
        self.last_request = b""  # the request line and headers of the last request

    def url(self, path: str) -> str:
        """The URL of `path` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def serve(self, stream: trio.SocketStream) -> None:
        """Answer one request on `stream`, then close it."""
        request = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in request and len(request) < 65_536:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                request += chunk
        self.requests += 1
        self.last_request = request
        path = request.split(b" ", 2)[1].decode() if request.count(b" ") >= 2 else "/"
        route = self.routes.get(path, Route(b'{"error": "no such path"}', 404))
        await trio.sleep(route.delay)
        length = route.stream_bytes or len(route.body)
        head = (
            f"HTTP/1.1 {route.status} X\r\ncontent-type: {route.content_type}\r\n"
            f"content-length: {length}\r\nconnection: close\r\n\r\n"
        )
        try:
            await stream.send_all(head.encode())
            if route.stream_bytes:
                chunk = b"[" + b"1," * 32_767
                for _ in range(route.stream_bytes // len(chunk)):
                    await stream.send_all(chunk)
            else:
                await stream.send_all(route.body)
        except trio.BrokenResourceError:
            pass  # the client stopped reading (a body over its limit)
        finally:
            await stream.aclose()


@asynccontextmanager
async def web_server() -> AsyncIterator[WebServer]:
    """A WebServer on a free port of 127.0.0.1, for the duration of the block."""
    server = WebServer(free_port())
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(trio.serve_tcp, server.serve, server.port, host="127.0.0.1"))
        yield server
        nursery.cancel_scope.cancel()
