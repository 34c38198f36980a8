"""The mesh on real libp2p hosts over 127.0.0.1: signed gossip, request/response, reconnection.

Nothing here asserts a duration: waits are bounded (`trio.fail_after`) only so that a broken
mesh fails the test instead of hanging it.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec
import multiaddr
import pytest
import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount
from libp2p import new_host
from libp2p.abc import IHost, ISubscriptionAPI
from libp2p.custom_types import TProtocol
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.tools.anyio_service import background_trio_service

from node.chain import Domain, TypedMessage
from node.mesh import (
    HEARTBEATS,
    RESULTS,
    ConnectionLostError,
    Envelope,
    EnvelopeSigner,
    GossipSettings,
    HostSettings,
    MeshConfig,
    MeshError,
    MeshNode,
    PeerUnreachableError,
    RemoteError,
    RequestRefused,
    RequestTimeoutError,
    RpcSettings,
    identity_from_seed,
    identity_seed,
    parse_peer_addr,
    peer_id_of,
)

# The layers under MeshNode (not node.mesh's API): a raw peer is built from them.
from node.mesh.envelope import encode_envelope
from node.mesh.gossip import new_pubsub
from node.mesh.host import build_host

ROOT = Path(__file__).resolve().parents[2]
CHAIN_ID = 31337
LOCALHOST = "/ip4/127.0.0.1/tcp/0"
WAIT_S = 15.0
"""Upper bound of any wait for the mesh to settle (a failure, not a measurement)."""

OPERATORS = [Account.from_key((index + 1).to_bytes(32, "big")) for index in range(4)]
ACTIVE = {account.address for account in OPERATORS[:3]}
OUTSIDER = OPERATORS[3]
"""A well-formed operator key that the registry does not know."""


def make_node(index: int, operator: LocalAccount | None = None, **settings: Any) -> MeshNode:
    """Node `index`: identity from a fixed seed, operator OPERATORS[index] unless given."""
    config = replace(MeshConfig(chain_id=CHAIN_ID, listen=LOCALHOST), **settings)
    return MeshNode(
        identity_from_seed(bytes([index + 1]) * 32),
        operator or OPERATORS[index],
        ACTIVE.__contains__,
        config,
    )


async def until(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds (mesh state changes without an event to wait on)."""
    with trio.fail_after(WAIT_S):
        while not condition():  # noqa: ASYNC110 - py-libp2p exposes no event for these states
            await trio.sleep(0.01)


async def linked(publisher: MeshNode, receiver: MeshNode, topic: str) -> None:
    """Wait until `publisher` sends `topic` to `receiver` (it is in the publisher's mesh)."""
    await until(lambda: receiver.peer_id in publisher.topic_peers(topic))


@dataclass
class RawPeer:
    """A real peer on the same host and GossipSub settings, without validators: it relays anything."""

    host: IHost
    pubsub: Pubsub
    router: GossipSub
    subscription: ISubscriptionAPI

    def meshed_with(self, node: MeshNode, topic: str) -> bool:
        return any(peer.to_base58() == node.peer_id for peer in self.router.mesh.get(topic, ()))


@asynccontextmanager
async def raw_gossip_peer(seed: int, topic: str) -> AsyncIterator[RawPeer]:
    host = build_host(identity_from_seed(bytes([seed]) * 32), LOCALHOST, HostSettings())
    pubsub, router = new_pubsub(host, GossipSettings(), 30.0)
    async with (
        host.run([multiaddr.Multiaddr(LOCALHOST)]),
        background_trio_service(pubsub),
        background_trio_service(router),
    ):
        await pubsub.wait_until_ready()
        yield RawPeer(host, pubsub, router, await pubsub.subscribe(topic))
    pubsub.seen_messages.stop()
    await host.close()


