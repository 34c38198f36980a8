"""Mesh benchmark: gossip reach-all latency over 5 processes, request/response over 2.

    .venv/bin/python bench/mesh.py

Gossip: 5 separate processes, each one MeshNode on 127.0.0.1, bootstrapped as a ring (node i
dials node i+1), all on one topic. All five publish in turn at a combined 50, then 100 msg/s
for 10 s each; a message's reach-all latency runs from just before `publish()` (signing
included) in its origin to its receipt at the last of the 4 other nodes (the clocks are the
same machine's). Then the same with bare py-libp2p (same host and GossipSub settings, no
envelopes), to tell what the mesh layer costs from what the library costs on this machine.

Request/response: 2 processes, one persistent stream, sequential requests (p50, p99, rate)
and 8 concurrent callers (rate); then, as first measured on py-libp2p alone, the same host settings
echoing raw framed bytes without envelopes. Figures only: nothing is asserted.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import statistics
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

import multiaddr
import trio
from eth_account import Account
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.tools.anyio_service import background_trio_service

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.mesh import (
    RESULTS,
    GossipSettings,
    HostSettings,
    MeshConfig,
    MeshNode,
    PeerUnreachableError,
    identity_from_seed,
    parse_peer_addr,
    peer_id_of,
)

# The layers under MeshNode (not node.mesh's API), measured on their own.
from node.mesh.framing import FrameReader, frame
from node.mesh.gossip import new_pubsub
from node.mesh.host import build_host, dial, is_connected

NODES = 5
RATES = (50, 100)
DURATION_S = 10.0
GRACE_S = 3.0
REQUESTS = 2000
CONCURRENCY = 8
CHAIN_ID = 31337
RAW_PROTOCOL = TProtocol("/triggerx/bench-raw/1")
MAX_FRAME = 1 << 20
OPERATORS = [Account.from_key((index + 1).to_bytes(32, "big")) for index in range(NODES)]
ACTIVE = {account.address for account in OPERATORS}
STAMP = struct.Struct(">BIq")  # origin, sequence number, publish time (ns)
DROPPED = "mesh_messages_dropped_total"
DUPLICATES = "mesh_messages_duplicate_total"
RECV_TIMEOUT_S = 120.0


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    for probe in probes:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in probes]
    for probe in probes:
        probe.close()
    return ports


def address(index: int, port: int) -> str:
    return f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_of(identity_from_seed(bytes([index + 1]) * 32))}"


def make_node(index: int, port: int, bootstrap: tuple[str, ...]) -> MeshNode:
    config = MeshConfig(
        chain_id=CHAIN_ID, listen=f"/ip4/127.0.0.1/tcp/{port}", bootstrap=bootstrap, topics=(RESULTS,)
    )
    return MeshNode(
        identity_from_seed(bytes([index + 1]) * 32), OPERATORS[index], ACTIVE.__contains__, config
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def receive(conn: Connection) -> object:
    """The parent's next order, read off the trio thread (Connection.recv blocks)."""
    return await trio.to_thread.run_sync(conn.recv)


def log_warnings() -> None:
    """Warnings (py-libp2p's included, which the mesh routes into logging) tagged with the process."""
    logging.basicConfig(
        level=logging.WARNING, format="  [%(processName)s] %(name)s %(levelname)s: %(message)s"
    )


def gossip_process(index: int, ports: list[int], signed: bool, conn: Connection) -> None:
    log_warnings()
    trio.run(gossip_node if signed else raw_gossip_node, index, ports, conn)


async def gossip_node(index: int, ports: list[int], conn: Connection) -> None:
    """A MeshNode: signed envelopes, validation, back-pressure, buffered delivery."""
    ring_next = (index + 1) % NODES
    async with make_node(index, ports[index], (address(ring_next, ports[ring_next]),)) as node:
        subscription = await node.subscribe(RESULTS)
        await wait_for_mesh(lambda: len(node.topic_peers(RESULTS)))

        async def receive_payload() -> bytes:
            return (await subscription.receive()).payload

        await serve_phases(
            conn, index, partial(node.publish, RESULTS), receive_payload, partial(counted, node)
        )


