"""BLS signatures with the Ethereum consensus ciphersuite, from one of two interchangeable backends.

Ciphersuite `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`: secret keys are 32-byte big-endian
scalars, public keys compressed G1 points (48 bytes), signatures compressed G2 points (96 bytes).
`milagro_bls_binding` is the fast backend (~2 ms a signature); `py_ecc` is the reference and
the fallback where milagro cannot be installed. Their output is byte-identical (tests prove it).
Choose with `TRIGGERX_BLS_BACKEND=milagro|py_ecc`; the default is milagro when importable.

Proofs of possession always use py_ecc: milagro has no PoP API (its DST is fixed to signing).
They are made once per operator and checked once at registration, so speed does not matter.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Protocol

from py_ecc.bls import G2ProofOfPossession as _PyEccBls

SIGNATURE_DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001


class BlsBackend(Protocol):
    """The operations a backend provides, all over bytes."""

    name: str

    def secret_to_public(self, secret: bytes) -> bytes: ...
    def sign(self, secret: bytes, message: bytes) -> bytes: ...
    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool: ...
    def aggregate(self, signatures: Sequence[bytes]) -> bytes: ...
    def fast_aggregate_verify(
        self, public_keys: Sequence[bytes], message: bytes, signature: bytes
    ) -> bool: ...


class PyEccBackend:
    """The reference implementation (pure Python)."""

    name = "py_ecc"

    def secret_to_public(self, secret: bytes) -> bytes:
        return bytes(_PyEccBls.SkToPk(_scalar(secret)))

    def sign(self, secret: bytes, message: bytes) -> bytes:
        return bytes(_PyEccBls.Sign(_scalar(secret), message))

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        return bool(_PyEccBls.Verify(public_key, message, signature))

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        return bytes(_PyEccBls.Aggregate(list(signatures)))

    def fast_aggregate_verify(self, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        return bool(_PyEccBls.FastAggregateVerify(list(public_keys), message, signature))


class MilagroBackend:
    """Bindings to the Milagro C library."""

    name = "milagro"

    def __init__(self) -> None:
        import milagro_bls_binding

        self._lib = milagro_bls_binding

    def secret_to_public(self, secret: bytes) -> bytes:
        _scalar(secret)  # milagro accepts out-of-range keys; refuse them like py_ecc does
        return bytes(self._lib.SkToPk(secret))

    def sign(self, secret: bytes, message: bytes) -> bytes:
        _scalar(secret)
        return bytes(self._lib.Sign(secret, message))

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        return bool(self._lib.Verify(public_key, message, signature))

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        if not signatures:
            raise ValueError("cannot aggregate zero signatures")
        return bytes(self._lib.Aggregate(list(signatures)))

    def fast_aggregate_verify(self, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        return bool(self._lib.FastAggregateVerify(list(public_keys), message, signature))


def _scalar(secret: bytes) -> int:
    if len(secret) != 32:
        raise ValueError(f"a BLS secret key is 32 bytes, not {len(secret)}")
    value = int.from_bytes(secret, "big")
    if not 0 < value < CURVE_ORDER:
        raise ValueError("a BLS secret key must be in [1, r - 1]")
    return value


def available_backends() -> list[BlsBackend]:
    """Every backend that can run here, the reference first."""
    found: list[BlsBackend] = [PyEccBackend()]
    with contextlib.suppress(ImportError):
        found.append(MilagroBackend())
    return found


def choose_backend() -> BlsBackend:
    """The backend named by `TRIGGERX_BLS_BACKEND`, else milagro when importable, else py_ecc."""
    wanted = os.environ.get("TRIGGERX_BLS_BACKEND", "").strip()
    found = {b.name: b for b in available_backends()}
    if wanted:
        if wanted not in found:
            raise RuntimeError(f"TRIGGERX_BLS_BACKEND={wanted!r}: available are {', '.join(found)}")
        return found[wanted]
    return found.get("milagro", found["py_ecc"])


def prove_possession(secret: bytes) -> bytes:
    """The proof of possession of `secret`: a signature over its public key with the PoP DST."""
    return bytes(_PyEccBls.PopProve(_scalar(secret)))


def verify_possession(public_key: bytes, proof: bytes) -> bool:
    """Whether `proof` proves possession of the secret key behind `public_key`."""
    return bool(_PyEccBls.PopVerify(public_key, proof))
