"""The gateway API under hostile clients, on a real hypercorn server spoken to in raw HTTP/1.1.

Each test performs an attack from the security review (huge bodies, endless bodies, 4xx then
reuse of the connection, ids the store cannot hold) and checks that the gateway answers it
with a JSON error and keeps answering everyone else.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
from hypercorn.trio import serve

from gateway import GatewayStorage, HttpLimits, server_config
from gateway.api import create_app

# The module's constant, tested here (not the gateway's API).
from gateway.http import LINGER_SECONDS
from node.store import Store

CHAIN_ID = 31337
# Short deadlines so the tests are quick; sizes as in production.
LIMITS = HttpLimits(body_timeout=1.0, header_timeout=1.0)
CAP = LIMITS.max_body_bytes


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error(self) -> str:
        assert self.headers["content-type"] == "application/json", self.headers
        return json.loads(self.body)["error"]


class Connection:
    """One client connection, speaking HTTP/1.1 by hand (so the test controls every byte)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    async def reply(self) -> Reply:
        """The next response (sized by Content-Length, as all of the gateway's are)."""
        while b"\r\n\r\n" not in self.buffer:
            await self._fill()
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        self.buffer = bytearray(rest)
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            await self._fill()
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return Reply(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        """Wait for the server to close: True on EOF or reset, False if more data came instead."""
        try:
            return await self.stream.receive_some(65536) == b""
        except trio.BrokenResourceError:
            return True

    async def aclose(self) -> None:
        await self.stream.aclose()


def request(
    method: str, path: str, body: bytes = b"", *, length: int | None = None, extra: str = ""
) -> bytes:
    """A raw request; `length` declares a Content-Length other than the body's (the body may follow later)."""
    size = len(body) if length is None else length
    head = f"{method} {path} HTTP/1.1\r\nHost: gateway\r\n{extra}"
    if method in ("POST", "PUT") or size:
        head += f"Content-Type: application/json\r\nContent-Length: {size}\r\n"
    return head.encode() + b"\r\n" + body


GET_KEEPERS = request("GET", "/api/keepers")


@pytest.fixture
async def port(tmp_path) -> AsyncIterator[int]:
    """A gateway API on a real hypercorn server on 127.0.0.1, configured as the role should be."""
    with Store.open(tmp_path / "db") as store:
        app = create_app(GatewayStorage(store), limits=LIMITS)
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, app, server_config("127.0.0.1:0", LIMITS))
            yield int(binds[0].rsplit(":", 1)[1])
            nursery.cancel_scope.cancel()


async def answered(port: int, times: int) -> list[float]:
    """Latencies of `times` GET /api/keepers on one connection; each must be a 200."""
    connection = await Connection.open(port)
    latencies = []
    for _ in range(times):
        started = time.perf_counter()
        await connection.send(GET_KEEPERS)
        reply = await connection.reply()
        latencies.append(time.perf_counter() - started)
        assert (reply.status, json.loads(reply.body)) == (200, {"keepers": []})
    await connection.aclose()
    return latencies


async def test_finding_body_15_mb_gets_a_prompt_413_while_others_are_answered(port):
    size = 15 * 1024 * 1024
    big = await Connection.open(port)
    progress = {"sent": 0}

    async def upload() -> None:
        # Paced (~1.5 s for 15 MB) so "before the body was sent" is a fact, not a race.
        chunk = b"x" * (256 * 1024)
        try:
            while progress["sent"] < size:
                await big.send(chunk)
                progress["sent"] += len(chunk)
                await trio.sleep(0.025)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the server hung up on the rest, as it should

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await big.send(request("POST", "/api/jobs", length=size))
            started = time.perf_counter()
            nursery.start_soon(upload)
            reply = await big.reply()
            latency = time.perf_counter() - started
            sent_by_then = progress["sent"]
            others = await answered(port, 20)  # meanwhile, on another connection
            assert await big.closed_by_server()
            nursery.cancel_scope.cancel()
    print(f"413 after {latency * 1000:.1f} ms with {sent_by_then} bytes sent; others p50 "
          f"{sorted(others)[10] * 1000:.2f} ms, max {max(others) * 1000:.2f} ms")  # fmt: skip
    assert reply.status == 413
    assert reply.error == f"request body of {size} bytes is over the limit of {CAP} bytes"
    assert reply.headers["connection"] == "close"  # too big to throw away: the connection ends
    assert sent_by_then < size // 2  # answered on the header, long before the body was in


