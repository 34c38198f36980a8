"""The operator's BLS key as an EIP-2335 keystore (node.bls.keystore).

A new key is the EIP-2333 signing key of validator 0 (m/12381/3600/0/0/0) of a fresh random
32-byte seed. The seed is not kept: the keystore is the key's only copy, and its `path` field
records how the key was derived, as EIP-2335 asks.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from node.bls import Keystore, KeystoreError, choose_backend, derive_path, signing_key_path
from node.bls import WrongPasswordError as KeystorePasswordError
from node.keys.files import KeyFileError, WrongPasswordError

DESCRIPTION = "TriggerX operator BLS key"


def new_bls_keystore(password: str, *, scrypt_n: int) -> Keystore:
    """A keystore holding a new BLS key derived per EIP-2333 from a fresh random seed."""
    path = signing_key_path(0)
    secret = derive_path(secrets.token_bytes(32), path)
    return Keystore.encrypt(secret, password, path=path, description=DESCRIPTION, scrypt_n=scrypt_n)


def import_bls_keystore(secret: bytes, password: str, *, scrypt_n: int) -> Keystore:
    """A keystore holding the existing 32-byte BLS secret key `secret` (its derivation path unknown).

    Raises ValueError when `secret` is not a BLS12-381 secret key.
    """
    choose_backend().secret_to_public(secret)  # raises ValueError for 0, r or more, or not 32 bytes
    return Keystore.encrypt(secret, password, description=DESCRIPTION, scrypt_n=scrypt_n)


def load_bls_secret(path: Path, password: str) -> bytes:
    """The 32-byte BLS secret key in the EIP-2335 keystore at `path`.

    KeyFileError when the file is unreadable or malformed, WrongPasswordError when `password`
    does not open it.
    """
    keystore = _load(path)
    try:
        return keystore.decrypt(password)
    except KeystorePasswordError:
        raise WrongPasswordError(f"wrong password for BLS keystore {path}") from None
    except KeystoreError as error:
        raise KeyFileError(str(error)) from None


def read_bls_public_key(path: Path) -> str | None:
    """The public key (0x-prefixed hex) the keystore at `path` records, if any; no password needed."""
    pubkey = _load(path).pubkey
    return f"0x{pubkey}" if pubkey else None


def _load(path: Path) -> Keystore:
    try:
        return Keystore.load(path)
    except KeystoreError as error:
        raise KeyFileError(" ".join(str(error).split())) from None
