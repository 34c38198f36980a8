"""The fast subgroup checks (node.bls.subgroups) against the textbook one (multiplication by the
group order, py_ecc's subgroup_check), on members, on curve points outside the subgroup, and
on points of the cofactor's part alone (what an attacker would pick)."""

from __future__ import annotations

import random

import pytest
from py_ecc.bls.g2_primitives import subgroup_check
from py_ecc.optimized_bls12_381 import FQ, FQ2, G1, G2, Z1, Z2, curve_order, field_modulus, is_inf, multiply

from node.bls import choose_backend, prove_possession, public_key_to_eip2537, signature_to_eip2537
from node.bls.points import _sqrt_fp2, encode_g1, encode_g2
from node.bls.subgroups import g1_in_subgroup, g2_in_subgroup

P = field_modulus
RANDOM = random.Random(2021_1130)


def curve_point_g1() -> tuple[FQ, FQ, FQ]:
    """A point of E(Fp) at a random x: almost never in G1 (the cofactor is ~2**126)."""
    while True:
        x = RANDOM.randrange(P)
        y = pow(x**3 + 4, (P + 1) // 4, P)
        if y * y % P == (x**3 + 4) % P:
            return (FQ(x), FQ(y), FQ.one())


def curve_point_g2() -> tuple[FQ2, FQ2, FQ2]:
    """A point of the twisted curve at a random x: almost never in G2."""
    while True:
        x = (RANDOM.randrange(P), RANDOM.randrange(P))
        x3 = ((x[0] ** 3 - 3 * x[0] * x[1] ** 2) % P, (3 * x[0] ** 2 * x[1] - x[1] ** 3) % P)
        y = _sqrt_fp2(((x3[0] + 4) % P, (x3[1] + 4) % P))
        if y is not None:
            return (FQ2(list(x)), FQ2(list(y)), FQ2.one())


def cases(generator, random_point, identity):
    """(point, in the subgroup per the textbook check) for members and non-members."""
    found = []
    for _ in range(4):
        found.append(multiply(generator, RANDOM.randrange(1, curve_order)))
        outside = random_point()
        found.append(outside)
        cofactor_part = multiply(outside, curve_order)  # r * Q: only the cofactor's part is left
        if not is_inf(cofactor_part):
            found.append(cofactor_part)
    found.append(identity)
    return [(point, bool(subgroup_check(point))) for point in found]


def test_g1_membership_agrees_with_multiplying_by_the_order():
    checked = cases(G1, curve_point_g1, Z1)
    assert {member for _, member in checked} == {True, False}
    for point, member in checked:
        assert g1_in_subgroup(encode_g1(point)) is member


def test_g2_membership_agrees_with_multiplying_by_the_order():
    checked = cases(G2, curve_point_g2, Z2)
    assert {member for _, member in checked} == {True, False}
    for point, member in checked:
        assert g2_in_subgroup(encode_g2(point)) is member


def test_keys_and_proofs_are_members_and_points_off_the_curve_are_not():
    secret = (4242).to_bytes(32, "big")
    key = public_key_to_eip2537(choose_backend().secret_to_public(secret))
    proof = signature_to_eip2537(prove_possession(secret))
    assert g1_in_subgroup(key)
    assert g2_in_subgroup(proof)
    off_g1 = key[:-1] + bytes([key[-1] ^ 1])
    off_g2 = proof[:-1] + bytes([proof[-1] ^ 1])
    assert not g1_in_subgroup(off_g1)
    assert not g2_in_subgroup(off_g2)


@pytest.mark.parametrize(
    ("check", "encoded"),
    [
        (g1_in_subgroup, bytes(127)),
        (g1_in_subgroup, b"\x01" + bytes(127)),  # a nonzero byte where the encoding has 16 zeros
        (g2_in_subgroup, bytes(255)),
        (g2_in_subgroup, bytes(64) + b"\x01" + bytes(191)),
    ],
)
def test_what_is_no_encoding_is_a_value_error(check, encoded):
    with pytest.raises(ValueError, match="not an EIP-2537"):
        check(encoded)
