"""Attacks on the gateway's own HTTP server (gateway.api.fast_lane): an unauthenticated client
trying to make the lane answer differently from plain hypercorn, cost it more than it costs
the client, hold its tasks, or take the whole server down.

Real parts only: the lane (serve_api) and plain hypercorn over one real LevelDB store, real
sockets on 127.0.0.1. A test marked xfail is an attack that works today (a finding); the others
are attacks the server withstands.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
from hypercorn.trio import serve

from gateway import GatewayStorage, server_config
from gateway.api import AccessRules, create_app
from gateway.api.fast_lane import hot_request, serve_api
from gateway.api.fast_reads import FastReads
from gateway.api_keys import ApiKeys
from gateway.http import HttpLimits
from gateway.metrics import GatewayMetrics
from gateway.rate_limits import RateLimiter

from . import test_fast_reads
from .test_fast_reads import _exchange, pair

# The fixtures of test_fast_reads: jobs 1 to 4 (job 4 with a big page of tasks), their tasks, API keys.
storage = test_fast_reads.storage
keys = test_fast_reads.keys

HOT = b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: g\r\nX-Trace-ID: trace-0123456789\r\n"


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@asynccontextmanager
async def lane(
    storage: GatewayStorage, keys: ApiKeys, limits: HttpLimits | None = None, **rules: object
) -> AsyncIterator[tuple[str, FastReads]]:
    """The gateway's server (lane in front of hypercorn) on 127.0.0.1, with `limits`."""
    access = AccessRules(keys, limiter=RateLimiter(clock=lambda: 0.0), **rules)  # type: ignore[arg-type]
    reads = FastReads(storage, access, GatewayMetrics())
    config = server_config("127.0.0.1:0", limits)
    async with trio.open_nursery() as nursery:
        url = (await nursery.start(serve_api, create_app(storage, access=access), config, reads))[0]
        yield url, reads
        nursery.cancel_scope.cancel()