async def raw_gossip_node(index: int, ports: list[int], conn: Connection) -> None:
    """py-libp2p alone with the mesh's host and GossipSub settings: bare payloads, no envelopes."""
    ring_next = (index + 1) % NODES
    async with raw_host(index, ports[index]) as host:
        pubsub, router = new_pubsub(host, GossipSettings(), 30.0)
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            subscription = await pubsub.subscribe(RESULTS)
            peer = parse_peer_addr(address(ring_next, ports[ring_next]))
            while not is_connected(host, peer.peer_id):
                with suppress(PeerUnreachableError):  # the neighbour may not listen yet
                    await dial(host, peer, 5.0)
                await trio.sleep(0.1)
            await wait_for_mesh(lambda: len(router.mesh.get(RESULTS, ())))
            mine = host.get_id().to_bytes()

            async def receive_payload() -> bytes:
                while (message := await subscription.get()).from_id == mine:
                    pass  # py-libp2p delivers our own publishes too
                return message.data

            await serve_phases(
                conn, index, partial(pubsub.publish, RESULTS), receive_payload, lambda prefix: 0
            )


async def wait_for_mesh(mesh_size: Callable[[], int]) -> None:
    with trio.fail_after(RECV_TIMEOUT_S):
        while mesh_size() < 2:  # noqa: ASYNC110 - py-libp2p has no event for mesh changes
            await trio.sleep(0.05)


async def serve_phases(
    conn: Connection,
    index: int,
    publish: Callable[[bytes], Awaitable[None]],
    receive_payload: Callable[[], Awaitable[bytes]],
    count: Callable[[str], int],
) -> None:
    conn.send("ready")
    while (order := await receive(conn)) != "stop":
        rate, start_at = order  # type: ignore[misc]
        report = await gossip_phase(index, rate, start_at, publish, receive_payload, count)
        await trio.to_thread.run_sync(conn.send, report)  # a full pipe must not freeze the node


@dataclass
class PhaseReport:
    """One node's view of one rate: what it sent and received, and what it cost."""

    published: list[tuple[int, int]] = field(default_factory=list)
    received: list[tuple[int, int, int]] = field(default_factory=list)
    """(origin, sequence number, latency in ns)."""
    dropped: int = 0
    duplicates: int = 0
    cpu: float = 0.0
    """CPU seconds per wall second (1.0 = one core) over the phase, grace period included."""


def counted(node: MeshNode, prefix: str) -> int:
    return sum(value for name, value in node.metrics.snapshot().items() if name.startswith(prefix))


async def gossip_phase(
    index: int,
    rate: float,
    start_at: float,
    publish: Callable[[bytes], Awaitable[None]],
    receive_payload: Callable[[], Awaitable[bytes]],
    count: Callable[[str], int],
) -> PhaseReport:
    """Publish this node's share of `rate` msg/s for DURATION_S from `start_at`, and record receipts."""
    report = PhaseReport()
    dropped, duplicates = count(DROPPED), count(DUPLICATES)

    async def publish_share() -> None:
        start = trio.current_time() + (start_at - time.time())
        for sequence in range(index, int(rate * DURATION_S), NODES):
            await trio.sleep_until(start + sequence / rate)
            await publish(STAMP.pack(index, sequence, time.time_ns()))
            report.published.append((index, sequence))

    async def collect() -> None:
        while True:
            origin, sequence, sent_ns = STAMP.unpack(await receive_payload())
            report.received.append((origin, sequence, time.time_ns() - sent_ns))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_share)
        nursery.start_soon(collect)
        await trio.sleep(start_at - time.time())
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        await trio.sleep(DURATION_S + GRACE_S)
        nursery.cancel_scope.cancel()
    report.cpu = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    report.dropped = count(DROPPED) - dropped
    report.duplicates = count(DUPLICATES) - duplicates
    return report


