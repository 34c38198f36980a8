"""Every node's /metrics (node/metrics.py): real mesh nodes count, a real HTTP server serves
their registries, httpx scrapes and prometheus_client's parser reads what it serves."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import trio
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from node.config import ConfigError
from node.keeper import VoteSender
from node.mesh import DROP_REASONS, Metrics, RemoteError
from node.metrics import (
    MESH_DROPS,
    KeeperMetrics,
    MetricsLimits,
    NodeMetrics,
    parse_sample,
    serve_metrics,
    start_metrics,
)

from .test_mesh import OUTSIDER, make_node, until

TIGHT = MetricsLimits(head_timeout=0.5, connection_timeout=3.0, linger_seconds=0.2)


async def scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics at `address`, parsed: value by (sample name, sorted labels)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{address}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


async def test_each_node_serves_its_own_counters_and_its_meshs():
    """A keeper sends a vote, an outsider is refused by the aggregator's mesh: each node's
    scrape shows its own counts (two nodes in one process share nothing)."""

    async def vote(sender: str, payload: bytes) -> bytes:
        return b"decided"

    aggregator = make_node(1)
    aggregator.register_handler("vote", vote)
    keeper_metrics, aggregator_metrics = NodeMetrics(), NodeMetrics()
    keeper_stats = KeeperMetrics(keeper_metrics)
    async with (
        make_node(0) as keeper,
        aggregator,
        make_node(3, operator=OUTSIDER) as outsider,
        trio.open_nursery() as nursery,
    ):
        keeper_metrics.export_counts(keeper.metrics, MESH_DROPS)
        aggregator_metrics.export_counts(aggregator.metrics, MESH_DROPS)
        keeper_at = await nursery.start(serve_metrics, keeper_metrics.registry, "127.0.0.1:0")
        aggregator_at = await nursery.start(serve_metrics, aggregator_metrics.registry, "127.0.0.1:0")

        await keeper.connect(aggregator.listen_addrs[0])
        sender = VoteSender(keeper, [aggregator.peer_id], stats=keeper_stats)
        nursery.start_soon(sender.run)
        sender.add((1, 1, b"r"), b"a vote", time.time() + 60)
        await until(lambda: not sender.pending)
        await outsider.connect(aggregator.listen_addrs[0])
        with pytest.raises(RemoteError):
            await outsider.request(aggregator.peer_id, "vote", b"not an operator", timeout=5)

        seen = await scrape(keeper_at)
        assert seen[key("triggerx_keeper_votes_sent_total", reply="decided")] == 1
        assert seen[key("triggerx_keeper_votes_sent_total", reply="rejected")] == 0
        assert seen[key("triggerx_mesh_rpc_requests_total", method="vote")] == 1
        for reason in DROP_REASONS:  # every reason shown, none counted
            assert seen[key("triggerx_mesh_messages_dropped_total", reason=reason)] == 0

        seen = await scrape(aggregator_at)
        assert seen[key("triggerx_mesh_messages_dropped_total", reason="unknown_sender")] == 1
        assert seen[key("triggerx_mesh_messages_dropped_total", reason="replay")] == 0
        assert seen[key("triggerx_mesh_rpc_served_total", method="vote")] == 1
        assert not [name for name, _ in seen if name.startswith("triggerx_keeper_")]
        nursery.cancel_scope.cancel()


async def test_counts_are_read_at_scrape_time_with_their_labels_intact():
    counts = Metrics()
    metrics = NodeMetrics()
    metrics.export_counts(counts, MESH_DROPS)
    tricky = 'a "quoted" \\ back\nslash'
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve_metrics, metrics.registry, "127.0.0.1:0")
        assert key("triggerx_mesh_messages_dropped_total", reason="flood") in await scrape(address)
        counts.inc("mesh_messages_dropped_total", 2, reason="flood")
        counts.inc("mesh_rpc_failures_total", method="vote", code=tricky)
        counts.inc("mesh_bootstrap_disconnects_total")
        seen = await scrape(address)
        assert seen[key("triggerx_mesh_messages_dropped_total", reason="flood")] == 2
        assert seen[key("triggerx_mesh_rpc_failures_total", method="vote", code=tricky)] == 1
        assert seen[key("triggerx_mesh_bootstrap_disconnects_total")] == 1
        nursery.cancel_scope.cancel()
    assert parse_sample('x_total{a="1",b="q\\"r"}') == ("x_total", {"a": "1", "b": 'q"r'})
    with pytest.raises(ValueError, match="not a sample name"):
        parse_sample('x{a="1"')


async def test_only_get_metrics_is_served_and_errors_are_json():
    metrics = NodeMetrics()
    KeeperMetrics(metrics)
    async with trio.open_nursery() as nursery, httpx.AsyncClient() as client:
        address = await nursery.start(serve_metrics, metrics.registry, "127.0.0.1:0")
        base = f"http://{address}"
        for path in ("/", "/metricsx", "/metrics/", "/api/keepers"):
            response = await client.get(base + path)
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/json"
            assert "GET /metrics" in response.json()["error"]
        response = await client.post(base + "/metrics", content=b"{}")
        assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD")
        assert "error" in response.json()
        head = await client.head(base + "/metrics")
        assert (head.status_code, head.content) == (200, b"")
        assert int(head.headers["content-length"]) > 1000
        query = await client.get(base + "/metrics?name[]=x")
        assert "triggerx_keeper_tasks_executed_total" in query.text
        nursery.cancel_scope.cancel()


async def exchange(address: str, request: bytes, *, trickle: float | None = None) -> tuple[bytes, float]:
    """Send `request` raw (a byte every `trickle` seconds if given) while reading the answer;
    what came back before the server closed, and how long that took."""
    host, port = address.rsplit(":", 1)
    started = time.monotonic()
    stream = await trio.open_tcp_stream(host, int(port))
    answer = b""

    async def send() -> None:
        try:
            if trickle is None:
                await stream.send_all(request)
            else:
                for byte in request:
                    await stream.send_all(bytes([byte]))
                    await trio.sleep(trickle)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # cut off: what the test is about

    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(send)
        with trio.fail_after(10):
            try:
                while data := await stream.receive_some(65536):
                    answer += data
            except trio.BrokenResourceError:
                pass
        nursery.cancel_scope.cancel()
    return answer, time.monotonic() - started


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head
    return int(head.split(b" ")[1]), json.loads(body)["error"]


async def test_a_slow_silent_or_oversized_request_is_cut():
    metrics = NodeMetrics()
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve_metrics, metrics.registry, "127.0.0.1:0", TIGHT)
        # Slowloris: headers a byte at a time never finish within the head timeout.
        answer, took = await exchange(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" * 20, trickle=0.05)
        assert status_and_error(answer) == (408, "the request's headers took too long")
        assert took < 2.0
        # Silent: a connection that sends nothing is closed too.
        answer, took = await exchange(address, b"")
        assert status_and_error(answer)[0] == 408
        assert took < 2.0
        # Headers over the limit: 431, not buffered.
        huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
        answer, _ = await exchange(address, huge)
        assert status_and_error(answer)[0] == 431
        # Garbage is a 400.
        answer, _ = await exchange(address, b"\x16\x03\x01 not http\r\n\r\n")
        assert status_and_error(answer)[0] == 400
        # A body is refused at its declared size, never read.
        answer, _ = await exchange(
            address, b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\n"
        )
        assert status_and_error(answer) == (413, "a request body is at most 4096 bytes")
        chunked = b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        assert status_and_error((await exchange(address, chunked))[0])[0] == 413
        # The server answers the next honest scrape as ever.
        assert await scrape(address) == {}
        nursery.cancel_scope.cancel()


async def test_a_huge_upload_is_cut_off():
    """Declaring and sending 200 MB: the server answers 413 at once and closes; the client's
    upload fails long before it is through (what it got in is what the socket buffers held)."""
    metrics = NodeMetrics()
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve_metrics, metrics.registry, "127.0.0.1:0", TIGHT)
        host, port = address.rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        size, sent, chunk = 200 * 2**20, 0, b"x" * 65536
        async with stream:
            await stream.send_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            with trio.fail_after(10):
                try:
                    while sent < size:
                        await stream.send_all(chunk)
                        sent += len(chunk)
                except trio.BrokenResourceError:
                    pass
        assert sent < size // 4
        assert await scrape(address) == {}  # and goes on serving
        nursery.cancel_scope.cancel()


async def test_connections_beyond_the_cap_are_refused_until_one_ends():
    metrics = NodeMetrics()
    patient = MetricsLimits(head_timeout=10.0, max_connections=3, linger_seconds=0.2)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve_metrics, metrics.registry, "127.0.0.1:0", patient)
        host, port = address.rsplit(":", 1)
        idle = [await trio.open_tcp_stream(host, int(port)) for _ in range(patient.max_connections)]
        await trio.sleep(0.05)  # the server has taken them
        answer, took = await exchange(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_and_error(answer) == (503, "too many connections; try again")
        assert took < 5.0  # at once, not after the idle ones time out
        for stream in idle:
            await stream.aclose()
        await trio.sleep(0.05)
        assert await scrape(address) == {}
        nursery.cancel_scope.cancel()


class Broken(Collector):
    def collect(self):
        raise RuntimeError("a collector bug")


async def test_a_broken_collector_costs_the_scrape_not_the_server():
    registry = CollectorRegistry()
    registry.register(Broken())
    async with trio.open_nursery() as nursery, httpx.AsyncClient() as client:
        address = await nursery.start(serve_metrics, registry, "127.0.0.1:0")
        for _ in range(2):
            response = await client.get(f"http://{address}/metrics")
            assert (response.status_code, response.json()) == (
                500,
                {"error": "the metrics could not be read"},
            )
        nursery.cancel_scope.cancel()


async def test_start_metrics_serves_only_when_configured_and_names_the_setting():
    metrics = NodeMetrics()
    taken = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = taken.socket.getsockname()[1]
    async with taken, trio.open_nursery() as nursery:
        assert await start_metrics(nursery, metrics, None) is None
        with pytest.raises(ConfigError, match=rf"^node.metrics_listen: cannot listen on 127.0.0.1:{port}: "):
            await start_metrics(nursery, metrics, f"127.0.0.1:{port}")
        address = await start_metrics(nursery, metrics, "[::1]:0")
        assert address is not None
        assert address.startswith("[::1]:")
        assert await scrape(address) == {}
        nursery.cancel_scope.cancel()
