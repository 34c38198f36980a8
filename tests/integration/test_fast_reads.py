"""The hot reads answered without Quart (gateway.api.fast_lane, gateway.api.fast_reads) answer
exactly as Quart does.

Two gateways over one real store: one served by the gateway's own server (the fast lane in
front of hypercorn), one by hypercorn alone, each with its own rate limiter on a clock that
stands still (so X-RateLimit-Reset is the same) and its own metrics. Every request goes to
both, in the same order; status, body and every header but Date must be the same, and the
fast lane must have answered exactly the requests it is meant to (`FastReads.served`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import msgspec
import pytest
import trio
from hypercorn.trio import serve

from gateway import GatewayStorage, TaskLedger, server_config
from gateway.api import AccessRules, create_app
from gateway.api.fast_lane import serve_api
from gateway.api.fast_reads import BIG_EVIDENCE, FastReads
from gateway.api_keys import ApiKeys
from gateway.http import HttpLimits
from gateway.metrics import GatewayMetrics
from gateway.rate_limits import RateLimiter
from gateway.records import AttemptRecord, ConditionState, FireTimes
from node.store import Store
from node.store.keys import encode_part

from ..gateway_helpers import watching_job

Headers = dict[str, str] | list[tuple[str, str]]
TRACE = {"X-Trace-ID": "trace-0123456789"}
CORRUPT_JOB = 9  # a record the store cannot decode


@pytest.fixture
def storage(tmp_path):
    """Job 1 with its fire times and three tasks (one executed), job 2 a condition job with its
    state, job 3 with no task, job 4 with more trigger evidence than is encoded on the event
    loop, and an unreadable job 9."""
    with Store.open(tmp_path / "db") as store:
        storage = GatewayStorage(store)
        job = watching_job("interval", {"everySeconds": 60})
        storage.jobs.put(job)
        condition = {"chainId": 31337, "values": ["balance(0x" + "44" * 20 + ")"], "when": "v0 > 1"}
        storage.jobs.put(msgspec.structs.replace(watching_job("condition", condition), id=2))
        storage.condition_states.put(ConditionState(job_id=2, holds=True, block=7, error="rpc down"))
        storage.jobs.put(msgspec.structs.replace(job, id=3))
        ledger = TaskLedger(storage, clock=lambda: 1_000.5)
        tasks = [ledger.create(job, 1_000.0 + n, detail=b"\x01\x02") for n in range(3)]
        attempt = AttemptRecord(number=1, performer="0x" + "55" * 20, assigned_at=1_001.0, deadline=1_100)
        ledger.attempt_assigned(tasks[0].id, attempt)
        ledger.executed(tasks[0].id, 1, "0x" + "66" * 32, 12345)
        storage.fire_times.put(FireTimes(job_id=1, last=1_002.0, next=1_060.0))
        logged = msgspec.structs.replace(job, id=4)
        storage.jobs.put(logged)
        for n in range(BIG_EVIDENCE // 16_384 + 1):
            ledger.create(logged, 2_000.0 + n, detail=bytes([n]) * 16_384)
        with store.batch() as batch:
            batch.put(storage.jobs.space.prefix + encode_part(CORRUPT_JOB), b"not a record")
        yield storage


@pytest.fixture
def keys(storage):
    return ApiKeys(storage.store)


@dataclass
class Pair:
    """The same gateway twice: `fast` with the fast path, `slow` without."""

    fast: httpx.AsyncClient
    slow: httpx.AsyncClient
    reads: FastReads
    metrics: tuple[GatewayMetrics, GatewayMetrics]

    async def same(
        self, method: str, path: str, headers: Headers | None = None, *, fast: bool, **kw: object
    ) -> httpx.Response:
        """Ask both; they must answer alike, and the fast path must have answered iff `fast`."""
        served = self.reads.served
        one = await self.fast.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]
        other = await self.slow.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]
        assert self.reads.served == served + fast, f"{method} {path}: fast path {'not ' * fast}taken"
        assert (one.status_code, one.content) == (other.status_code, other.content), (method, path)
        assert _headers(one) == _headers(other), (method, path)
        return one


def _headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    """The raw headers, in order, but Date; a new trace id is checked and then stood for."""
    headers = []
    for name, value in response.headers.raw:
        if name == b"date":
            continue
        if name == b"x-trace-id" and value != TRACE["X-Trace-ID"].encode():
            assert re.fullmatch(rb"[0-9a-f]{32}", value), value
            value = b"<new>"
        headers.append((name, value))
    return headers


@asynccontextmanager
async def pair(storage: GatewayStorage, keys: ApiKeys, **rules: object) -> AsyncIterator[Pair]:
    """Both gateways over `storage`, served, with AccessRules(keys, **rules) each."""
    metrics = (GatewayMetrics(), GatewayMetrics())
    access = [
        AccessRules(keys, limiter=RateLimiter(clock=lambda: 0.0), **rules)  # type: ignore[arg-type]
        for _ in metrics
    ]
    apps = [
        create_app(storage, access=rule, metrics=count) for rule, count in zip(access, metrics, strict=True)
    ]
    reads = FastReads(storage, access[0], metrics[0])
    async with trio.open_nursery() as nursery:
        fast_url = (await nursery.start(serve_api, apps[0], server_config("127.0.0.1:0"), reads))[0]
        slow_url = (await nursery.start(serve, apps[1], server_config("127.0.0.1:0")))[0]
        async with httpx.AsyncClient(base_url=fast_url) as fast, httpx.AsyncClient(base_url=slow_url) as slow:
            yield Pair(fast, slow, reads, metrics)
        nursery.cancel_scope.cancel()


async def test_every_hot_read_answers_as_quart_does(storage, keys):
    async with pair(storage, keys) as both:
        job = await both.same("GET", "/api/jobs/id/1", TRACE, fast=True)
        assert job.status_code == 200
        assert job.json()["job"]["id"] == 1
        assert job.headers["x-ratelimit-remaining"] == "599"
        condition = await both.same("GET", "/api/jobs/id/2", TRACE, fast=True)
        assert condition.json()["job"]["condition"]["error"] == "rpc down"
        tasks = await both.same("GET", "/api/tasks/job/1", TRACE, fast=True)
        assert [t["id"] for t in tasks.json()["tasks"]] == [1, 2, 3]
        assert tasks.json()["cursor"] is None
        assert tasks.json()["tasks"][0]["fee"] is None  # executed, not yet approved
        assert (await both.same("GET", "/api/tasks/job/3", TRACE, fast=True)).json()["tasks"] == []
        logs = await both.same("GET", "/api/tasks/job/4", TRACE, fast=True)  # encoded in a thread
        assert len(logs.content) > 2 * BIG_EVIDENCE
        for path in ("/api/jobs/id/1", "/api/tasks/job/1"):
            head = await both.same("HEAD", path, TRACE, fast=True)
            assert head.content == b""
            assert int(head.headers["content-length"]) > 100
        await both.same("GET", "/api/jobs/id/001", TRACE, fast=True)  # whatever the id rules make of it
        for path, error in (
            ("/api/jobs/id/99", "no job 99"),
            ("/api/tasks/job/99", "no job 99"),
            ("/api/jobs/id/0", "no job 0: job ids are 1 to 9223372036854775807"),
            ("/api/tasks/job/9223372036854775808", "no job 9223372036854775808: job ids are 1 to"),
            ("/api/jobs/id/" + "9" * 60, f"no job {'9' * 20}… (60 digits): job ids are 1 to"),
            # The attack: an id of 10,000 digits (within hypercorn's 16 KiB head) is never int()ed.
            ("/api/tasks/job/" + "7" * 10_000, f"no job {'7' * 20}… (10000 digits): job ids are 1 to"),
        ):
            missing = await both.same("GET", path, TRACE, fast=True)
            assert (missing.status_code, missing.json()["error"][: len(error)]) == (404, error)
        broken = await both.same("GET", f"/api/jobs/id/{CORRUPT_JOB}", TRACE, fast=True)
        assert broken.json() == {"error": "internal error", "traceId": TRACE["X-Trace-ID"]}
        left = [int(answer.headers["x-ratelimit-remaining"]) for answer in (missing, broken)]
        assert left[1] == left[0] - 1  # counted like every other read


async def test_what_the_fast_path_does_not_answer_exactly_goes_to_quart(storage, keys):
    async with pair(storage, keys) as both:
        for path in (
            "/api/jobs/id/-1",  # the router's regex allows a sign: the handler's 404 names the id
            "/api/jobs/id/%D9%A1",  # ARABIC-INDIC DIGIT ONE: no route
            "/api/jobs/id/%C2%B9",  # SUPERSCRIPT ONE, which str.isdigit() takes: no route
            "/api/jobs/id/1/",
            "/api/jobs/id/",
            "/api/tasks/job/1?limit=2",
            "/api/jobs/id/1?unknown=1",
            "/api/tasks/job/1?limit=0",
            "/x/api/jobs/id/1",
            "/api/jobs/id/1x",
        ):
            await both.same("GET", path, TRACE, fast=False)
        page = await both.same("GET", "/api/tasks/job/1?limit=2", TRACE, fast=False)
        assert len(page.json()["tasks"]) == 2
        assert page.json()["cursor"]
        # A body (which BoundedBodies reads and bounds), and other methods: Quart's.
        await both.same("GET", "/api/jobs/id/1", TRACE, fast=False, content=b"{}")
        await both.same("GET", "/api/jobs/id/1", TRACE | {"Content-Length": "0"}, fast=False)
        refused = await both.same("POST", "/api/jobs/id/1", TRACE, fast=False)
        assert refused.status_code == 405


async def test_trace_ids_keys_and_metrics_are_the_same(storage, keys):
    key, _ = keys.issue("integrator", 50)
    revoked, record = keys.issue("leaker", 50)
    keys.change(record.key_id, revoke=True)
    async with pair(storage, keys) as both:
        await both.same("GET", "/api/jobs/id/1", fast=True)  # no trace id: a new one
        await both.same("GET", "/api/jobs/id/1", {"X-Trace-ID": "short"}, fast=True)
        await both.same("GET", "/api/jobs/id/1", {"X-Trace-ID": "trace 0123456789"}, fast=True)
        keyed = await both.same("GET", "/api/tasks/job/1", TRACE | {"X-Api-Key": key}, fast=True)
        assert (keyed.headers["x-ratelimit-limit"], keyed.headers["x-ratelimit-remaining"]) == ("50", "49")
        for bad, status in (
            ("tgx_nope", 401),
            (key[:-1] + ("B" if key.endswith("A") else "A"), 401),
            (revoked, 403),
        ):
            refused = await both.same("GET", "/api/jobs/id/1", TRACE | {"X-Api-Key": bad}, fast=True)
            assert (refused.status_code, refused.json()["field"]) == (status, "X-Api-Key")
            # A refused key is counted as its address's request: guessing keys is not free.
            assert refused.headers["x-ratelimit-limit"] == "600"
        # A header sent twice: the first counts.
        twice = [("X-Api-Key", "tgx_nope"), ("X-Api-Key", key), ("X-Trace-ID", "trace-aaaaaaaaaa")]
        assert (
            await both.same("GET", "/api/jobs/id/1", [*TRACE.items(), *twice], fast=True)
        ).status_code == 401
        await both.same("GET", "/api/jobs/id/99", TRACE, fast=True)
        await both.same("HEAD", "/api/tasks/job/1", TRACE, fast=True)
        await both.same("GET", "/api/jobs/id/-1", TRACE, fast=False)
    counted = [_requests_counted(metrics) for metrics in both.metrics]
    assert counted[0] == counted[1]
    assert counted[0] == [
        'triggerx_gateway_http_requests_total{method="GET",route="/api/jobs/id/{id}",status="2xx"} 3.0',
        'triggerx_gateway_http_requests_total{method="GET",route="/api/jobs/id/{id}",status="4xx"} 6.0',
        'triggerx_gateway_http_requests_total{method="GET",route="/api/tasks/job/{id}",status="2xx"} 1.0',
        'triggerx_gateway_http_requests_total{method="HEAD",route="/api/tasks/job/{id}",status="2xx"} 1.0',
    ]


def _requests_counted(metrics: GatewayMetrics) -> list[str]:
    rendered = metrics.node.render().decode()
    return sorted(
        line for line in rendered.splitlines() if line.startswith("triggerx_gateway_http_requests_total{")
    )


async def test_the_rate_limit_refuses_alike_with_retry_after(storage, keys):
    key, _ = keys.issue("integrator", 1)
    async with pair(storage, keys, anonymous_per_minute=2) as both:
        for remaining in ("1", "0"):
            allowed = await both.same("GET", "/api/jobs/id/1", TRACE, fast=True)
            assert allowed.headers["x-ratelimit-remaining"] == remaining
        for method in ("GET", "HEAD"):
            refused = await both.same(method, "/api/tasks/job/1", TRACE, fast=True)
            assert (refused.status_code, refused.headers["retry-after"]) == (429, "60")
        assert (
            await both.same("GET", "/api/jobs/id/1", TRACE | {"X-Api-Key": key}, fast=True)
        ).status_code == 200
        over = await both.same("GET", "/api/jobs/id/1", TRACE | {"X-Api-Key": key}, fast=True)
        assert over.json() == {"error": "over 1 requests per minute: retry in 60 s"}


async def test_a_gateway_that_requires_keys_refuses_hot_reads_without_one(storage, keys):
    key, _ = keys.issue("integrator", 50)
    async with pair(storage, keys, keys_required=True) as both:
        refused = await both.same("GET", "/api/jobs/id/1", TRACE, fast=True)
        assert (refused.status_code, refused.json()["field"]) == (401, "X-Api-Key")
        assert (
            await both.same("GET", "/api/jobs/id/1", TRACE | {"X-Api-Key": key}, fast=True)
        ).status_code == 200


async def _exchange(url: str, request: bytes) -> bytes:
    """What a server at `url` sends back for the raw bytes `request` on a new connection, until
    it closes the connection or is quiet for 0.3 s once it has begun (it may take up to 10 s to
    begin: a loaded CI machine); Date values and new trace ids stood for."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    answer = b""
    async with stream:
        await stream.send_all(request)
        while True:
            with trio.move_on_after(0.3 if answer else 10.0):
                data = await stream.receive_some()
                if not data:
                    break
                answer += data
                continue
            break
    answer = re.sub(rb"\r\nx-trace-id: [0-9a-f]{32}\r\n", b"\r\nx-trace-id: <new>\r\n", answer)
    return re.sub(rb"\r\ndate: [^\r]*", b"\r\ndate: <now>", answer)


