"""The two BLS backends are interchangeable: byte-identical keys, signatures and aggregates."""

from __future__ import annotations

import pytest
from py_ecc.bls.g2_primitives import signature_to_G2

from node.bls import (
    CURVE_ORDER,
    MilagroBackend,
    PyEccBackend,
    available_backends,
    choose_backend,
    prove_possession,
    verify_possession,
)
from node.bls.points import encode_g2, signature_to_eip2537

pytestmark = pytest.mark.skipif(len(available_backends()) < 2, reason="milagro is not installed here")

SECRETS = [(n * 0x9E3779B97F4A7C15 % (CURVE_ORDER - 1) + 1).to_bytes(32, "big") for n in range(1, 6)]
MESSAGES = [b"", b"vote", b"\x00" * 32, bytes(range(256))]


@pytest.fixture(scope="module")
def backends() -> tuple[PyEccBackend, MilagroBackend]:
    return PyEccBackend(), MilagroBackend()


def test_keys_signatures_and_aggregates_are_byte_identical(backends):
    reference, fast = backends
    for secret in SECRETS:
        assert fast.secret_to_public(secret) == reference.secret_to_public(secret)
    for message in MESSAGES[:2]:
        ours = [fast.sign(s, message) for s in SECRETS]
        theirs = [reference.sign(s, message) for s in SECRETS]
        assert ours == theirs
        assert fast.aggregate(ours) == reference.aggregate(theirs)


def test_verification_agrees(backends):
    reference, fast = backends
    keys = [fast.secret_to_public(s) for s in SECRETS[:3]]
    message = b"task 1 approve"
    signatures = [fast.sign(s, message) for s in SECRETS[:3]]
    aggregate = fast.aggregate(signatures)
    for backend in backends:
        assert backend.verify(keys[0], message, signatures[0])
        assert not backend.verify(keys[1], message, signatures[0])
        assert not backend.verify(keys[0], message + b"!", signatures[0])
        assert backend.fast_aggregate_verify(keys, message, aggregate)
        assert not backend.fast_aggregate_verify(keys[:2], message, aggregate)
    assert reference.fast_aggregate_verify(keys, message, aggregate) == fast.fast_aggregate_verify(
        keys, message, aggregate
    )


@pytest.mark.parametrize("secret", [b"\x00" * 32, CURVE_ORDER.to_bytes(32, "big"), b"\x01" * 31])
def test_out_of_range_secrets_are_refused_by_both(backends, secret):
    for backend in backends:
        with pytest.raises(ValueError, match="secret key"):
            backend.sign(secret, b"m")


def test_proof_of_possession(backends):
    reference, _ = backends
    key = reference.secret_to_public(SECRETS[0])
    proof = prove_possession(SECRETS[0])
    assert verify_possession(key, proof)
    assert not verify_possession(reference.secret_to_public(SECRETS[1]), proof)
    # A signature of the key under the signing DST is not a proof of possession.
    assert not verify_possession(key, reference.sign(SECRETS[0], key))


def test_the_backend_is_chosen_by_environment(monkeypatch):
    monkeypatch.setenv("TRIGGERX_BLS_BACKEND", "py_ecc")
    assert choose_backend().name == "py_ecc"
    monkeypatch.setenv("TRIGGERX_BLS_BACKEND", "blst")
    with pytest.raises(RuntimeError, match="TRIGGERX_BLS_BACKEND='blst': available are py_ecc, milagro"):
        choose_backend()
    monkeypatch.delenv("TRIGGERX_BLS_BACKEND")
    assert choose_backend().name == "milagro"


def test_signatures_uncompress_exactly_as_py_ecc_does():
    """signature_to_eip2537 takes its own fast road to py_ecc's result (points.py)."""
    backend = PyEccBackend()
    signatures = [backend.sign((seed * 7919 + 1).to_bytes(32, "big"), bytes([seed])) for seed in range(40)]
    signatures.append(backend.aggregate(signatures[:5]))
    signatures.append(bytes([0xC0]) + bytes(95))  # the point at infinity
    for signature in signatures:
        assert signature_to_eip2537(signature) == encode_g2(signature_to_G2(signature))


@pytest.mark.parametrize(
    "signature",
    [
        bytes(96),  # no compression flag
        bytes([0xC0]) + bytes(94) + b"\x01",  # infinity with a coordinate
        bytes([0xE0]) + bytes(95),  # infinity with a sign
        bytes([0x9F]) + b"\xff" * 95,  # x beyond the field modulus
        bytes([0x80]) + bytes(94) + b"\x01",  # x = 1: no point of the curve has it
        b"\x80" * 95,  # not 96 bytes
    ],
)
def test_malformed_signatures_are_refused_by_both(signature):
    with pytest.raises(ValueError, match="not a valid compressed G2 point"):
        signature_to_eip2537(signature)
    with pytest.raises((ValueError, AssertionError, IndexError)):
        signature_to_G2(signature)
