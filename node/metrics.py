"""A node's Prometheus metrics: its own registry, what each role counts, and `GET /metrics`.

Every node keeps its metrics in a `CollectorRegistry` of its own (`NodeMetrics`), never in
prometheus_client's process-wide default: tests run several nodes in one process, and each
must count only its own work. The keeper's and the aggregator's metrics are declared here
(`KeeperMetrics`, `AggregatorMetrics`) and handed to the services that move them. The mesh
keeps its own counters (node.mesh.Metrics); `NodeMetrics.export_counts` reads their snapshot
at scrape time. docs/architecture.md, "Metrics", lists every name.

`serve_metrics` answers `GET /metrics` on its own small HTTP server (the keeper and the
aggregator have no other; the gateway serves the same text from its API). A scrape is cheap,
but the port may be reachable by strangers, so a connection costs little: one request per
connection, a few KB of headers within seconds, no body read, a cap on connections at once.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from itertools import product
from typing import Protocol

import h11
import trio
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from node.config import ConfigError
from node.mesh import DROP_REASONS

__all__ = [
    "MESH_DROPS",
    "AggregatorMetrics",
    "CountsCollector",
    "KeeperMetrics",
    "MetricsLimits",
    "NodeMetrics",
    "parse_sample",
    "serve_metrics",
    "start_metrics",
]
log = logging.getLogger("triggerx.metrics")

# The `_created` series (one more per counter and histogram) tell a scraper when a counter
# started; Prometheus reads the same from a reset to 0. Off, process-wide: half the output.
disable_created_metrics()

PREFIX = "triggerx_"
Labels = dict[str, str]


class CountSource(Protocol):
    """Counters kept outside prometheus_client: node.mesh.Metrics, sample name to count."""

    def snapshot(self) -> dict[str, int]:
        """Every counter by sample name, `name{label="value",...}`."""
        ...


MESH_DROPS: tuple[tuple[str, Labels], ...] = tuple(
    ("mesh_messages_dropped_total", {"reason": reason}) for reason in DROP_REASONS
)
"""The mesh's drop counters, exported at 0 before the first drop (a rate needs a start)."""

_COUNT_HELP = {
    "mesh_messages_dropped_total": "mesh messages dropped before delivery, by reason",
    "mesh_messages_accepted_total": "gossip messages that passed validation, by topic",
    "mesh_messages_duplicate_total": "gossip messages seen before, by topic",
    "mesh_messages_delivered_total": "gossip messages handed to a local subscriber, by topic",
    "mesh_messages_published_total": "gossip messages this node published, by topic",
    "mesh_publish_backpressure_waits_total": "publishes that waited for a long peer queue",
    "mesh_publish_backpressure_timeouts_total": "publishes that gave up waiting for a peer queue",
    "mesh_gossip_streams_cut_total": "pubsub streams closed for what they sent, by reason",
    "mesh_rpc_requests_total": "requests this node sent, by method",
    "mesh_rpc_timeouts_total": "requests this node sent that got no answer in time, by method",
    "mesh_rpc_failures_total": "requests this node sent that failed, by method and code",
    "mesh_rpc_served_total": "requests this node answered, by method",
    "mesh_rpc_streams_refused_total": "request streams refused, by reason",
    "mesh_rpc_streams_cut_total": "request streams cut for what they sent, by reason",
    "mesh_signature_recoveries_total": "envelope signatures recovered (the one costly check)",
    "mesh_peers_refused_total": "peers refused a connection, by stage",
    "mesh_bootstrap_dials_total": "dials of bootstrap peers, by outcome",
    "mesh_bootstrap_disconnects_total": "connections to bootstrap peers lost",
    "mesh_bootstrap_stale_entries_dropped_total": "closed connection entries dropped before a redial",
    "aggregator_collectors_refused_total": "results no vote collector was opened for, by reason",
}
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
_UNESCAPE = re.compile(r"\\(.)")


def parse_sample(sample: str) -> tuple[str, Labels]:
    """The name and labels of a sample name as node.mesh.Metrics writes it; ValueError if it
    is not one."""
    match = _SAMPLE.fullmatch(sample)
    if match is None:
        raise ValueError(f"not a sample name: {sample!r}")
    name, inner = match.group(1), match.group(2) or ""
    labels, at = {}, 0
    while at < len(inner):
        label = _LABEL.match(inner, at)
        if label is None:
            raise ValueError(f"not a sample name: {sample!r}")
        labels[label.group(1)] = _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), label[2])
        at = label.end()
    return name, labels


