"""The libp2p mesh: one host per process, signed gossip topics and request/response.

Public API: MeshNode (with MeshConfig and its settings, and AllowedPeers for peer admission),
the topic and protocol names, identities and peer addresses, the errors, LogDedup (repeated log
lines logged once with a count). The layers under MeshNode (host, pubsub, framing, envelope
codec, validation) are not: tests and the benchmark that drive them import their modules.
Read docs/architecture.md (py-libp2p) first: each module names the workarounds it applies.
"""

from node.mesh.admission import AllowedPeers
from node.mesh.bootstrap import BackoffSettings
from node.mesh.envelope import Envelope, EnvelopeSigner
from node.mesh.errors import (
    ConnectionLostError,
    FrameError,
    InvalidReplyError,
    MeshError,
    PeerUnreachableError,
    RemoteError,
    RequestError,
    RequestRefused,
    RequestTimeoutError,
)
from node.mesh.gossip import Delivery, GossipSettings, Subscription
from node.mesh.host import (
    HostSettings,
    identity_from_seed,
    identity_seed,
    parse_peer_addr,
    peer_id_of,
    peer_id_text,
)
from node.mesh.logdedup import LogDedup
from node.mesh.metrics import DROP_REASONS, Metrics
from node.mesh.names import ALL_TOPICS, HEARTBEATS, RESULTS, RPC_PROTOCOL, versioned
from node.mesh.node import MeshConfig, MeshNode
from node.mesh.rpc import Handler, RpcSettings
from node.mesh.validation import IsActive

__all__ = [
    "ALL_TOPICS",
    "DROP_REASONS",
    "HEARTBEATS",
    "RESULTS",
    "RPC_PROTOCOL",
    "AllowedPeers",
    "BackoffSettings",
    "ConnectionLostError",
    "Delivery",
    "Envelope",
    "EnvelopeSigner",
    "FrameError",
    "GossipSettings",
    "Handler",
    "HostSettings",
    "InvalidReplyError",
    "IsActive",
    "LogDedup",
    "MeshConfig",
    "MeshError",
    "MeshNode",
    "Metrics",
    "PeerUnreachableError",
    "RemoteError",
    "RequestError",
    "RequestRefused",
    "RequestTimeoutError",
    "RpcSettings",
    "Subscription",
    "identity_from_seed",
    "identity_seed",
    "parse_peer_addr",
    "peer_id_of",
    "peer_id_text",
    "versioned",
]