# Raw requests that sit on the edge of what the lane takes: each must get the same bytes from
# the lane as from plain hypercorn (Quart behind it).
EDGE_REQUESTS = [
    b"GET /api/jobs/id/1 HTTP/1.1\r\nHost:\r\n\r\n",  # an empty Host
    b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: g\xff\r\n\r\n",  # obs-text in Host
    b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: <x>\r\n\r\n",
    b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: g:99999999\r\n\r\n",
    b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: [::1\r\n\r\n",
    b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: g/../x\r\n\r\n",
    b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: g\r\nHOST: g\r\n\r\n",
    HOT + b"X_Api_Key: tgx_nope\r\n\r\n",  # an underscore is not a dash (WSGI folds them; h11 does not)
    HOT + b"X-Api-Key: tgx_\xffnope\r\n\r\n",
    HOT + b"X-Api-Key: tgx\x7fnope\r\n\r\n",  # DEL: h11 takes it, the lane hands over
    HOT + b"X-Api-Key: tgx\x01nope\r\n\r\n",
    HOT + b"X-Api-Key: tgx\rnope\r\n\r\n",  # a bare CR inside a value
    HOT + b"X-Api-Key: tgx\nnope: 1\r\n\r\n",  # a bare LF inside the head
    HOT + b"X-Api-Key:\r\n\r\n",  # an empty key is a key
    HOT + b"\tX-Api-Key: tgx_nope\r\n\r\n",
    HOT + b"Connection: keep-alive,,close\r\n\r\n",
    HOT + b"Connection: CLOSE\r\n\r\n",
    HOT + b"Connection:\tclose\t\r\n\r\n",
    HOT + b"Connection: close\r\nConnection: keep-alive\r\n\r\n",
    HOT + b"Connection: keep-alive, upgrade\r\n\r\n",
    HOT + b"Keep-Alive: timeout=999\r\nTE: trailers\r\nTrailer: X\r\n\r\n",
    HOT + b"transfer-ENCODING: identity\r\n\r\n",
    HOT + b"Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
    HOT + b"Remote-Addr: 203.0.113.9\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
    HOT + b"A:\r\n" * 3000 + b"\r\n",  # many headers, within the head limit
    HOT + b"X-Filler: " + b"a" * (16 * 1024 - 90) + b"\r\n\r\n",  # at the head limit
    HOT + b"X-Filler: " + b"a" * (16 * 1024 - 60) + b"\r\n\r\n",  # just over it
    HOT + b"\r\n" + b"GET /api/jobs/id/2 HTTP/1.1\r\nHost: g\r\n\r\n" * 50,  # pipelined
    HOT + b"\r\n" + b"HEAD /api/tasks/job/1 HTTP/1.1\r\nHost: g\r\n\r\n" + HOT + b"\r\n",
    HOT + b"\r\n" + b"GET /openapi.json?x HTTP/1.1\r\nHost: g\r\n\r\n" + HOT + b"\r\n",  # hand-over mid-way
    HOT + b"\r\n\r\n" + HOT + b"\r\n",  # a stray blank line between requests
    HOT + b"\r\n" + b"\n" + HOT + b"\r\n",
    HOT + b"\r\n" + b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n\r\n" + HOT + b"\r\n",
    b"GET /api/jobs/id/1 HTTP/1.1\r\r\nHost: g\r\n\r\n",
    b"GET /api/jobs/id/1 HTTP/1.1 \r\nHost: g\r\n\r\n",
    b"GET /api/jobs/id/\xd9\xa1 HTTP/1.1\r\nHost: g\r\n\r\n",
    b"GET /api/jobs/id/1#x HTTP/1.1\r\nHost: g\r\n\r\n",
    b"GET /api/jobs/id/01 HTTP/1.1\r\nHost: g\r\n\r\n",
    b"HEAD /api/tasks/job/4 HTTP/1.1\r\nHost: g\r\n\r\n",
    b"OPTIONS /api/jobs/id/1 HTTP/1.1\r\nHost: g\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", EDGE_REQUESTS, ids=range(len(EDGE_REQUESTS)))
async def test_edge_requests_get_the_same_bytes_from_the_lane_and_from_hypercorn(
    storage,
    keys,
    request_bytes,
):
    """Differential: requests on the edge of the lane's narrow form (odd Host values, odd bytes in
    values, header spellings, Connection options, the head limit, pipelining across the
    hand-over) must get, byte for byte, what plain hypercorn gives."""
    async with pair(storage, keys) as both:
        fast, slow = (str(client.base_url).rstrip("/") for client in (both.fast, both.slow))
        answer = await _exchange(fast, request_bytes)
        assert answer == await _exchange(slow, request_bytes)


async def _answer_within(url: str, sent: bytes, seconds: float) -> bytes:
    """What the server at `url` sends for `sent` on a new connection within `seconds` (or until
    it closes the connection)."""
    stream = await trio.open_tcp_stream(*_host_port(url))
    answer = b""
    async with stream:
        await stream.send_all(sent)
        with trio.move_on_after(seconds):
            while data := await stream.receive_some():
                answer += data
    return answer


@pytest.mark.parametrize(
    "sent",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 200,  # a TLS ClientHello's start
        HOT + b"\r\n" + b"\x16\x03\x01\x00\x05hello",  # the same after a hot read
    ],
    ids=["first", "after-a-hot-read"],
)
async def test_a_request_line_that_cannot_be_one_is_refused_at_once_as_hypercorn_does(
    storage,
    keys,
    sent,
):
    """A client speaking TLS (or sending any byte below 0x21 where a request line starts) to the
    plain HTTP port: hypercorn (h11's early check) answers 400 and closes at once; so must the
    lane, not hold the connection for header_timeout and close it silently."""
    async with pair(storage, keys) as both:
        fast, slow = (str(client.base_url).rstrip("/") for client in (both.fast, both.slow))
        refused = await _answer_within(slow, sent, 2.0)
        assert refused.endswith(b"\r\n\r\n")
        assert b"HTTP/1.1 400 " in refused
        assert (await _answer_within(fast, sent, 2.0)).count(b"HTTP/1.1 400 ") == 1


def _reset_before_accept(url: str) -> None:
    """Open a TCP connection to `url` and reset it (SO_LINGER 0) before the server can accept it:
    blocking calls, no trio checkpoint in between, so the server's accept comes after the RST."""
    client = socket.create_connection(_host_port(url))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


async def test_a_connection_reset_before_it_is_accepted_does_not_stop_the_lane(storage, keys):
    """One TCP connection, reset by its client before the server accepts it (one packet, no
    request at all): the accepted socket has no peer, getpeername() raises OSError, and the
    server must go on serving everyone else."""
    async with lane(storage, keys) as (url, _):
        _reset_before_accept(url)
        await trio.sleep(0.3)
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/api/jobs/id/1")).status_code == 200


