"""The libp2p mesh: one host per process, signed gossip topics and request/response.

Public API: MeshNode (with MeshConfig, and AllowedPeers for peer admission), the topic and
protocol names, identities, the errors, LogDedup (repeated log lines logged once with a count).
Read docs/architecture.md (py-libp2p) first: each module names the workarounds it applies.
"""

from node.mesh.admission import AllowedPeers
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
from node.mesh.gossip import Delivery, Subscription
from node.mesh.host import identity_from_seed, identity_seed, peer_id_of
from node.mesh.logdedup import LogDedup
from node.mesh.metrics import DROP_REASONS, Metrics
from node.mesh.names import ALL_TOPICS, HEARTBEATS, RESULTS, RPC_PROTOCOL, versioned
from node.mesh.node import MeshConfig, MeshNode
from node.mesh.rpc import Handler
from node.mesh.validation import IsActive

__all__ = [
    "ALL_TOPICS",
    "DROP_REASONS",
    "HEARTBEATS",
    "RESULTS",
    "RPC_PROTOCOL",
    "AllowedPeers",
    "ConnectionLostError",
    "Delivery",
    "Envelope",
    "EnvelopeSigner",
    "FrameError",
    "Handler",
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
    "Subscription",
    "identity_from_seed",
    "identity_seed",
    "peer_id_of",
    "versioned",
]