def run_gossip(context: multiprocessing.context.SpawnContext, signed: bool) -> list[tuple[float, ...]]:
    """Per rate: sent, reaching all, dropped, duplicates (all nodes), p50, p99 (ms), CPU per node."""
    ports = free_ports(NODES)
    pipes = [context.Pipe() for _ in range(NODES)]
    processes = [
        context.Process(target=gossip_process, args=(index, ports, signed, pipes[index][1]), daemon=True)
        for index in range(NODES)
    ]
    for process in processes:
        process.start()
    conns = [parent for parent, _ in pipes]
    for conn in conns:
        expect(conn, "ready")
    rows = []
    for rate in RATES:
        start_at = time.time() + 1.0
        for conn in conns:
            conn.send((rate, start_at))
        reports: list[PhaseReport] = [recv(conn) for conn in conns]  # type: ignore[misc]
        published = {message for report in reports for message in report.published}
        latencies: dict[tuple[int, int], list[int]] = {}
        for report in reports:
            for origin, sequence, latency in report.received:
                latencies.setdefault((origin, sequence), []).append(latency)
        reach_all = [max(found) / 1e6 for found in latencies.values() if len(found) == NODES - 1]
        rows.append(
            (
                rate,
                len(published),
                len(reach_all),
                sum(report.dropped for report in reports),
                sum(report.duplicates for report in reports),
                *_p50_p99(reach_all),
                statistics.mean(report.cpu for report in reports),
            )
        )
    for conn in conns:
        conn.send("stop")
    for process in processes:
        process.join(timeout=30)
    return rows


def _p50_p99(values: list[float]) -> tuple[float, float]:
    return (statistics.median(values), percentile(values, 0.99)) if values else (float("nan"), float("nan"))


def expect(conn: Connection, message: str) -> None:
    if (got := recv(conn)) != message:
        raise RuntimeError(f"benchmark process said {got!r}, expected {message!r}")


def recv(conn: Connection) -> object:
    if not conn.poll(RECV_TIMEOUT_S):
        raise RuntimeError(f"a benchmark process sent nothing for {RECV_TIMEOUT_S} s")
    return conn.recv()


def server_process(port: int, raw_port: int, conn: Connection) -> None:
    log_warnings()
    trio.run(rpc_server, port, raw_port, conn)


async def rpc_server(port: int, raw_port: int, conn: Connection) -> None:
    async def echo(sender: str, payload: bytes) -> bytes:
        return payload

    async def raw_echo(stream: INetStream) -> None:
        reader = FrameReader(stream, MAX_FRAME)
        while (data := await reader.read()) is not None:
            await stream.write(frame(data, MAX_FRAME))

    node = make_node(1, port, ())
    node.register_handler("echo", echo)
    async with node, raw_host(3, raw_port) as raw:
        raw.set_stream_handler(RAW_PROTOCOL, raw_echo)
        conn.send("ready")
        await receive(conn)


@asynccontextmanager
async def raw_host(index: int, port: int) -> AsyncIterator[IHost]:
    """A bare host with the mesh's transport settings, for the no-envelope baseline."""
    listen = f"/ip4/127.0.0.1/tcp/{port}"
    host = build_host(identity_from_seed(bytes([index + 1]) * 32), listen, HostSettings())
    async with host.run([multiaddr.Multiaddr(listen)]):
        yield host
    await host.close()


def client_process(server: str, raw_server: str, conn: Connection) -> None:
    log_warnings()
    conn.send(trio.run(rpc_client, server, raw_server))