def test_envelope_digest_is_eip712_and_signature_is_the_accounts():
    operator = OPERATORS[0]
    signer = EnvelopeSigner(operator, CHAIN_ID)
    envelope = signer.seal(HEARTBEATS, b"payload", ref=b"\x07" * 16)
    typed = TypedMessage(
        Domain("TriggerX Mesh", "1", CHAIN_ID),
        "Envelope",
        [
            {"name": "kind", "type": "string"},
            {"name": "sender", "type": "address"},
            {"name": "timestampMs", "type": "uint64"},
            {"name": "nonce", "type": "bytes16"},
            {"name": "ref", "type": "bytes16"},
            {"name": "payload", "type": "bytes"},
        ],
        {
            "kind": envelope.kind,
            "sender": operator.address,
            "timestampMs": envelope.timestamp_ms,
            "nonce": envelope.nonce,
            "ref": envelope.ref,
            "payload": envelope.payload,
        },
    )
    digest = envelope.digest(signer.separator)
    assert digest == typed.digest()
    assert envelope.signature == bytes(operator.unsafe_sign_hash(digest).signature)
    assert typed.signer(envelope.signature) == operator.address


async def test_a_node_that_cannot_listen_fails_to_start():
    with pytest.raises(MeshError, match=re.escape("cannot listen on /ip4/192.0.2.1/tcp/4001")):
        async with make_node(0, listen="/ip4/192.0.2.1/tcp/4001"):
            pass


async def test_only_noise_is_spoken(caplog: pytest.LogCaptureFixture):
    """A peer offering only plaintext security (py-libp2p's default also accepts it) is refused.

    The reason reaches Python logging: py-libp2p's loggers are routed there at WARNING.
    """
    key_pair = identity_from_seed(b"\x42" * 32)
    plaintext = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(key_pair)},
        listen_addrs=[multiaddr.Multiaddr(LOCALHOST)],
    )
    async with make_node(0) as node, plaintext.run([multiaddr.Multiaddr(LOCALHOST)]):
        with pytest.raises(SwarmException), trio.fail_after(WAIT_S):
            await plaintext.connect(parse_peer_addr(node.listen_addrs[0]))
        assert node.connected_peers() == []
    await plaintext.close()
    assert "failed to negotiate the secure protocol" in caplog.text


def test_identity_round_trips_through_its_seed():
    identity = identity_from_seed(b"\x05" * 32)
    assert identity_seed(identity) == b"\x05" * 32
    assert peer_id_of(identity_from_seed(identity_seed(identity))) == peer_id_of(identity)