class CountsCollector(Collector):
    """Exports a `CountSource`'s counters as Prometheus counters, read at each scrape (the
    source counts as it always has; nothing is copied in between). Each name gets `prefix`;
    `zeros` are samples shown at 0 until they are counted."""

    def __init__(self, source: CountSource, prefix: str = PREFIX, zeros: Iterable[tuple[str, Labels]] = ()):
        self.source, self.prefix, self.zeros = source, prefix, tuple(zeros)

    def collect(self) -> Iterator[Metric]:
        """One counter family per name in the source's snapshot."""
        counts = {(name, tuple(sorted(labels.items()))): 0.0 for name, labels in self.zeros}
        for sample, value in self.source.snapshot().items():
            name, labels = parse_sample(sample)
            counts[(name, tuple(sorted(labels.items())))] = float(value)
        families: dict[str, Metric] = {}
        for (name, labels), value in sorted(counts.items()):
            base = self.prefix + name.removesuffix("_total")
            if base not in families:
                help_text = _COUNT_HELP.get(name, f"{name} (node.mesh.Metrics)")
                families[base] = CounterMetricFamily(base, help_text)
            # Metric.add_sample, not add_metric: label names may differ between samples of a name.
            families[base].add_sample(base + "_total", dict(labels), value)
        yield from families.values()


