"""BLS12-381 with the Ethereum consensus ciphersuite: backends, EIP-2537 point encodings,
EIP-2333 key derivation and EIP-2335 keystores.

Public API: the backends (BlsBackend, choose_backend, available_backends, PyEccBackend,
MilagroBackend), proofs of possession, the ciphersuite's constants (CURVE_ORDER, SIGNATURE_DST,
POP_DST), the EIP-2537 encodings and public-key aggregation, EIP-2333 derivation, and EIP-2335
keystores (Keystore, read_password, process_password) with their errors.
"""

from node.bls.backend import (
    CURVE_ORDER,
    POP_DST,
    SIGNATURE_DST,
    BlsBackend,
    MilagroBackend,
    PyEccBackend,
    available_backends,
    choose_backend,
    prove_possession,
    verify_possession,
)
from node.bls.derivation import derive_child_secret, derive_master_secret, derive_path, signing_key_path
from node.bls.keystore import (
    InvalidKeystoreError,
    Keystore,
    KeystoreError,
    WrongPasswordError,
    process_password,
    read_password,
)
from node.bls.points import (
    aggregate_public_keys,
    hash_to_g2_eip2537,
    public_key_from_eip2537,
    public_key_to_eip2537,
    signature_to_eip2537,
)

__all__ = [
    "CURVE_ORDER",
    "POP_DST",
    "SIGNATURE_DST",
    "BlsBackend",
    "InvalidKeystoreError",
    "Keystore",
    "KeystoreError",
    "MilagroBackend",
    "PyEccBackend",
    "WrongPasswordError",
    "aggregate_public_keys",
    "available_backends",
    "choose_backend",
    "derive_child_secret",
    "derive_master_secret",
    "derive_path",
    "hash_to_g2_eip2537",
    "process_password",
    "prove_possession",
    "public_key_from_eip2537",
    "public_key_to_eip2537",
    "read_password",
    "signature_to_eip2537",
    "signing_key_path",
    "verify_possession",
]
