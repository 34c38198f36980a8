"""One libp2p host per process, built with every py-libp2p 0.8 workaround of docs/architecture.md.

- TCP + Noise only + Yamux: py-libp2p's default security also accepts PLAINTEXT and SECIO
  inbound (py-libp2p 6), and Mplex is offered as a fallback muxer; both are left out.
- `max_connections_per_peer=1`: with the default (3) every dial waits out a fixed 250 ms
  "happy eyeballs" delay for further connections (py-libp2p 1); with 1 a dial takes ~4 ms.
- Health monitoring with abort on a failed ping: otherwise a frozen peer is never noticed
  (py-libp2p 9); here it is dropped within ~`health_interval` + `ping_timeout` seconds (12),
  and so is the old connection of a peer that restarted (py-libp2p 19). The timeout is long
  because an overloaded node answers pings late: with 3 s, every connection of a devnet
  offered twice the tasks it could attest failed its first ping within seconds, and dropping
  them turned slowness into a partition, lost votes and more load (py-libp2p 22).
- The swarm's own dial retries are off: the bootstrap loop retries with its own bounded
  backoff, and the swarm's three retries only made each failed dial take ~3x longer.
- Every dial is wrapped in `trio.move_on_after` (a dial to a black-holed peer can block ~2 min)
  and first lifts the 60 s block py-libp2p puts on a peer after one failed dial
  (py-libp2p 9, 10), since a dial here is always someone asking to (re)connect.
- Peer admission (admission.py) runs in py-libp2p's resource manager: its `open_connection` is
  asked with the remote peer id right after the security handshake and before the muxer
  starts, and a denial there is logged at DEBUG only. It is the one hook that sees the proven
  peer id before any stream can be opened.
- `dial` first drops connection entries that are already closed: py-libp2p's `connect`
  returns at once, without dialing, while any entry for the peer remains, even a closed one
  (its removal waits on a muxer close that can hang on a frozen peer). That made the
  bootstrap loop spin on "connected" (10 million log lines in 11 minutes); `dial` also
  reports a `connect` that returns without an open connection as a failure.
- The `libp2p` loggers go to Python logging at WARNING, each distinct line once a minute with a
  count: by default they do not propagate and `auto_connector` forces INFO on itself
  (py-libp2p 13). The TCP transport's ERROR for each refused dial is silenced: the same
  text is raised to the dialer, which reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.rcmgr import ResourceManager, new_resource_manager
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from node.mesh.errors import PeerUnreachableError
from node.mesh.logdedup import DedupHandler

ED25519_SEED_BYTES = 32


def identity_from_seed(seed: bytes) -> KeyPair:
    """The Ed25519 libp2p identity whose private key is the 32-byte `seed`."""
    if len(seed) != ED25519_SEED_BYTES:
        raise ValueError(f"an Ed25519 seed is {ED25519_SEED_BYTES} bytes, got {len(seed)}")
    private_key = Ed25519PrivateKey.from_bytes(seed)
    return KeyPair(private_key, private_key.get_public_key())


def identity_seed(identity: KeyPair) -> bytes:
    """The 32-byte seed of an Ed25519 identity: all it takes to store and rebuild it."""
    if not isinstance(identity.private_key, Ed25519PrivateKey):
        raise ValueError("the mesh identity must be an Ed25519 key pair")
    return identity.private_key.to_bytes()


def peer_id_of(identity: KeyPair) -> str:
    """The base58 peer id of `identity` (what multiaddrs carry after /p2p/)."""
    return ID.from_pubkey(identity.public_key).to_base58()


def peer_id_text(raw: bytes) -> str | None:
    """A peer id's bytes (as the operator registry holds them) in base58, or None if they are
    not a peer id."""
    try:
        return ID(raw).to_base58()
    except Exception:  # py-libp2p raises several types for bytes that are no multihash
        return None


def parse_peer_addr(address: str) -> PeerInfo:
    """The peer id and address in a multiaddr ending in /p2p/<id>; ValueError otherwise."""
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(address))
    except Exception as error:  # multiaddr and py-libp2p raise several unrelated types
        raise ValueError(f"not a multiaddr ending in /p2p/<peer id>: {address!r} ({error})") from None


def route_libp2p_logging() -> None:
    """Send py-libp2p's log records through Python logging (the node's handlers) at WARNING.

    Through a DedupHandler, not plain propagation: some py-libp2p warnings repeat once per
    message (a peer's pending gossip queue over its limit logged ~20 lines/s after a peer
    restart under load), so each distinct warning is written once a minute with a count.
    """
    root = logging.getLogger("libp2p")
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    root.propagate = False
    root.addHandler(DedupHandler(logging.getLogger()))
    # auto_connector sets INFO on itself at import; NOTSET makes it inherit WARNING.
    logging.getLogger("libp2p.network.auto_connector").setLevel(logging.NOTSET)
    # The TCP transport logs ERROR for every refused dial (a restarting aggregator makes every
    # keeper log one per backoff step) and then raises the same text, which our callers report.
    logging.getLogger("libp2p.transport.tcp.tcp").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class HostSettings:
    """Connection-level settings of the host."""

    dial_timeout: float = 5.0
    """Seconds one dial may take before it is abandoned."""
    health_interval: float = 2.0
    """Seconds between health pings of every connection."""
    ping_timeout: float = 10.0
    """Seconds a health ping may take before the connection is closed (a frozen peer goes in ~12 s)."""
    peer_recheck_interval: float = 5.0
    """Seconds between re-checks of every connected peer against the allow-list."""


Admit = Callable[[ID, str], bool]
"""Whether a peer (proven by its handshake) may connect; the str names the stage, for metrics."""


def admitting_resource_manager(admit: Admit) -> ResourceManager:
    """py-libp2p's default resource manager, refusing connections from peers `admit` refuses."""
    manager = new_resource_manager()
    open_connection = manager.open_connection

    def gated(peer_id: Any = None, endpoint_ip: str | None = None, direction: str = "inbound") -> Any:
        # Called with peer_id None before the handshake (nothing to check yet), then with the
        # proven peer id; None means denied: py-libp2p closes the connection before its muxer runs.
        if isinstance(peer_id, ID) and not admit(peer_id, "connection"):
            return None
        return open_connection(peer_id, endpoint_ip=endpoint_ip, direction=direction)

    manager.open_connection = gated  # type: ignore[method-assign]
    return manager