async def test_forged_unknown_stale_replayed_and_malformed_messages_are_dropped_and_counted():
    async with make_node(0) as honest, make_node(1) as receiver, raw_gossip_peer(9, HEARTBEATS) as attacker:
        inbox = await receiver.subscribe(HEARTBEATS)
        await honest.connect(receiver.listen_addrs[0])
        await attacker.host.connect(parse_peer_addr(receiver.listen_addrs[0]))
        await linked(honest, receiver, HEARTBEATS)
        await linked(receiver, honest, HEARTBEATS)
        await until(lambda: attacker.meshed_with(receiver, HEARTBEATS))

        await honest.publish(HEARTBEATS, b"first")
        with trio.fail_after(WAIT_S):
            first = await inbox.receive()
            original = (await attacker.subscription.get()).data  # the envelope, as relayed to it
        assert (first.sender, first.payload) == (honest.address, b"first")

        signer = EnvelopeSigner(OPERATORS[2], CHAIN_ID)  # an active operator, not running a node
        valid = msgspec.msgpack.decode(original, type=Envelope)
        attacks = {
            "bad_signature": encode_envelope(msgspec.structs.replace(valid, payload=b"tampered")),
            "unknown_sender": encode_envelope(EnvelopeSigner(OUTSIDER, CHAIN_ID).seal(HEARTBEATS, b"hi")),
            "stale": encode_envelope(signer.seal(HEARTBEATS, b"old", timestamp_ms=_now_ms() - 120_000)),
            "replay": original,
            "malformed": b"\x93not an envelope",
            "misdirected": encode_envelope(signer.seal(RESULTS, b"meant for results")),
        }
        before = {reason: receiver.metrics.dropped(reason) for reason in attacks}
        for data in attacks.values():
            await attacker.pubsub.publish(HEARTBEATS, data)
        await until(lambda: all(receiver.metrics.dropped(reason) > before[reason] for reason in attacks))

        await honest.publish(HEARTBEATS, b"second")
        with trio.fail_after(WAIT_S):
            second = await inbox.receive()
        assert (second.sender, second.payload) == (honest.address, b"second")  # nothing in between
        deltas = {reason: receiver.metrics.dropped(reason) - before[reason] for reason in attacks}
        assert deltas == dict.fromkeys(attacks, 1)
        assert receiver.metrics.get("mesh_messages_accepted_total", topic=HEARTBEATS) == 2
        # Dropped before forwarding: the honest node, the receiver's other mesh peer, saw none of them.
        assert not [name for name in honest.metrics.snapshot() if name.startswith("mesh_messages_dropped")]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_burst_of_200_crosses_three_hosts():
    async with make_node(0) as origin, make_node(1) as relay, make_node(2) as far:
        inbox = await far.subscribe(RESULTS)
        await origin.connect(relay.listen_addrs[0])
        await far.connect(relay.listen_addrs[0])
        await linked(origin, relay, RESULTS)
        await linked(relay, far, RESULTS)
        assert far.peer_id not in origin.connected_peers()  # every message needs the relay

        sent = [f"result {number}".encode() for number in range(200)]
        for payload in sent:
            await origin.publish(RESULTS, payload)
        received = []
        with trio.fail_after(WAIT_S):
            async for delivery in inbox:
                received.append((delivery.sender, delivery.payload))
                if len(received) == len(sent):
                    break
        assert sorted(received) == sorted((origin.address, payload) for payload in sent)
        assert relay.metrics.get("mesh_messages_accepted_total", topic=RESULTS) == 200
        assert origin.metrics.get("mesh_messages_published_total", topic=RESULTS) == 200
        assert not [name for name in far.metrics.snapshot() if name.startswith("mesh_messages_dropped")]


async def test_a_slow_subscriber_keeps_its_buffer_and_the_rest_is_counted():
    async with make_node(0) as origin, make_node(1, gossip=GossipSettings(subscription_buffer=4)) as slow:
        inbox = await slow.subscribe(HEARTBEATS)
        await origin.connect(slow.listen_addrs[0])
        await linked(origin, slow, HEARTBEATS)
        sent = [bytes([number]) for number in range(10)]
        for payload in sent:
            await origin.publish(HEARTBEATS, payload)

        def handled() -> tuple[int, int]:
            delivered = slow.metrics.get("mesh_messages_delivered_total", topic=HEARTBEATS)
            return delivered, slow.metrics.dropped("slow_consumer")

        await until(lambda: sum(handled()) == len(sent))
        assert handled() == (4, 6)
        kept = {(await inbox.receive()).payload for _ in range(4)}
        assert len(kept) == 4
        assert kept <= set(sent)


