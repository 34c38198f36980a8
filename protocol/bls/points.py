"""BLS12-381 points in the EIP-2537 encoding the contracts use, and hash-to-G2 as the contracts do it.

Compressed keys and signatures (48 and 96 bytes) are what peers exchange; a contract
cannot decompress them cheaply (that needs square roots in Fp and Fp2), so whoever
submits to a contract sends the uncompressed EIP-2537 form: 64 bytes per Fp element
(16 zero bytes, then 48 big-endian bytes), G1 = x || y, G2 = x.c0 || x.c1 || y.c0 || y.c1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1, signature_to_G2
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.optimized_bls12_381 import FQ, FQ2, Z1, add, b, is_inf, is_on_curve, normalize
from py_ecc.typing import Optimized_Point3D

G1_LENGTH = 128
G2_LENGTH = 256


def _fp(value: FQ) -> bytes:
    return int(value).to_bytes(64, "big")


def _fp2(value: FQ2) -> bytes:
    c0, c1 = value.coeffs
    return int(c0).to_bytes(64, "big") + int(c1).to_bytes(64, "big")


def encode_g1(point: Optimized_Point3D[FQ]) -> bytes:
    """A G1 point in EIP-2537 encoding (all zeros for the point at infinity)."""
    if is_inf(point):
        return bytes(G1_LENGTH)
    x, y = normalize(point)
    return _fp(x) + _fp(y)


def encode_g2(point: Optimized_Point3D[FQ2]) -> bytes:
    """A G2 point in EIP-2537 encoding (all zeros for the point at infinity)."""
    if is_inf(point):
        return bytes(G2_LENGTH)
    x, y = normalize(point)
    return _fp2(x) + _fp2(y)


def public_key_to_eip2537(public_key: bytes) -> bytes:
    """A 48-byte compressed public key, uncompressed to 128 bytes. Raises ValueError if invalid."""
    try:
        return encode_g1(pubkey_to_G1(public_key))
    except Exception as error:  # py_ecc raises bare ValueErrors and assertion errors alike
        raise ValueError(f"not a valid compressed G1 point: {error}") from None


def signature_to_eip2537(signature: bytes) -> bytes:
    """A 96-byte compressed signature, uncompressed to 256 bytes. Raises ValueError if invalid."""
    try:
        return encode_g2(signature_to_G2(signature))
    except Exception as error:
        raise ValueError(f"not a valid compressed G2 point: {error}") from None


def hash_to_g2_eip2537(message: bytes, dst: bytes) -> bytes:
    """RFC 9380 hash_to_curve to G2 (SHA-256, SSWU), encoded as the contracts compute it."""
    return encode_g2(hash_to_G2(message, dst, hashlib.sha256))


def public_key_from_eip2537(point: bytes) -> bytes:
    """A 128-byte EIP-2537 G1 point, compressed to the 48-byte public key peers exchange."""
    if len(point) != G1_LENGTH or point[:16] != bytes(16) or point[64:80] != bytes(16):
        raise ValueError("not an EIP-2537 G1 point")
    x, y = FQ(int.from_bytes(point[16:64], "big")), FQ(int.from_bytes(point[80:], "big"))
    projective = (x, y, FQ.one()) if int(x) or int(y) else (FQ.one(), FQ.one(), FQ.zero())
    if not is_inf(projective) and not is_on_curve(projective, b):
        raise ValueError("the point is not on the curve")
    return bytes(G1_to_pubkey(projective))


@lru_cache(maxsize=4096)
def _decompressed(public_key: bytes) -> Optimized_Point3D[FQ]:
    return pubkey_to_G1(public_key)


def aggregate_public_keys(public_keys: Sequence[bytes]) -> bytes:
    """The compressed sum of `public_keys`, decompressing each key once per process.

    Only for keys validated already (registered operators: the registry checked each one's
    proof of possession, and with it curve and subgroup membership). Then one `verify`
    against this sum checks an aggregate signature of one message several times faster
    than `fast_aggregate_verify`, which decompresses and re-validates every key each time.
    """
    total = Z1
    for public_key in public_keys:
        total = add(total, _decompressed(public_key))
    return bytes(G1_to_pubkey(total))