def build_host(identity: KeyPair, listen: str, settings: HostSettings, admit: Admit | None = None) -> IHost:
    """A host for `identity` that will listen on the multiaddr `listen` once run.

    With `admit`, a connection (either way) to a peer it refuses is closed after the handshake.
    """
    route_libp2p_logging()
    connection_config = ConnectionConfig(
        max_connections_per_peer=1,
        dial_timeout=settings.dial_timeout,
        enable_health_monitoring=True,
        health_initial_delay=settings.health_interval,
        health_warmup_window=settings.health_interval,
        health_check_interval=settings.health_interval,
        ping_timeout=settings.ping_timeout,
        abort_connection_on_ping_failure=True,
    )
    # Noise's static DH key is separate from the identity; the handshake signs it with the identity.
    noise = NoiseTransport(identity, noise_privkey=new_x25519_key_pair().private_key)
    host = new_host(
        key_pair=identity,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=[multiaddr.Multiaddr(listen)],
        connection_config=connection_config,
        resource_manager=None if admit is None else admitting_resource_manager(admit),
    )
    # `new_host` has no retry parameter; the swarm reads this attribute on every dial.
    swarm_of(host).retry_config = RetryConfig(max_retries=0)
    return host


def swarm_of(host: IHost) -> Swarm:
    """The host's swarm (its network), whose connection-manager methods the interface lacks."""
    network = host.get_network()
    if not isinstance(network, Swarm):
        raise TypeError(f"expected py-libp2p's Swarm as the host's network, got {type(network).__name__}")
    return network


def is_connected(host: IHost, peer_id: ID) -> bool:
    """Whether the host has an open connection to `peer_id`."""
    return any(_is_open(conn) for conn in host.get_network().get_connections(peer_id))


def _is_open(conn: Any) -> bool:
    # A closed muxer under a not-yet-closed SwarmConn is dead too: its cleanup is pending.
    return not conn.is_closed and not getattr(conn.muxed_conn, "is_closed", False)


def drop_stale_connections(host: IHost, peer_id: ID) -> int:
    """Forget the host's closed connection entries for `peer_id` (they make `connect` a no-op); how many."""
    swarm = swarm_of(host)
    stale = [conn for conn in swarm.connections.get(peer_id, []) if not _is_open(conn)]
    for conn in stale:
        swarm.remove_conn(conn)  # records only: the connection is already closed
    return len(stale)


async def dial(host: IHost, peer: PeerInfo, timeout: float) -> None:
    """Connect to `peer` unless connected; PeerUnreachableError when that fails or takes over `timeout` s.

    Returns only with an open connection: a `connect` that returns without one is a failure.
    """
    if is_connected(host, peer.peer_id):
        return
    drop_stale_connections(host, peer.peer_id)
    swarm_of(host).unblock_peer(peer.peer_id)
    with trio.move_on_after(timeout):
        try:
            await host.connect(peer)
        except Exception as error:  # py-libp2p raises many types, sometimes grouped
            raise PeerUnreachableError(f"cannot connect to {peer.peer_id}: {error}") from error
        if not is_connected(host, peer.peer_id):
            raise PeerUnreachableError(f"connecting to {peer.peer_id} returned without an open connection")
        return
    raise PeerUnreachableError(f"no connection to {peer.peer_id} within {timeout} s")