TRACE_LINE = b"X-Trace-ID: trace-0123456789\r\n\r\n"
GET = b"GET /api/jobs/id/1 HTTP/1.1\r\nHost: gateway\r\nX-Trace-ID: trace-0123456789\r\n"
SMUGGLED = b"GET /api/jobs/id/2 HTTP/1.1\r\nHost: g\r\n\r\n"
# Raw requests, and how many of them the lane answers before hypercorn has the connection.
RAW_REQUESTS = [
    (GET + b"\r\n", 1),
    (b"HEAD /api/tasks/job/1 HTTP/1.1\r\nhost: g\r\nConnection: keep-alive, close\r\n" + TRACE_LINE, 1),
    (GET + b"\r\n" + GET + b"Connection: close\r\n\r\n", 2),  # pipelined
    (GET + b"\r\nPOST /api/jobs/id/1 HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n\r\n{}" + GET + b"\r\n", 1),
    # Smuggling: a lane that took no notice of the body would answer "GET /api/jobs/id/2" twice.
    (GET + b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED), 0),
    (GET + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0),
    (GET + b"X-Api-Key: tgx_nope\r\n folded\r\n\r\n", 0),  # obsolete line folding
    (GET + b"X-Api-Key : tgx_nope\r\n\r\n", 0),  # whitespace before the colon
    (GET + b"X-Api-Key: tgx\x00nope\r\n\r\n", 0),
    (GET + b"Host: other\r\n\r\n", 0),
    (b"GET /api/jobs/id/1 HTTP/1.1\r\n\r\n", 0),  # no Host
    (b"GET /api/jobs/id/1 HTTP/1.1\nHost: g\n\n", 0),  # LF line ends
    (b"GET /api/jobs/id/1 HTTP/1.0\r\nHost: g\r\n\r\n", 0),
    (b"get /api/jobs/id/1 HTTP/1.1\r\nHost: g\r\n\r\n", 0),
    (b"GET http://g/api/jobs/id/1 HTTP/1.1\r\nHost: g\r\n\r\n", 0),
    (b"GET  /api/jobs/id/1 HTTP/1.1\r\nHost: g\r\n\r\n", 0),
    (b"\r\n" + GET + b"\r\n", 0),
    (GET + b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n", 0),
    (GET + b"Expect: 100-continue\r\n\r\n", 0),
    (GET + b"X-Filler: " + b"a" * 17_000 + b"\r\n\r\n", 0),  # over the head limit
]