async def rpc_client(server: str, raw_server: str) -> dict[str, float]:
    payload = b"\x01" * 200
    async with make_node(0, 0, ()) as node:
        peer = await node.connect(server)
        for _ in range(200):  # warm-up: the stream, the caches
            await node.request(peer, "echo", payload, timeout=5)
        samples = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            await node.request(peer, "echo", payload, timeout=5)
            samples.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(CONCURRENCY):
                nursery.start_soon(_calls, node, peer, payload, REQUESTS // CONCURRENCY)
        concurrent_rate = REQUESTS / (time.perf_counter() - started)
    async with raw_host(2, 0) as host:
        target = parse_peer_addr(raw_server)
        await dial(host, target, 5.0)
        stream = await host.new_stream(target.peer_id, [RAW_PROTOCOL])
        reader = FrameReader(stream, MAX_FRAME)
        raw = []
        for _ in range(200 + REQUESTS):
            started = time.perf_counter()
            await stream.write(frame(payload, MAX_FRAME))
            await reader.read()
            raw.append((time.perf_counter() - started) * 1000)
        await stream.close()
    return {
        "p50": statistics.median(samples),
        "p99": percentile(samples, 0.99),
        "rate": 1000 / statistics.mean(samples),
        "concurrent": concurrent_rate,
        "raw_p50": statistics.median(raw[200:]),
    }


async def _calls(node: MeshNode, peer: str, payload: bytes, count: int) -> None:
    for _ in range(count):
        await node.request(peer, "echo", payload, timeout=5)


def run_rpc(context: multiprocessing.context.SpawnContext) -> dict[str, float]:
    port, raw_port = free_ports(2)
    server_conn, server_end = context.Pipe()
    server = context.Process(target=server_process, args=(port, raw_port, server_end), daemon=True)
    server.start()
    expect(server_conn, "ready")
    client_conn, client_end = context.Pipe()
    servers = (address(1, port), address(3, raw_port))
    client = context.Process(target=client_process, args=(*servers, client_end), daemon=True)
    client.start()
    figures = recv(client_conn)
    server_conn.send("stop")
    client.join(timeout=30)
    server.join(timeout=30)
    return figures  # type: ignore[return-value]


def main() -> None:
    context = multiprocessing.get_context("spawn")
    print(f"mesh benchmark: {NODES} processes on 127.0.0.1, GossipSub ring, signed envelopes (EIP-712)")
    print(
        f"\ngossip reach-all latency: publish -> receipt at all {NODES - 1} others, {DURATION_S:.0f} s a rate"
    )
    columns = ("sent", "reached all", "dropped", "duplicates", "p50", "p99", "CPU/node")
    print(f"  {'':>9}  {'rate':>9}  " + "  ".join(f"{column:>{max(8, len(column))}}" for column in columns))
    for signed, label in ((True, "MeshNode"), (False, "bare")):
        for rate, sent, reached, dropped, duplicates, p50, p99, cpu in run_gossip(context, signed):
            print(
                f"  {label:>9}  {rate:>5.0f} /s  {sent:>8}  {reached:>11}  {dropped:>8}  {duplicates:>10}"
                f"  {p50:>5.1f} ms  {p99:>5.1f} ms  {cpu:>7.0%}"
            )
    print("  bare = py-libp2p with the same host and GossipSub settings, payloads without envelopes")
    print("  py-libp2p alone (5-node ring, 100 msg/s, no envelopes): p50 7.6 ms, p99 15 ms")
    rpc = run_rpc(context)
    print(f"\nrequest/response over one persistent stream, 2 processes, {REQUESTS} requests of 200 bytes")
    print(
        f"  signed + checked both ways, sequential:  p50 {rpc['p50']:.2f} ms, p99 {rpc['p99']:.2f} ms,"
        f" {rpc['rate']:.0f} req/s"
    )
    print(f"  signed + checked both ways, {CONCURRENCY} callers:   {rpc['concurrent']:.0f} req/s")
    print(f"  raw frames, same host settings, no envelopes: p50 {rpc['raw_p50']:.2f} ms")
    print("  py-libp2p alone (raw frames): p50 0.62 ms, ~2,600 req/s")


if __name__ == "__main__":
    main()
