"""The Solidity BLS12381 library (EIP-2537 precompiles on anvil) agrees with py_ecc."""

from __future__ import annotations

import random

import pytest
import trio

from node.bls import (
    POP_DST,
    SIGNATURE_DST,
    choose_backend,
    hash_to_g2_eip2537,
    public_key_to_eip2537,
    signature_to_eip2537,
)
from node.chain import Contract, deploy, load_artifact

BACKEND = choose_backend()


def secret(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.fixture
async def harness(accounts, sender_for) -> Contract:
    return await deploy(sender_for(accounts[0]), load_artifact("BLSHarness"))


def messages() -> list[bytes]:
    rng = random.Random(2537)
    fixed = [b"", b"\x00", b"abc", b"\xff" * 32, b"q128_" + b"q" * 128, bytes(range(256)) * 4]
    return fixed + [rng.randbytes(rng.randrange(0, 300)) for _ in range(54)]


async def test_hash_to_g2_matches_py_ecc_for_60_messages(harness):
    cases = messages()
    assert len(cases) >= 50
    results: dict[int, bytes] = {}

    async def on_chain(i: int, message: bytes) -> None:
        results[i] = await harness.call("hashToG2", message, SIGNATURE_DST)

    async with trio.open_nursery() as nursery:
        for i, message in enumerate(cases):
            nursery.start_soon(on_chain, i, message)
    for i, message in enumerate(cases):
        assert results[i] == hash_to_g2_eip2537(message, SIGNATURE_DST), f"message {i} ({len(message)} bytes)"


async def test_hash_to_g2_honours_the_dst(harness):
    public_key = public_key_to_eip2537(BACKEND.secret_to_public(secret(3)))
    assert await harness.call("hashToG2", public_key, POP_DST) == hash_to_g2_eip2537(public_key, POP_DST)
    assert await harness.call("hashToG2", b"m", POP_DST) != await harness.call(
        "hashToG2", b"m", SIGNATURE_DST
    )


async def test_verify_accepts_a_signature_and_nothing_else(harness):
    public_key = BACKEND.secret_to_public(secret(11))
    other_key = BACKEND.secret_to_public(secret(12))
    signature = signature_to_eip2537(BACKEND.sign(secret(11), b"vote"))
    pk, other = public_key_to_eip2537(public_key), public_key_to_eip2537(other_key)
    assert await harness.call("verify", pk, b"vote", SIGNATURE_DST, signature) is True
    assert await harness.call("verify", pk, b"vote!", SIGNATURE_DST, signature) is False
    assert await harness.call("verify", other, b"vote", SIGNATURE_DST, signature) is False
    assert await harness.call("verify", pk, b"vote", POP_DST, signature) is False
    not_on_curve = pk[:-1] + bytes([pk[-1] ^ 1])
    assert await harness.call("verify", not_on_curve, b"vote", SIGNATURE_DST, signature) is False


async def test_negation_and_compression_match_py_ecc(harness):
    infinity = bytes(128)
    for n in range(1, 21):  # about half of these keys have the sign bit set
        compressed = BACKEND.secret_to_public(secret(n * 7919))
        point = public_key_to_eip2537(compressed)
        assert await harness.call("g1Compress", point) == compressed
        negated = await harness.call("g1Negate", point)
        assert await harness.call("g1Add", point, negated) == infinity
        assert negated[:64] == point[:64]
    assert await harness.call("g1Negate", infinity) == infinity
