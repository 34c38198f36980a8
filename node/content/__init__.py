"""Scripts by content: IPFS CIDs, checked bytes, a size-bounded cache, and fetching.

A job's script is named by its CIDv1 (raw leaves, sha2-256, base32: `bafkrei…`): whoever
serves it, the bytes are checked against the name before use, so a gateway, a public IPFS
gateway or a peer can serve scripts without being trusted.

Public API: script_cid, parse_cid, CidError and MAX_SCRIPT_BYTES; ScriptCache; ScriptFetcher
with ScriptUnavailableError.
"""

from node.content.cache import ScriptCache
from node.content.cid import MAX_SCRIPT_BYTES, CidError, parse_cid, script_cid
from node.content.fetch import ScriptFetcher, ScriptUnavailableError

__all__ = [
    "MAX_SCRIPT_BYTES",
    "CidError",
    "ScriptCache",
    "ScriptFetcher",
    "ScriptUnavailableError",
    "parse_cid",
    "script_cid",
]