@pytest.mark.parametrize("length", ["15728640", "9" * 20])
async def test_finding_body_declared_big_and_never_sent_is_refused_and_closed(port, length):
    connection = await Connection.open(port)
    started = time.perf_counter()
    with trio.fail_after(LINGER_SECONDS + 3):
        await connection.send(
            f"POST /api/jobs HTTP/1.1\r\nHost: gateway\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        reply = await connection.reply()
        answered_after = time.perf_counter() - started
        assert await connection.closed_by_server()  # no body is coming: it does not wait for one
    size = f"{length} bytes" if len(length) < 19 else "over 10**18 bytes"
    assert (reply.status, reply.error) == (413, f"request body of {size} is over the limit of {CAP} bytes")
    assert reply.headers["connection"] == "close"
    assert answered_after < LINGER_SECONDS  # the answer comes first, the close after


async def test_finding_body_that_never_ends_is_cut_and_blocks_nobody(port):
    slow = await Connection.open(port)
    trickle = await Connection.open(port)
    await slow.send(request("POST", "/api/jobs", b'{"job": ', length=1000))  # and then nothing
    await trickle.send(request("POST", "/api/jobs", extra="Transfer-Encoding: chunked\r\n"))

    async def drip() -> None:  # a chunk every 0.1 s, forever: only a total deadline stops it
        try:
            while True:
                await trickle.send(b"1\r\n \r\n")
                await trio.sleep(0.1)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    with trio.fail_after(LIMITS.body_timeout + 4):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drip)
            started = time.perf_counter()
            others = await answered(port, 20)
            assert time.perf_counter() - started < LIMITS.body_timeout  # not held up by either
            for connection in (slow, trickle):
                reply = await connection.reply()
                assert reply.status == 408
                assert reply.error == "request body did not arrive within 1 s"
                assert reply.headers["connection"] == "close"
                assert await connection.closed_by_server()
            waited = time.perf_counter() - started
            nursery.cancel_scope.cancel()
    print(f"cut after {waited:.2f} s; others max {max(others) * 1000:.2f} ms")
    assert waited >= LIMITS.body_timeout * 0.9


async def test_finding_body_headers_that_never_end_are_cut(port):
    connection = await Connection.open(port)
    await connection.send(b"GET /api/keepers HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
    with trio.fail_after(LIMITS.header_timeout + 3):
        assert await connection.closed_by_server()


@pytest.mark.parametrize("interactive", [False, True], ids=["pipelined", "body-after-413"])
async def test_finding_body_413_then_get_on_the_same_connection_is_answered(port, interactive):
    body = b" " * (CAP * 3)  # over the limit, small enough to throw away
    connection = await Connection.open(port)
    with trio.fail_after(5):
        if interactive:  # reads the refusal first, then sends the body it had promised
            await connection.send(request("POST", "/api/jobs", length=len(body)))
            reply = await connection.reply()
            await connection.send(body + GET_KEEPERS)
        else:
            await connection.send(request("POST", "/api/jobs", body) + GET_KEEPERS)
            reply = await connection.reply()
        assert reply.status == 413
        assert "over the limit" in reply.error
        assert "connection" not in reply.headers
        following = await connection.reply()
    assert (following.status, json.loads(following.body)) == (200, {"keepers": []})


async def test_finding_body_chunked_body_over_the_limit_is_a_413_and_the_connection_lives(port):
    connection = await Connection.open(port)
    chunk = b" " * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(CAP // len(chunk) + 4))
    with trio.fail_after(5):
        await connection.send(request("POST", "/api/jobs", extra="Transfer-Encoding: chunked\r\n"))
        await connection.send(chunks + b"0\r\n\r\n" + GET_KEEPERS)
        reply = await connection.reply()
        assert (reply.status, reply.error) == (413, f"request body is over the limit of {CAP} bytes")
        following = await connection.reply()
    assert following.status == 200


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (f"/api/jobs/id/{2**63}", f"no job {2**63}: job ids are 1 to {2**63 - 1}"),
        (f"/api/tasks/id/{2**64}", f"no task {2**64}: task ids are 1 to {2**63 - 1}"),
        (f"/api/tasks/job/{2**63}", f"no job {2**63}: job ids are 1 to {2**63 - 1}"),
        ("/api/jobs/id/-1", f"no job -1: job ids are 1 to {2**63 - 1}"),
        ("/api/tasks/id/0", f"no task 0: task ids are 1 to {2**63 - 1}"),
        ("/api/tasks/job/" + "9" * 5000, f"no job {'9' * 20}… (5000 digits): job ids are 1 to"),
        ("/api/jobs/id/12", "no job 12"),
    ],
)
async def test_finding3_ids_outside_the_store_are_a_404_on_a_live_connection(port, path, error):
    connection = await Connection.open(port)
    with trio.fail_after(5):
        await connection.send(request("GET", path) + GET_KEEPERS)
        reply = await connection.reply()
        following = await connection.reply()  # the same connection goes on
    assert reply.status == 404
    assert reply.error.startswith(error)
    assert following.status == 200


async def test_every_error_is_json_and_the_connection_goes_on(port):
    connection = await Connection.open(port)
    cases = [
        (request("GET", "/nowhere"), 404, "not found"),
        (request("DELETE", "/api/jobs/id/1"), 405, "method is not allowed"),
        (request("GET", "/api/jobs/id/abc"), 404, "not found"),
        (request("GET", "/api/tasks/job/1?limit=x"), 400, "expected an integer"),  # checked first
        (request("POST", "/api/keepers", b"{}"), 405, "method is not allowed"),
    ]
    with trio.fail_after(5):
        for raw, status, error in cases:
            await connection.send(raw)
            reply = await connection.reply()
            assert (reply.status, error in reply.error.lower()) == (status, True), reply
        await connection.send(GET_KEEPERS)
        assert (await connection.reply()).status == 200
