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

from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1
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
    """A 96-byte compressed signature, uncompressed to 256 bytes. Raises ValueError unless it
    is a point on the curve (subgroup membership is the verifier's to check, as in py_ecc).

    The aggregator uncompresses every aggregate it submits. py_ecc's decompression takes
    ~40 ms, a square root in Fp2 in pure-Python field arithmetic; this one takes well under
    a millisecond: the square root is reduced to three in Fp, done by Python's `pow`.
    """
    if len(signature) != 96:
        raise ValueError("not a valid compressed G2 point: not 96 bytes")
    high, low = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    compressed, infinity, sign = high >> 383 & 1, high >> 382 & 1, high >> 381 & 1
    x1 = high & ((1 << 381) - 1)  # the imaginary part of x; `low` is the real part
    if not compressed:
        raise ValueError("not a valid compressed G2 point: its compression flag is not set")
    if infinity:
        if sign or x1 or low:
            raise ValueError("not a valid compressed G2 point: a malformed point at infinity")
        return bytes(G2_LENGTH)
    if x1 >= _P or low >= _P:
        raise ValueError("not a valid compressed G2 point: a coordinate is not below the field modulus")
    x = (low, x1)
    y = _sqrt_fp2(_add2(_mul2(_mul2(x, x), x), _B2))
    if y is None:
        raise ValueError("not a valid compressed G2 point: it is not on the curve")
    # The compressed form keeps the sign of y.im (of y.re when y.im is 0): the larger root is "1".
    if (y[1] * 2 // _P if y[1] else y[0] * 2 // _P) != sign:
        y = (-y[0] % _P, -y[1] % _P)
    return b"".join(coordinate.to_bytes(64, "big") for coordinate in (*x, *y))


_P = FQ.field_modulus
_B2 = (4, 4)  # the twisted curve's b, 4(1 + i)
_Fp2 = tuple[int, int]  # re + im * i, with i^2 = -1


def _mul2(a: _Fp2, b: _Fp2) -> _Fp2:
    return ((a[0] * b[0] - a[1] * b[1]) % _P, (a[0] * b[1] + a[1] * b[0]) % _P)


def _add2(a: _Fp2, b: _Fp2) -> _Fp2:
    return ((a[0] + b[0]) % _P, (a[1] + b[1]) % _P)


def _sqrt_fp(a: int) -> int | None:
    """A square root of `a` in Fp, if there is one (p = 3 mod 4)."""
    root = pow(a, (_P + 1) // 4, _P)
    return root if root * root % _P == a % _P else None


def _sqrt_fp2(a: _Fp2) -> _Fp2 | None:
    """A square root of `a` in Fp2, if there is one: with n = sqrt(re^2 + im^2) in Fp, a root
    is x + y*i where x^2 = (re + n)/2 or (re - n)/2 and y = im / 2x (the "complex method")."""
    re, im = a
    if im == 0:  # re or -re has a root in Fp (-1 is not a square there)
        root = _sqrt_fp(re)
        if root is not None:
            return (root, 0)
        root = _sqrt_fp(-re % _P)
        return None if root is None else (0, root)
    norm = _sqrt_fp((re * re + im * im) % _P)
    if norm is None:
        return None
    half = (_P + 1) // 2
    for half_x_squared in ((re + norm) * half % _P, (re - norm) * half % _P):
        x = _sqrt_fp(half_x_squared) if half_x_squared else None
        if x is not None:
            return (x, im * pow(2 * x, -1, _P) % _P)
    return None


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