async def test_request_response_round_trip_and_handler_errors():
    async def reverse(sender: str, payload: bytes) -> bytes:
        return sender.encode() + b":" + payload[::-1]

    async def broken(sender: str, payload: bytes) -> bytes:
        raise ValueError(f"cannot handle {payload!r}")

    async def choosy(sender: str, payload: bytes) -> bytes:
        raise RequestRefused(f"not taking {payload!r}")

    server = make_node(1)
    server.register_handler("reverse", reverse)
    server.register_handler("broken", broken)
    server.register_handler("choosy", choosy)
    async with make_node(0) as client, server:
        await client.connect(server.listen_addrs[0])
        assert await client.request(server.peer_id, "reverse", b"abc", timeout=5) == (
            client.address.encode() + b":cba"
        )
        with pytest.raises(RemoteError) as failure:
            await client.request(server.peer_id, "broken", b"xyz", timeout=5)
        assert failure.value.code == "handler_error"
        assert "ValueError: cannot handle b'xyz'" in str(failure.value)
        # A deliberate refusal is `rejected`, with the handler's reason, not a handler error.
        with pytest.raises(RemoteError) as refused:
            await client.request(server.peer_id, "choosy", b"abc", timeout=5)
        assert (refused.value.code, "not taking b'abc'" in str(refused.value)) == ("rejected", True)
        with pytest.raises(RemoteError) as unknown:
            await client.request(server.peer_id, "missing", b"", timeout=5)
        assert unknown.value.code == "unknown_method"
        with pytest.raises(ValueError, match="method name"):
            await client.request(server.peer_id, "Not A Method", b"", timeout=5)
        # The stream outlives every failure: the next request on it still works.
        assert (
            await client.request(server.peer_id, "reverse", b"z", timeout=5)
            == client.address.encode() + b":z"
        )
        assert server.metrics.get("mesh_rpc_failures_total", method="broken", code="handler_error") == 1


async def test_requests_from_an_unknown_operator_are_rejected_and_counted():
    async def echo(sender: str, payload: bytes) -> bytes:
        return payload

    server = make_node(1)
    server.register_handler("echo", echo)
    async with server, make_node(3, operator=OUTSIDER) as stranger:
        await stranger.connect(server.listen_addrs[0])
        with pytest.raises(RemoteError) as rejected:
            await stranger.request(server.peer_id, "echo", b"hi", timeout=5)
        assert rejected.value.code == "bad_envelope"
        assert "unknown_sender" in rejected.value.detail
        assert server.metrics.dropped("unknown_sender") == 1


async def test_a_request_to_a_black_holed_peer_times_out():
    """The peer accepts TCP and never answers: the dial and the request give up on time."""
    black_hole = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = black_hole[0].socket.getsockname()[1]
    ghost = peer_id_of(identity_from_seed(b"\x77" * 32))

    async def hold(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, hold, black_hole)
        async with make_node(0, host=HostSettings(dial_timeout=1.0)) as client:
            with pytest.raises(PeerUnreachableError, match=r"within 1\.0 s"):
                await client.connect(f"/ip4/127.0.0.1/tcp/{port}/p2p/{ghost}")
            with pytest.raises(RequestTimeoutError, match=r"no reply within 0\.3 s"):
                await client.request(ghost, "echo", b"", timeout=0.3)
            assert client.metrics.get("mesh_rpc_timeouts_total", method="echo") == 1
        nursery.cancel_scope.cancel()


async def test_a_request_in_flight_fails_when_its_peer_dies():
    called = trio.Event()

    async def stall(sender: str, payload: bytes) -> bytes:
        called.set()
        await trio.sleep_forever()
        raise AssertionError("a stalled handler never returns")

    async def serve_until_called(*, task_status: trio.TaskStatus[MeshNode]) -> None:
        server = make_node(1)
        server.register_handler("stall", stall)
        async with server:
            task_status.started(server)
            await called.wait()

    async with make_node(0) as client, trio.open_nursery() as nursery:
        server = await nursery.start(serve_until_called)
        await client.connect(server.listen_addrs[0])
        with pytest.raises(ConnectionLostError):
            await client.request(server.peer_id, "stall", b"", timeout=WAIT_S)
        with pytest.raises(PeerUnreachableError):
            await client.request(server.peer_id, "stall", b"", timeout=WAIT_S)


