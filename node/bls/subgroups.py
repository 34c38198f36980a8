"""Subgroup membership of BLS12-381 points, the fast way (endomorphisms), for inputs anyone sends.

A point on the curve may still lie outside the prime-order subgroup (G1 or G2) the pairing
needs. The textbook check multiplies by the group order r (255 bits: ~60 ms for a G2 point
in py_ecc); these use an endomorphism that acts on the subgroup as multiplication by a
small multiple of the curve parameter u = -0xd201000000010000 (64 bits) instead:

    G1: sigma(x, y) = (beta * x, y), beta a cube root of unity in Fp:   P in G1 iff sigma(P) = -u^2 P
    G2: psi, "untwist, Frobenius, twist" (RFC 9380, Appendix G.3):     P in G2 iff psi(P) = u P

(M. Scott, "A note on group membership tests for G1, G2 and GT on BLS pairing-friendly
curves", ePrint 2021/1130.) About 3 ms for a G1 point and 12 ms for a G2 point, in pure
Python: a worker thread's job. The tests compare both with the textbook check.
"""

from __future__ import annotations

from py_ecc.optimized_bls12_381 import FQ, FQ2, b, b2, eq, field_modulus, is_on_curve, multiply, neg
from py_ecc.typing import Optimized_Point3D

__all__ = ["g1_in_subgroup", "g2_in_subgroup"]

_U = 0xD201000000010000  # |u|: u itself is negative
_BETA = FQ(pow(2, (field_modulus - 1) // 3, field_modulus))  # the cube root whose sigma is -u^2
_PSI_X = FQ2([1, 0]) / FQ2([1, 1]) ** ((field_modulus - 1) // 3)  # 1 / (1 + i)^((p - 1) / 3)
_PSI_Y = FQ2([1, 0]) / FQ2([1, 1]) ** ((field_modulus - 1) // 2)  # 1 / (1 + i)^((p - 1) / 2)


def _fp(encoded: bytes) -> int:
    """One Fp element of the EIP-2537 encoding: 16 zero bytes, then 48 big-endian bytes."""
    if len(encoded) != 64 or encoded[:16] != bytes(16):
        raise ValueError("not an EIP-2537 field element")
    return int.from_bytes(encoded[16:], "big")


def g1_in_subgroup(point: bytes) -> bool:
    """Whether the EIP-2537 G1 `point` (128 bytes; all zeros: the point at infinity) is on the
    curve and in G1. ValueError if it is no such encoding."""
    if len(point) != 128:
        raise ValueError("not an EIP-2537 G1 point: not 128 bytes")
    if point == bytes(128):
        return True
    projective = (FQ(_fp(point[:64])), FQ(_fp(point[64:])), FQ.one())
    if not is_on_curve(projective, b):
        return False
    x, y, z = projective
    return eq((x * _BETA, y, z), neg(multiply(multiply(projective, _U), _U)))


def g2_in_subgroup(point: bytes) -> bool:
    """Whether the EIP-2537 G2 `point` (256 bytes: x.c0, x.c1, y.c0, y.c1; all zeros: the
    point at infinity) is on the twisted curve and in G2. ValueError if it is no such encoding."""
    if len(point) != 256:
        raise ValueError("not an EIP-2537 G2 point: not 256 bytes")
    if point == bytes(256):
        return True
    c = [_fp(point[i : i + 64]) for i in range(0, 256, 64)]
    projective: Optimized_Point3D[FQ2] = (FQ2(c[:2]), FQ2(c[2:]), FQ2.one())
    if not is_on_curve(projective, b2):
        return False
    return eq(_psi(projective), neg(multiply(projective, _U)))  # u P = -(|u| P)


def _psi(point: Optimized_Point3D[FQ2]) -> Optimized_Point3D[FQ2]:
    """psi on projective coordinates: the Frobenius of Fp2 is the conjugate (x = X/Z, so Z
    is conjugated too)."""
    x, y, z = (_conjugate(c) for c in point)
    return (x * _PSI_X, y * _PSI_Y, z)


def _conjugate(value: FQ2) -> FQ2:
    real, imaginary = value.coeffs
    return FQ2([real, -imaginary])