class NodeMetrics:
    """One node's metrics, in a registry of its own (`registry`), and how to declare them."""

    def __init__(self) -> None:
        # auto_describe: a name declared twice (two collectors exporting one name) is refused.
        self.registry = CollectorRegistry(auto_describe=True)

    def counter(
        self, name: str, documentation: str, labels: Sequence[str] = (), initial: Iterable[Sequence[str]] = ()
    ) -> Counter:
        """A counter on this registry; the label values in `initial` are shown at 0 from the start."""
        counter = Counter(name, documentation, labels, registry=self.registry)
        for values in initial:
            counter.labels(*values)
        return counter

    def histogram(
        self, name: str, documentation: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        """A histogram on this registry."""
        return Histogram(name, documentation, labels, registry=self.registry, buckets=buckets)

    def gauge(self, name: str, documentation: str) -> Gauge:
        """A gauge on this registry (without labels: set it, or give it a function)."""
        return Gauge(name, documentation, registry=self.registry)

    def export_counts(self, source: CountSource, zeros: Iterable[tuple[str, Labels]] = ()) -> None:
        """Show `source`'s counters (a node.mesh.Metrics) with the others, read at each scrape."""
        self.registry.register(CountsCollector(source, PREFIX, zeros))

    def render(self) -> bytes:
        """The registry in the Prometheus text format (CONTENT_TYPE_LATEST)."""
        return generate_latest(self.registry)


TASK_OUTCOMES = ("success", "target_failed", "skipped", "refused", "reverted", "failed")
VOTES = ("approve", "reject", "abstain")
UNCHECKED = ("busy", "invalid", "error")
VOTE_REPLIES = ("counted", "decided", "rejected", "error", "unreachable")
GIVEN_UP = ("expired", "overflow")
SANDBOX_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class KeeperMetrics:
    """What a keeper counts (the mesh's counters are exported beside them by the role)."""

    def __init__(self, node: NodeMetrics | None = None) -> None:
        self.node = node or NodeMetrics()  # a registry of its own when nobody reads it
        self.tasks = self.node.counter(
            "triggerx_keeper_tasks_executed_total",
            "assignments this keeper performed, by outcome: success, target_failed (the hub called the "
            "target, which reverted), skipped (the hub recorded no call), refused, reverted (the hub "
            "would refuse it: nothing sent), failed",
            ["outcome"],
            [(outcome,) for outcome in TASK_OUTCOMES],
        )
        self.execution_gas = self.node.counter(
            "triggerx_keeper_execution_gas_total", "gas used by this keeper's hub transactions"
        )
        self.attestations = self.node.counter(
            "triggerx_keeper_attestations_total",
            "peers' results this keeper checked, by its vote: approve, reject or abstain",
            ["vote"],
            [(vote,) for vote in VOTES],
        )
        self.reports_unchecked = self.node.counter(
            "triggerx_keeper_reports_unchecked_total",
            "peers' results not checked, by reason: busy (too many checks at once), invalid "
            "(malformed, or not a result to vote on), error (the check failed)",
            ["reason"],
            [(reason,) for reason in UNCHECKED],
        )
        self.sandbox_runs = self.node.counter(
            "triggerx_keeper_sandbox_runs_total",
            "job scripts run in the sandbox, by language and status (ok, failed, timeout, cpu_limit, "
            "output_limit, killed, bad_output)",
            ["language", "status"],
        )
        self.sandbox_seconds = self.node.histogram(
            "triggerx_keeper_sandbox_run_seconds",
            "wall time of a job script's run in the sandbox",
            SANDBOX_BUCKETS,
            ["language"],
        )
        self.votes_sent = self.node.counter(
            "triggerx_keeper_votes_sent_total",
            "votes sent to an aggregator, by its reply: counted, decided, rejected, error (another "
            "failure it answered), unreachable (no answer)",
            ["reply"],
            [(reply,) for reply in VOTE_REPLIES],
        )
        self.votes_given_up = self.node.counter(
            "triggerx_keeper_votes_given_up_total",
            "votes no longer resent before a decision, by reason: expired (the deadline passed), "
            "overflow (too many held)",
            ["reason"],
            [(reason,) for reason in GIVEN_UP],
        )

    def sandbox_run(self, language: str, status: str, wall_seconds: float) -> None:
        """Count one run of a job's script."""
        self.sandbox_runs.labels(language, status).inc()
        self.sandbox_seconds.labels(language).observe(wall_seconds)


VOTE_OUTCOMES = ("accepted", "duplicate", "already_decided", "refused")
DECISIONS = ("approve", "reject")
SUBMIT_OUTCOMES = ("ok", "already_decided", "reverted", "failed")
SUBMIT_BUCKETS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class AggregatorMetrics:
    """What an aggregator counts (the mesh's and the vote desk's own counters are exported
    beside them by the role)."""

    def __init__(self, node: NodeMetrics | None = None) -> None:
        self.node = node or NodeMetrics()
        self.votes = self.node.counter(
            "triggerx_aggregator_votes_total",
            "keepers' votes received, by outcome: accepted (counted), duplicate (counted before), "
            "already_decided (the attempt is decided), refused",
            ["outcome"],
            [(outcome,) for outcome in VOTE_OUTCOMES],
        )
        self.submissions = self.node.counter(
            "triggerx_aggregator_submissions_total",
            "decisions submitted to the AttestationCenter, by decision and outcome: ok (mined), "
            "already_decided (by another aggregator), reverted, failed",
            ["decision", "outcome"],
            product(DECISIONS, SUBMIT_OUTCOMES),
        )
        self.submission_gas = self.node.counter(
            "triggerx_aggregator_submission_gas_total",
            "gas used by this aggregator's mined submissions, by decision",
            ["decision"],
            [(decision,) for decision in DECISIONS],
        )
        self.submission_seconds = self.node.histogram(
            "triggerx_aggregator_submission_seconds",
            "time from sending a submission to its outcome",
            SUBMIT_BUCKETS,
        )
        self.collectors_open = self.node.gauge(
            "triggerx_aggregator_collectors_open", "vote collectors open (one per claimed result)"
        )


@dataclass(frozen=True)
class MetricsLimits:
    """What one connection to the metrics server may cost."""

    max_head_bytes: int = 8 * 1024  # request line and headers
    max_body_bytes: int = 4 * 1024  # a larger declared body (or a chunked one) is refused, never read
    head_timeout: float = 5.0  # the headers must have come this long after the connection opened
    connection_timeout: float = 15.0  # the whole exchange, answer included
    max_connections: int = 16  # at once; more are answered 503 and closed
    linger_seconds: float = 1.0  # after the answer, what the client still sends is read this long
    linger_bytes: int = 64 * 1024  # ... and at most this much


async def serve_metrics(
    registry: CollectorRegistry,
    listen: str,
    limits: MetricsLimits | None = None,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer `GET /metrics` on `listen` ("host:port", an IPv6 host in brackets; port 0 lets the
    system choose) with `registry`'s metrics, until cancelled; anything else gets a JSON error.
    Starts with the address it listens on ("host:port"); OSError if it cannot listen."""
    host, _, port = listen.rpartition(":")
    listeners = await trio.open_tcp_listeners(int(port), host=host.removeprefix("[").removesuffix("]"))
    server = _Server(registry, limits or MetricsLimits())
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.serve, listeners)
        task_status.started(_address(listeners[0]))


async def start_metrics(nursery: trio.Nursery, metrics: NodeMetrics, listen: str | None) -> str | None:
    """Serve `metrics` in `nursery` on `listen` (`[node] metrics_listen`; None: nothing served);
    the address it listens on. ConfigError naming the setting if it cannot listen there."""
    if listen is None:
        return None
    try:
        address: str = await nursery.start(serve_metrics, metrics.registry, str(listen))
    except OSError as error:
        problem = error.strerror or str(error)
        raise ConfigError(f"node.metrics_listen: cannot listen on {listen}: {problem}") from None
    log.info("metrics at http://%s/metrics", address)
    return address


def _address(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    return f"[{host}]:{port}" if listener.socket.family == socket.AF_INET6 else f"{host}:{port}"


class _Server:
    """One request per connection: read its head, answer, close."""

    def __init__(self, registry: CollectorRegistry, limits: MetricsLimits) -> None:
        self.registry, self.limits = registry, limits
        self.open = 0

    async def serve(self, stream: trio.SocketStream) -> None:
        """Handle one connection; nothing a client does escapes (it would stop the node)."""
        async with stream:
            try:
                if self.open >= self.limits.max_connections:
                    with trio.move_on_after(self.limits.linger_seconds):
                        await stream.send_all(_error(503, "too many connections; try again"))
                    return
                self.open += 1
                try:
                    with trio.move_on_after(self.limits.connection_timeout):
                        await self._exchange(stream)
                finally:
                    self.open -= 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away

    async def _exchange(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head_bytes)
        with trio.move_on_after(self.limits.head_timeout) as waited:
            head = await _read_head(stream, connection)
        if waited.cancelled_caught:
            answer = _error(408, "the request's headers took too long")
        elif head is None:
            return
        elif isinstance(head, int):
            answer = _error(head, "not a valid HTTP/1.1 request")
        else:
            answer = self._answer(head)
        await stream.send_all(answer)
        # Closing with unread input resets the connection, which can destroy the answer on its
        # way: half-close, then read (and drop) what the client still sends, a bounded while.
        await stream.send_eof()
        with trio.move_on_after(self.limits.linger_seconds):
            left = self.limits.linger_bytes
            while left > 0 and (data := await stream.receive_some(min(left, 16 * 1024))):
                left -= len(data)

    def _answer(self, request: h11.Request) -> bytes:
        headers = dict(request.headers)
        declared = headers.get(b"content-length", b"0")
        # h11 checked it is digits; more than 18 of them is more than any limit.
        too_big = len(declared) > 18 or int(declared) > self.limits.max_body_bytes
        if b"transfer-encoding" in headers or too_big:
            return _error(413, f"a request body is at most {self.limits.max_body_bytes} bytes")
        if request.target.split(b"?", 1)[0] != b"/metrics":
            return _error(404, "not found: this server answers GET /metrics only")
        if request.method not in (b"GET", b"HEAD"):
            return _error(405, "GET /metrics only", (("allow", "GET, HEAD"),))
        try:
            body = generate_latest(self.registry)
        except Exception:  # a broken collector must cost the scrape, never the node
            return _error(500, "the metrics could not be read")
        return _response(200, CONTENT_TYPE_LATEST, body, head=request.method == b"HEAD")


async def _read_head(stream: trio.SocketStream, connection: h11.Connection) -> h11.Request | int | None:
    """The request on `stream` (its body, if any, is not read); the status to answer a
    malformed one with (400, or 431 for headers over the limit); None if the client left."""
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as error:
            return error.error_status_hint
        if isinstance(event, h11.Request):
            return event
        if event is not h11.NEED_DATA:
            return None
        data = await stream.receive_some(4096)
        if not data:
            return None  # the client closed before its request was whole: nothing to answer
        connection.receive_data(data)


def _response(
    status: int, content_type: str, body: bytes, extra: Iterable[tuple[str, str]] = (), head: bool = False
) -> bytes:
    """A whole HTTP/1.1 response that closes the connection (`head`: without its body)."""
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"content-type: {content_type}",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else body)


def _error(status: int, reason: str, extra: Iterable[tuple[str, str]] = ()) -> bytes:
    """A JSON error, `{"error": reason}`, as the gateway's API writes them."""
    return _response(status, "application/json", json.dumps({"error": reason}).encode(), extra)