async def test_plain_hypercorn_survives_a_connection_reset_before_it_is_accepted(storage, keys):
    """The control for the test above: hypercorn's TCPServer catches the OSError of getpeername()."""
    app = create_app(storage, access=AccessRules(keys))
    async with trio.open_nursery() as nursery:
        url = (await nursery.start(serve, app, server_config("127.0.0.1:0")))[0]
        _reset_before_accept(url)
        await trio.sleep(0.3)
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/api/jobs/id/1")).status_code == 200
        nursery.cancel_scope.cancel()


async def test_a_head_trickled_byte_by_byte_is_cut_off_at_the_header_timeout(storage, keys):
    """Slowloris on the lane: a hot head sent a byte every 50 ms (it would take ~4 s) is closed,
    unanswered, once header_timeout (0.5 s) has passed since the connection opened."""
    async with lane(storage, keys, HttpLimits(header_timeout=0.5)) as (url, reads):
        stream = await trio.open_tcp_stream(*_host_port(url))
        started = trio.current_time()
        closed_at = None
        async with stream:
            with trio.fail_after(5):
                for byte in HOT + b"\r\n":
                    try:
                        await stream.send_all(bytes([byte]))
                    except trio.BrokenResourceError:
                        break
                    with trio.move_on_after(0.05):
                        if await stream.receive_some() == b"":
                            closed_at = trio.current_time()
                            break
        assert closed_at is not None
        assert closed_at - started < 1.5
        assert reads.served == 0


async def test_a_client_that_never_reads_its_answers_is_closed_after_the_read_timeout(storage, keys):
    """A pipelining flood that never reads: 300 reads of a page of ~200 KB each (60 MB) sent at once.
    The lane fills the socket's buffers, then waits at most read_timeout (1 s) per answer and
    closes: the connection ends, with far fewer than 300 answers computed."""
    async with lane(storage, keys, HttpLimits(read_timeout=1.0)) as (url, reads):
        flood = b"GET /api/tasks/job/4 HTTP/1.1\r\nHost: g\r\n\r\n" * 300
        stream = await trio.open_tcp_stream(*_host_port(url))
        async with stream:
            await stream.send_all(flood)
            await trio.sleep(3)
            with trio.fail_after(10):
                received = b""
                try:
                    while data := await stream.receive_some():
                        received += data
                except trio.BrokenResourceError:
                    pass
        assert 0 < received.count(b"HTTP/1.1 200 ") < 300
        assert reads.served < 300


async def test_headers_that_name_another_address_do_not_move_the_rate_limit(storage, keys):
    """Rate limits count the transport peer, never a header, in the lane and after the hand-over:
    with 2 requests a minute allowed, requests claiming other addresses (Remote-Addr, which Quart
    also fills in, X-Forwarded-For, Forwarded) are still the same client's."""
    spoofed = [
        b"Remote-Addr: 203.0.113.%d\r\nX-Forwarded-For: 203.0.113.%d\r\nForwarded: for=203.0.113.%d\r\n"
        % (n, n, n)
        for n in range(4)
    ]
    async with lane(storage, keys, anonymous_per_minute=2) as (url, reads):
        hot = [HOT + spoof + b"\r\n" for spoof in spoofed[:3]]
        quart = b"GET /api/jobs/id/-1 HTTP/1.1\r\nHost: g\r\n" + spoofed[3] + b"\r\n"  # hypercorn's
        answers = await _exchange(url, b"".join(hot) + quart)
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answers)
        assert statuses == [b"200", b"200", b"429", b"429"]
        assert reads.served == 3


async def test_a_hand_over_with_more_than_one_read_of_bytes_replays_them_all_in_order(
    storage,
    keys,
):
    """_Replayed against hypercorn's reads of 64 KiB: one hot read, then 700 pipelined requests for
    Quart (~75 KB, more than one of hypercorn's reads) in the same packet burst. Every request is
    answered, in order, as plain hypercorn answers the same bytes."""
    pad = b"x" * 60
    tail = b"".join(b"GET /api/jobs/id/-%d?p=%s HTTP/1.1\r\nHost: g\r\n\r\n" % (n, pad) for n in range(700))
    sent = HOT + b"\r\n" + tail
    assert len(tail) > 2**16
    async with pair(storage, keys) as both:
        fast, slow = (str(client.base_url).rstrip("/") for client in (both.fast, both.slow))
        answer = await _exchange(fast, sent)
        assert answer == await _exchange(slow, sent)
        assert answer.count(b"HTTP/1.1 ") == 701
        assert both.reads.served == 1


