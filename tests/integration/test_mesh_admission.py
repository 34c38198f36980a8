"""Security review finding 8: what a libp2p peer can make a node hold, on real hosts over 127.0.0.1.

Each test performs the attack with a real py-libp2p host (the attacker) against a real
MeshNode, and checks that the node refuses it, bounds it, and counts it. The last one is a
crash the partition test found: one malformed gossip RPC stopped the node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import msgspec
import multiaddr
import pytest
import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11 as GOSSIP_PROTOCOL

import node.mesh.validation
from node.mesh import (
    RPC_PROTOCOL,
    ConnectionLostError,
    Envelope,
    EnvelopeSigner,
    HostSettings,
    MeshConfig,
    MeshNode,
    PeerUnreachableError,
    RemoteError,
    RpcSettings,
    identity_from_seed,
    parse_peer_addr,
    peer_id_of,
)

# The layers under MeshNode (not node.mesh's API): raw peers and envelopes are built from them.
from node.mesh.envelope import encode_envelope, recover_signer
from node.mesh.host import build_host
from node.mesh.names import request_kind
from tests.integration.test_mesh import ACTIVE, CHAIN_ID, LOCALHOST, OPERATORS, OUTSIDER, WAIT_S, until

SERVER_SEED, CLIENT_SEED, ATTACKER_SEED = 21, 22, 23


def peer_of(seed: int) -> str:
    """The base58 peer id of the identity with seed `bytes([seed]) * 32`."""
    return peer_id_of(identity_from_seed(bytes([seed]) * 32))


def gated_node(seed: int, operator_index: int, allowed: set[str], **settings: Any) -> MeshNode:
    """A node that admits only the peer ids in `allowed` (a live set: tests change it)."""
    config = replace(MeshConfig(chain_id=CHAIN_ID, listen=LOCALHOST), **settings)
    return MeshNode(
        identity_from_seed(bytes([seed]) * 32),
        OPERATORS[operator_index] if operator_index >= 0 else OUTSIDER,
        ACTIVE.__contains__,
        config,
        allowed_peers=allowed.__contains__,
    )


@asynccontextmanager
async def echo_server_client_and_attacker() -> AsyncIterator[tuple[MeshNode, MeshNode, IHost]]:
    """A server admitting the client and the attacker, with an `echo` handler; the client (a
    mesh node admitting the server) and the attacker (a bare libp2p host), all running."""
    server = gated_node(SERVER_SEED, 1, {peer_of(CLIENT_SEED), peer_of(ATTACKER_SEED)})
    server.register_handler("echo", echo)
    async with (
        server,
        gated_node(CLIENT_SEED, 0, {peer_of(SERVER_SEED)}) as client,
        raw_host(ATTACKER_SEED) as bad,
    ):
        yield server, client, bad


@asynccontextmanager
async def raw_host(seed: int) -> AsyncIterator[IHost]:
    """A bare py-libp2p host (Noise, Yamux) that speaks whatever the test writes: the attacker."""
    host = build_host(identity_from_seed(bytes([seed]) * 32), LOCALHOST, HostSettings())
    async with host.run([multiaddr.Multiaddr(LOCALHOST)]):
        yield host
    await host.close()


async def open_rpc(host: IHost, node: MeshNode) -> INetStream:
    """Connect `host` to `node` and open one RPC stream to it."""
    peer = parse_peer_addr(node.listen_addrs[0])
    await host.connect(peer)
    return await host.new_stream(peer.peer_id, [TProtocol(RPC_PROTOCOL)])


async def is_cut(stream: INetStream, within: float) -> bool:
    """Whether the other side closed or reset `stream` within `within` seconds."""
    with trio.move_on_after(within):
        try:
            data = await stream.read(1)
        except Exception:  # StreamReset, StreamEOF, muxer errors: the stream is gone
            return True
        return data == b""
    return False


async def echo(sender: str, payload: bytes) -> bytes:
    return payload


async def test_finding8_unregistered_peer_cannot_hold_a_connection_or_open_streams():
    allowed = {peer_of(CLIENT_SEED)}
    server = gated_node(SERVER_SEED, 1, allowed)
    server.register_handler("echo", echo)
    async with (
        server,
        gated_node(CLIENT_SEED, 0, {peer_of(SERVER_SEED)}) as client,
        raw_host(ATTACKER_SEED) as bad,
    ):
        attacker = ID.from_base58(peer_of(ATTACKER_SEED))
        with trio.fail_after(WAIT_S):
            try:
                await open_rpc(bad, server)
            except Exception:  # refused during the dial or the stream: either is a refusal
                pass
            else:
                pytest.fail("an unregistered peer opened an RPC stream")
        await until(lambda: peer_of(ATTACKER_SEED) not in server.connected_peers())
        assert server.metrics.get("mesh_peers_refused_total", stage="connection") >= 1
        assert (
            server.metrics.get("mesh_rpc_streams_refused_total", reason="not_allowed") == 0
        )  # never got one
        # Nor does the node dial it, and a registered peer is served as before.
        with pytest.raises(PeerUnreachableError, match="not an allowed peer"):
            await server.connect(f"{bad.get_addrs()[0]}")
        assert attacker not in {ID.from_base58(peer) for peer in server.connected_peers()}
        await client.connect(server.listen_addrs[0])
        assert await client.request(server.peer_id, "echo", b"hi", timeout=5) == b"hi"


async def test_finding8_a_peer_removed_from_the_registry_is_disconnected():
    allowed = {peer_of(CLIENT_SEED)}
    async with (
        gated_node(SERVER_SEED, 1, allowed, host=HostSettings(peer_recheck_interval=0.2)) as server,
        gated_node(CLIENT_SEED, 0, {peer_of(SERVER_SEED)}) as client,
    ):
        await client.connect(server.listen_addrs[0])
        assert client.peer_id in server.connected_peers()
        allowed.clear()  # the operator was deactivated
        await until(lambda: client.peer_id not in server.connected_peers())
        assert server.metrics.get("mesh_peers_refused_total", stage="recheck") >= 1


async def test_finding8_rpc_streams_per_peer_are_capped():
    cap = RpcSettings().max_streams_per_peer
    async with gated_node(SERVER_SEED, 1, {peer_of(ATTACKER_SEED)}) as server, raw_host(ATTACKER_SEED) as bad:
        streams = [await open_rpc(bad, server) for _ in range(cap)]
        for _ in range(12):
            try:
                extra = await open_rpc(bad, server)
            except Exception:  # reset while the client still negotiated: refused all the same
                continue
            assert await is_cut(extra, WAIT_S)
        assert server.metrics.get("mesh_rpc_streams_refused_total", reason="per_peer_limit") == 12
        assert [await is_cut(stream, 0.05) for stream in streams] == [
            False
        ] * cap  # the first `cap` are served
        await streams[0].reset()  # one goes away: there is room for one more
        await until(lambda: server._parts().rpc._streams.total() < cap)
        assert not await is_cut(await open_rpc(bad, server), 0.2)


async def test_a_stream_this_side_aborts_frees_its_place():
    """py-libp2p never wakes a read blocked on a stream its own side resets: a channel aborted
    here (a stalled write, a dead connection) kept its reader and its place under the cap,
    and after `cap` of them every new stream of the peer was refused (seen under overload:
    a keeper's votes refused for minutes)."""
    cap = RpcSettings().max_streams_per_peer
    async with (
        gated_node(SERVER_SEED, 1, {peer_of(ATTACKER_SEED)}) as server,
        raw_host(ATTACKER_SEED) as peer,
    ):
        rpc = server._parts().rpc
        for _ in range(2 * cap):
            await open_rpc(peer, server)
            await until(lambda: rpc._streams.total() == 1)
            (channel,) = rpc._all
            await channel.abort()  # as a failed write aborts it
            await until(lambda: rpc._streams.total() == 0)
        assert server.metrics.get("mesh_rpc_streams_refused_total", reason="per_peer_limit") == 0


async def test_a_peer_cannot_escape_the_handler_cap_with_new_streams():
    """Handlers are counted per peer, over all its streams: a new stream does not start afresh
    while the old stream's handlers still run."""
    limits = RpcSettings(max_handlers_per_peer=4)
    release = trio.Event()
    running = 0

    async def stall(sender: str, payload: bytes) -> bytes:
        nonlocal running
        running += 1
        await release.wait()
        return b"done"

    server = gated_node(SERVER_SEED, 1, {peer_of(CLIENT_SEED)}, rpc=limits)
    server.register_handler("stall", stall)
    async with server, gated_node(CLIENT_SEED, 0, {peer_of(SERVER_SEED)}) as client:
        await client.connect(server.listen_addrs[0])
        outcomes: list[str] = []

        async def ask() -> None:
            try:
                outcomes.append((await client.request(server.peer_id, "stall", b"", timeout=WAIT_S)).decode())
            except RemoteError as error:
                outcomes.append(error.code)
            except ConnectionLostError:  # the first four, whose stream the client aborts
                outcomes.append("lost")

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(ask)
            await until(lambda: running == 4)
            (channel,) = client._parts().rpc._all
            await channel.abort()  # the client's stream goes; the server's handlers run on
            for _ in range(3):
                nursery.start_soon(ask)  # on a new stream
            await until(lambda: outcomes.count("busy") == 3)
            release.set()
        assert sorted(outcomes) == ["busy"] * 3 + ["lost"] * 4
        assert server.metrics.get("mesh_rpc_failures_total", method="stall", code="busy") == 3


async def test_finding8_a_half_sent_frame_is_cut_off():
    rpc = RpcSettings(frame_timeout=0.5)
    async with (
        gated_node(SERVER_SEED, 1, {peer_of(ATTACKER_SEED)}, rpc=rpc) as server,
        raw_host(ATTACKER_SEED) as bad,
    ):
        stalled = await open_rpc(bad, server)
        await stalled.write((1000).to_bytes(4, "big") + b"x" * 10)  # 10 of 1,000 bytes, then nothing
        assert await is_cut(stalled, WAIT_S)

        # Trickling a byte at a time does not extend the deadline: it covers the whole frame.
        trickle = await open_rpc(bad, server)
        await trickle.write((1000).to_bytes(4, "big"))
        started = trio.current_time()
        with trio.move_on_after(WAIT_S):
            try:
                while True:
                    await trickle.write(b"y")
                    await trio.sleep(0.1)
            except Exception:  # the write fails once the server has reset the stream
                pass
        assert trio.current_time() - started < 3.0
        assert server.metrics.get("mesh_rpc_streams_cut_total", reason="stalled") == 2


async def test_finding8_the_frame_cap_fits_our_messages_and_cuts_bigger_ones_at_once():
    assert RpcSettings().max_frame <= 256 * 1024
    async with echo_server_client_and_attacker() as (server, client, bad):
        await client.connect(server.listen_addrs[0])
        calldata = bytes(128 * 1024)  # the largest transaction data a node's pool accepts
        assert await client.request(server.peer_id, "echo", calldata, timeout=5) == calldata

        oversized = await open_rpc(bad, server)
        await oversized.write((1024 * 1024).to_bytes(4, "big"))  # announces 1 MiB, sends nothing more
        assert await is_cut(oversized, 2.0)  # at once, not after a frame deadline
        assert server.metrics.get("mesh_rpc_streams_cut_total", reason="oversized") == 1


async def test_finding8_junk_from_unknown_senders_costs_no_signature_recovery(
    monkeypatch: pytest.MonkeyPatch,
):
    recoveries = 0

    def counting(digest: bytes, signature: bytes) -> bytes:
        nonlocal recoveries
        recoveries += 1
        return recover_signer(digest, signature)

    monkeypatch.setattr(node.mesh.validation, "recover_signer", counting)
    server = gated_node(SERVER_SEED, 1, {peer_of(CLIENT_SEED)})
    server.register_handler("echo", echo)
    # A registered peer whose operator key is not registered (or is a forger): its envelopes are junk.
    async with server, gated_node(CLIENT_SEED, -1, {peer_of(SERVER_SEED)}) as stranger:
        await stranger.connect(server.listen_addrs[0])
        for _ in range(100):
            with pytest.raises(RemoteError, match="unknown_sender"):
                await stranger.request(server.peer_id, "echo", b"junk", timeout=5)
        assert server.metrics.dropped("unknown_sender") == 100
        assert recoveries == 0
        assert server.metrics.get("mesh_signature_recoveries_total") == 0

    # The same through the checker itself, with signatures that are not even signatures.
    checker = server._checker
    junk = EnvelopeSigner(OUTSIDER, CHAIN_ID).seal(request_kind("echo"), b"x")
    for index in range(1000):
        forged = replace_signature(junk, bytes([index % 256]) * 65)
        assert checker.check(encode_envelope(forged), request_kind("echo")) == "unknown_sender"
    assert recoveries == 0

    # A registered sender's envelope is recovered once, and counted.
    honest = EnvelopeSigner(OPERATORS[0], CHAIN_ID).seal(request_kind("echo"), b"x")
    assert not isinstance(checker.check(encode_envelope(honest), request_kind("echo")), str)
    assert recoveries == 1 == server.metrics.get("mesh_signature_recoveries_total")


def replace_signature(envelope: Envelope, signature: bytes) -> Envelope:
    """`envelope` with another signature (msgspec structs are frozen)."""
    return msgspec.structs.replace(envelope, signature=signature)


async def test_a_malformed_gossip_rpc_from_a_registered_peer_does_not_stop_the_node():
    """Found by the partition test: py-libp2p let protobuf's DecodeError escape and stop the node."""
    async with echo_server_client_and_attacker() as (server, client, bad):
        peer = parse_peer_addr(server.listen_addrs[0])
        await bad.connect(peer)
        stream = await bad.new_stream(peer.peer_id, [TProtocol(GOSSIP_PROTOCOL)])
        await stream.write(b"\x05\xff\xff\xff\xff\xff")  # a 5-byte RPC that is not protobuf
        await until(lambda: server.metrics.get("mesh_gossip_streams_cut_total", reason="malformed") == 1)
        await client.connect(server.listen_addrs[0])
        assert await client.request(server.peer_id, "echo", b"still here", timeout=5) == b"still here"
