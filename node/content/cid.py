"""CIDv1 of a script: raw leaves, sha2-256, base32 (what `ipfs add --cid-version 1
--raw-leaves` gives a file of one block)."""

from __future__ import annotations

from multiformats import CID, multihash

MAX_SCRIPT_BYTES = 64 * 1024
"""A script's size at most: one raw block, one HTTP body of the gateway's."""


class CidError(ValueError):
    """Not a script CID (the message says why)."""


def script_cid(data: bytes) -> str:
    """The CID of `data`."""
    return str(CID("base32", 1, "raw", multihash.digest(data, "sha2-256")))


def parse_cid(text: str) -> str:
    """`text` (a CID, or `ipfs://<cid>`) as a script CID in canonical form; CidError otherwise."""
    bare = text.removeprefix("ipfs://").rstrip("/")
    if not 1 <= len(bare) <= 100:
        raise CidError(f"{text[:100]!r} is not a CID")
    try:
        cid = CID.decode(bare)
    except Exception:  # the library raises its own error types, and ValueError/KeyError
        raise CidError(f"{text!r} is not a CID") from None
    if cid.version != 1 or cid.codec.name != "raw" or cid.hashfun.name != "sha2-256":
        raise CidError(f"{text!r} is not a CIDv1 of a raw block hashed with sha2-256")
    return str(cid.set(base="base32"))


def matches(cid: str, data: bytes) -> bool:
    """Whether `data` is the block `cid` names."""
    return len(data) <= MAX_SCRIPT_BYTES and script_cid(data) == cid
