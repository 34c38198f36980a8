"""Mesh benchmark: gossip reach-all latency over 5 processes, request/response over 2.

    .venv/bin/python bench/mesh.py

Gossip: 5 separate processes, each one MeshNode on 127.0.0.1, bootstrapped as a ring (node i
dials node i+1), all on one topic. All five publish in turn at a combined 50, then 100 msg/s
for 10 s each; a message's reach-all latency runs from just before `publish()` (signing
included) in its origin to its receipt at the last of the 4 other nodes (the clocks are the
same machine's). Request/response: 2 processes, one persistent stream, sequential requests
(p50, p99, rate) and 8 concurrent callers (rate); then, for comparison with FIELD-NOTES, the
same hosts echoing raw framed bytes without envelopes. Figures only: nothing is asserted.
"""

from __future__ import annotations

import multiprocessing
import socket
import statistics
import struct
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import multiaddr
import trio
from eth_account import Account
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.mesh import RESULTS, MeshConfig, MeshNode, Subscription, identity_from_seed, peer_id_of
from node.mesh.framing import FrameReader, frame
from node.mesh.host import HostSettings, build_host, dial, parse_peer_addr

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


def gossip_process(index: int, ports: list[int], conn: Connection) -> None:
    trio.run(gossip_node, index, ports, conn)


async def gossip_node(index: int, ports: list[int], conn: Connection) -> None:
    ring_next = (index + 1) % NODES
    async with make_node(index, ports[index], (address(ring_next, ports[ring_next]),)) as node:
        inbox = await node.subscribe(RESULTS)
        with trio.fail_after(RECV_TIMEOUT_S):
            while len(node.topic_peers(RESULTS)) < 2:  # noqa: ASYNC110 - no event for mesh changes
                await trio.sleep(0.05)
        conn.send("ready")
        while (order := await receive(conn)) != "stop":
            rate, start_at = order  # type: ignore[misc]
            published, received = await gossip_phase(node, inbox, index, rate, start_at)
            conn.send((published, received, node.metrics.snapshot()))


async def gossip_phase(
    node: MeshNode, inbox: Subscription, index: int, rate: float, start_at: float
) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """Publish this node's share of `rate` msg/s for DURATION_S from `start_at`, and record receipts."""
    published: list[tuple[int, int]] = []
    received: list[tuple[int, int, int]] = []

    async def publish_share() -> None:
        start = trio.current_time() + (start_at - time.time())
        for sequence in range(index, int(rate * DURATION_S), NODES):
            await trio.sleep_until(start + sequence / rate)
            await node.publish(RESULTS, STAMP.pack(index, sequence, time.time_ns()))
            published.append((index, sequence))

    async def collect() -> None:
        async for delivery in inbox:
            origin, sequence, sent_ns = STAMP.unpack(delivery.payload)
            received.append((origin, sequence, time.time_ns() - sent_ns))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_share)
        nursery.start_soon(collect)
        await trio.sleep(start_at - time.time() + DURATION_S + GRACE_S)
        nursery.cancel_scope.cancel()
    return published, received


def run_gossip(context: multiprocessing.context.SpawnContext) -> list[tuple[int, int, int, float, float]]:
    ports = free_ports(NODES)
    pipes = [context.Pipe() for _ in range(NODES)]
    processes = [
        context.Process(target=gossip_process, args=(index, ports, pipes[index][1]), daemon=True)
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
        reports = [recv(conn) for conn in conns]
        published = {message for report in reports for message in report[0]}
        latencies: dict[tuple[int, int], list[int]] = {}
        for report in reports:
            for origin, sequence, latency in report[1]:
                latencies.setdefault((origin, sequence), []).append(latency)
        reach_all = [max(found) / 1e6 for found in latencies.values() if len(found) == NODES - 1]
        dropped = sum(value for report in reports for key, value in report[2].items() if "dropped" in key)
        rows.append((rate, len(published), len(reach_all), dropped, *_p50_p99(reach_all)))
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
        f"\ngossip reach-all latency: publish -> receipt at all {NODES - 1} other nodes, {DURATION_S:.0f} s a rate"
    )
    print(
        f"  {'rate':>9}  {'sent':>5}  {'reached all':>11}  {'dropped':>7}  {'p50':>8}  {'p99':>8}   baseline"
    )
    baseline = {100: "p50 7.6 ms, p99 15 ms"}
    for rate, sent, reached, dropped, p50, p99 in run_gossip(context):
        print(
            f"  {rate:>5} /s  {sent:>5}  {reached:>11}  {dropped:>7}  {p50:>5.1f} ms  {p99:>5.1f} ms"
            f"   {baseline.get(rate, '-')}"
        )
    rpc = run_rpc(context)
    print(f"\nrequest/response over one persistent stream, 2 processes, {REQUESTS} requests of 200 bytes")
    print(
        f"  signed + checked both ways, sequential: p50 {rpc['p50']:.2f} ms, p99 {rpc['p99']:.2f} ms, "
        f"{rpc['rate']:.0f} req/s   FIELD-NOTES: p50 0.62 ms (raw frames)"
    )
    print(
        f"  signed + checked both ways, {CONCURRENCY} concurrent callers: {rpc['concurrent']:.0f} req/s"
        "   FIELD-NOTES: ~2,600 req/s (raw frames)"
    )
    print(f"  raw framed echo on the same hosts (no envelopes): p50 {rpc['raw_p50']:.2f} ms")


if __name__ == "__main__":
    main()