def assert_nothing_listens_on(port: int) -> None:
    """Binding without SO_REUSEPORT (py-libp2p listens with it) fails while any listener holds `port`."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # tolerate TIME_WAIT, not a listener
        probe.bind(("127.0.0.1", port))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_restarted_bootstrap_peer_is_reconnected():
    async def echo(sender: str, payload: bytes) -> bytes:
        return payload

    port = free_port()
    listen = f"/ip4/127.0.0.1/tcp/{port}"
    aggregator_address = f"{listen}/p2p/{peer_id_of(identity_from_seed(bytes([2]) * 32))}"
    async with make_node(0, bootstrap=(aggregator_address,)) as keeper:
        async with make_node(1, listen=listen) as aggregator:
            await until(lambda: aggregator.peer_id in keeper.connected_peers())
        await until(lambda: aggregator.peer_id not in keeper.connected_peers())
        assert_nothing_listens_on(port)

        restarted = make_node(1, listen=listen)
        restarted.register_handler("echo", echo)
        async with restarted:
            inbox = await restarted.subscribe(RESULTS)
            await until(lambda: restarted.peer_id in keeper.connected_peers())
            await linked(keeper, restarted, RESULTS)
            await keeper.publish(RESULTS, b"after the restart")
            with trio.fail_after(WAIT_S):
                delivery = await inbox.receive()
            assert (delivery.sender, delivery.payload) == (keeper.address, b"after the restart")
            assert await keeper.request(restarted.peer_id, "echo", b"again", timeout=5) == b"again"
        assert keeper.metrics.get("mesh_bootstrap_dials_total", outcome="connected") == 2


async def test_a_frozen_peer_is_dropped_by_health_pings():
    """The peer's process is stopped (SIGSTOP): TCP stays up, only a failed ping can tell."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.integration.mesh_peer"], stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        with trio.fail_after(WAIT_S):
            address = (await _read_line(process.stdout)).decode().strip()
        health = HostSettings(health_interval=0.5, ping_timeout=0.5)
        async with make_node(0, host=health) as node:
            peer = await node.connect(address)
            process.send_signal(signal.SIGSTOP)
            await until(lambda: peer not in node.connected_peers())
    finally:
        process.kill()
        await process.wait()


async def _read_line(stream: trio.abc.ReceiveStream | None) -> bytes:
    assert stream is not None
    line = b""
    while not line.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            raise EOFError(f"the peer process exited before printing its address: {line!r}")
        line += chunk
    return line


async def test_a_peer_that_restarts_gossips_again():
    """py-libp2p skipped the pubsub stream of a peer that restarted (same peer id) and dropped
    the peer once its old connection died: a keeper restarted after a crash never gossiped
    again (its reports and heartbeats were lost). keep_pubsub_peers repairs that."""
    server = make_node(1)
    async with server:
        inbox = await server.subscribe(RESULTS)
        for life in range(3):
            async with make_node(0, bootstrap=(str(server.listen_addrs[0]),)) as client:
                await until(lambda: server.peer_id in client.connected_peers())
                await linked(client, server, RESULTS)
                await client.publish(RESULTS, b"life %d" % life)
                with trio.fail_after(WAIT_S):
                    delivery = await inbox.receive()
                assert delivery.payload == b"life %d" % life


async def test_a_peer_whose_connections_keep_closing_still_gets_its_requests_served():
    """A connection closed under its streams (as a failed health ping closes it) must not keep
    its rpc stream's place: the peer's later streams are served, not refused as over the limit."""

    async def echo(sender: str, payload: bytes) -> bytes:
        return payload

    server = make_node(1)
    server.register_handler("echo", echo)
    async with make_node(0) as client, server:
        for round_ in range(2 * RpcSettings().max_streams_per_peer):
            await client.connect(server.listen_addrs[0])
            assert (
                await client.request(server.peer_id, "echo", b"%d" % round_, timeout=WAIT_S) == b"%d" % round_
            )
            network = server._running.host.get_network()
            for connection in list(network.get_connections(ID.from_base58(client.peer_id))):
                await connection.close()
            await until(lambda: server.peer_id not in client.connected_peers())
        assert server.metrics.get("mesh_rpc_streams_refused_total", reason="per_peer_limit") == 0