async def test_a_pathological_header_value_costs_linear_time(storage, keys):
    """CPU per byte: header values built to make _HEADER_LINE backtrack (runs of words and blanks
    ending in a byte it refuses) within a 16 KiB head: parsed in well under 50 ms, and twice the
    bytes cost no more than ~4 times as much (no quadratic blow-up)."""
    reads = FastReads(storage, AccessRules(keys), GatewayMetrics())

    def cost(size: int) -> float:
        head = b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: g\r\nX: " + b"a \t" * (size // 3) + b"\x01"
        started = time.perf_counter()
        for _ in range(5):
            assert hot_request(head, reads) is None
        return (time.perf_counter() - started) / 5

    small, big = min(cost(8_000) for _ in range(3)), min(cost(16_000) for _ in range(3))
    assert big < 0.05
    assert big < 4 * small + 0.002


async def _serve_until_stopped(
    storage: GatewayStorage,
    keys: ApiKeys,
    stopped: trio.Event,
    *,
    task_status: trio.TaskStatus[tuple[trio.CancelScope, str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The gateway's server, until cancelled; then `stopped`."""
    access = AccessRules(keys)
    app, config = create_app(storage, access=access), server_config("127.0.0.1:0")
    try:
        async with trio.open_nursery() as nursery:
            reads = FastReads(storage, access, GatewayMetrics())
            url = (await nursery.start(serve_api, app, config, reads))[0]
            task_status.started((nursery.cancel_scope, url))
    finally:
        stopped.set()


@pytest.mark.parametrize(
    "path",
    [
        b"/api/tasks/job/4",  # the lane's own answer: its send is cancellable
        # Handed to hypercorn, which sends in a shielded scope: serve_api closes the socket.
        b"/api/tasks/job/4?limit=100",
    ],
    ids=["lane", "handed-over"],
)
async def test_a_client_that_never_reads_does_not_hold_the_shutdown(storage, keys, path):
    """Shutdown: 300 pipelined reads of a big page (~200 KB each), never read by the client, then
    the server is cancelled (as the node cancels it on SIGTERM). It must stop within 3 s."""
    stopped = trio.Event()
    async with trio.open_nursery() as nursery:
        scope, url = await nursery.start(_serve_until_stopped, storage, keys, stopped)
        stream = await trio.open_tcp_stream(*_host_port(url))
        await stream.send_all(b"GET %s HTTP/1.1\r\nHost: g\r\n\r\n" % path * 300)
        await trio.sleep(1)
        scope.cancel()
        with trio.move_on_after(3):
            await stopped.wait()
        in_time = stopped.is_set()
        await stream.aclose()  # lets a held shutdown finish
        with trio.fail_after(10):
            await stopped.wait()
    assert in_time


@pytest.mark.parametrize(
    ("request_bytes", "answers"),
    [
        ((HOT + b"\r\n") * 3, 3),
        (HOT + b"\r\n" + b"GET /openapi.json HTTP/1.1\r\nHost: g\r\n", 1),  # then half a head
        (HOT + b"\r\n" + HOT, 1),  # then half a hot head
    ],
    ids=["pipelined", "half-a-head", "half-a-hot-head"],
)
async def test_a_client_that_half_closes_gets_whole_answers_and_a_prompt_close(
    storage, keys, request_bytes, answers
):
    """The client's EOF right after its bytes (a half-close, as `nc -N` sends): every complete
    request gets its whole answer (plain hypercorn even drops the last body of a pipelined run),
    a head cut short gets none, and the connection is closed at once, not at header_timeout.
    (Hypercorn answers a cut-short head with a 400: no one is left to read it.)"""
    async with lane(storage, keys) as (url, reads):
        stream = await trio.open_tcp_stream(*_host_port(url))
        started = trio.current_time()
        answer = b""
        async with stream:
            await stream.send_all(request_bytes)
            await stream.send_eof()
            with trio.fail_after(2):
                while data := await stream.receive_some():
                    answer += data
        assert trio.current_time() - started < 1
        assert answer.count(b"HTTP/1.1 200 ") == answers == reads.served
        assert answer.endswith(b'"condition":null}}')
