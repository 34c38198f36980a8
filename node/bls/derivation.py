"""BLS12-381 key derivation: EIP-2333 key trees and EIP-2334 paths.

A seed of at least 32 bytes gives a master secret key (`HKDF_mod_r`, the IETF `KeyGen`); a
child key is derived from its parent's secret and a 32-bit index through a Lamport key pair
(the EIP's post-quantum backup). Every derivation is hardened: public keys alone derive
nothing. Secrets are 32-byte big-endian scalars in [0, r), as `backend.secret_to_public` takes
them.

This follows the EIP-2333 text as revised on 2020-09-17 (salted `HKDF_mod_r` loop); keys
from the earlier revision differ.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from node.bls.backend import CURVE_ORDER

SIGNING_KEY_PATH = "m/12381/3600/{index}/0/0"
"""EIP-2334 path of the signing key of validator `index` (purpose 12381, coin type 3600)."""

_KEYGEN_SALT = b"BLS-SIG-KEYGEN-SALT-"
_OKM_LENGTH = 48  # ceil(3 * ceil(log2(r)) / 16): 128 bits more than r, so the mod-r bias is negligible
_LAMPORT_CHUNKS = 255  # HKDF-SHA256 can expand to at most 255 digests
_INDEX_LIMIT = 2**32
# Canonical decimals only: paths are stored in keystores and compared as strings, so "00"
# for "0" would make one key look like two.
_PATH_INDEX = re.compile(r"0|[1-9][0-9]*")


def derive_master_secret(seed: bytes) -> bytes:
    """The master secret key (32 bytes, big-endian) of the key tree grown from `seed`.

    Raises ValueError when `seed` is shorter than 32 bytes (256 bits, the EIP's minimum).
    """
    if len(seed) < 32:
        raise ValueError(f"an EIP-2333 seed must be at least 32 bytes, not {len(seed)}")
    return _hkdf_mod_r(seed)


def derive_child_secret(parent: bytes, index: int) -> bytes:
    """The secret key of child `index` (0 <= index < 2**32) of the 32-byte secret `parent`."""
    if len(parent) != 32:
        raise ValueError(f"a parent secret key is 32 bytes, not {len(parent)}")
    if not 0 <= index < _INDEX_LIMIT:
        raise ValueError(f"a child index must be in [0, 2**32), not {index}")
    return _hkdf_mod_r(_parent_to_lamport_public(parent, index))


def derive_path(seed: bytes, path: str) -> bytes:
    """The secret key at the EIP-2334 `path` (e.g. "m/12381/3600/0/0/0") of the tree of `seed`.

    Raises ValueError naming the offending part when `path` is malformed.
    """
    secret = derive_master_secret(seed)
    for index in _parse_path(path):
        secret = derive_child_secret(secret, index)
    return secret


def signing_key_path(index: int) -> str:
    """The EIP-2334 path of the signing key of validator `index`."""
    if not 0 <= index < _INDEX_LIMIT:
        raise ValueError(f"a validator index must be in [0, 2**32), not {index}")
    return SIGNING_KEY_PATH.format(index=index)


def _parse_path(path: str) -> list[int]:
    root, *parts = path.split("/")
    if root != "m":
        raise ValueError(f"key path {path!r}: must start with 'm', not {root!r}")
    indices = []
    for part in parts:
        if not _PATH_INDEX.fullmatch(part) or int(part) >= _INDEX_LIMIT:
            raise ValueError(f"key path {path!r}: {part!r} is not a decimal index in [0, 2**32)")
        indices.append(int(part))
    return indices


def _hkdf_mod_r(ikm: bytes, key_info: bytes = b"") -> bytes:
    salt = _KEYGEN_SALT
    secret = 0
    while secret == 0:
        salt = hashlib.sha256(salt).digest()
        prk = _hkdf_extract(salt, ikm + b"\x00")
        okm = _hkdf_expand(prk, key_info + _OKM_LENGTH.to_bytes(2, "big"), _OKM_LENGTH)
        secret = int.from_bytes(okm, "big") % CURVE_ORDER
    return secret.to_bytes(32, "big")


def _parent_to_lamport_public(parent: bytes, index: int) -> bytes:
    salt = index.to_bytes(4, "big")
    flipped = bytes(b ^ 0xFF for b in parent)
    digests = [
        hashlib.sha256(chunk).digest()
        for ikm in (parent, flipped)
        for chunk in _ikm_to_lamport_secret(ikm, salt)
    ]
    return hashlib.sha256(b"".join(digests)).digest()


def _ikm_to_lamport_secret(ikm: bytes, salt: bytes) -> list[bytes]:
    okm = _hkdf_expand(_hkdf_extract(salt, ikm), b"", 32 * _LAMPORT_CHUNKS)
    return [okm[i : i + 32] for i in range(0, len(okm), 32)]


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, "sha256")


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    blocks = [b""]
    while 32 * (len(blocks) - 1) < length:
        blocks.append(hmac.digest(prk, blocks[-1] + info + bytes([len(blocks)]), "sha256"))
    return b"".join(blocks)[:length]