@pytest.mark.parametrize(("request_bytes", "in_lane"), RAW_REQUESTS, ids=range(len(RAW_REQUESTS)))
async def test_raw_requests_get_the_same_bytes_from_the_lane_and_from_hypercorn(
    storage, keys, request_bytes, in_lane
):
    async with pair(storage, keys) as both:
        served = both.reads.served
        fast, slow = (str(client.base_url).rstrip("/") for client in (both.fast, both.slow))
        answer = await _exchange(fast, request_bytes)
        assert answer == await _exchange(slow, request_bytes)
        assert answer.startswith(b"HTTP/1.1 ")
        assert both.reads.served == served + in_lane


async def test_a_connection_whose_head_does_not_arrive_in_time_is_closed(storage, keys):
    access = AccessRules(keys)
    reads = FastReads(storage, access, GatewayMetrics())
    config = server_config("127.0.0.1:0", HttpLimits(header_timeout=0.2))
    async with trio.open_nursery() as nursery:
        url = (await nursery.start(serve_api, create_app(storage, access=access), config, reads))[0]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        for sent in (b"", GET, GET + b"\r\n" + GET):  # silent; half a head; one answer, then half
            async with await trio.open_tcp_stream(host, int(port)) as stream:
                await stream.send_all(sent)
                answered = b""
                with trio.fail_after(10):
                    while data := await stream.receive_some():
                        answered += data
                assert answered.count(b"HTTP/1.1 200 ") == sent.count(b"\r\n\r\n")
        nursery.cancel_scope.cancel()
