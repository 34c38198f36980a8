"""The operator's ECDSA key as an Ethereum V3 keystore (what geth, clef and eth-account write).

eth-account encrypts and decrypts. Loading first checks the file's shape and refuses KDF work
factors beyond what any wallet writes, so a hostile keystore can neither crash the decoder nor
make it spend gigabytes of memory on scrypt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from msgspec import Meta

from node.keys.files import KeyFileError, WrongPasswordError, read_key_file

DEFAULT_SCRYPT_N = 2**18
"""scrypt's work factor for new keystores, as geth's standard (~256 MiB, about a second)."""

_Hex = Annotated[str, Meta(pattern=r"^([0-9a-fA-F]{2})*$")]


class _KdfParams(msgspec.Struct, frozen=True):
    dklen: Literal[32]
    salt: _Hex
    # scrypt: the bounds of node.keys.bls' keystores (at most 1 GiB); pbkdf2: at most 2**24 rounds.
    n: Annotated[int, Meta(ge=2, le=2**20)] | None = None
    r: Annotated[int, Meta(ge=1, le=8)] | None = None
    p: Annotated[int, Meta(ge=1, le=16)] | None = None
    c: Annotated[int, Meta(ge=1, le=2**24)] | None = None
    prf: Literal["hmac-sha256"] | None = None


class _CipherParams(msgspec.Struct, frozen=True):
    iv: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{32}$")]


class _Crypto(msgspec.Struct, frozen=True):
    cipher: Literal["aes-128-ctr"]
    cipherparams: _CipherParams
    ciphertext: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{64}$")]
    kdf: Literal["scrypt", "pbkdf2"]
    kdfparams: _KdfParams
    mac: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{64}$")]


class _V3Keystore(msgspec.Struct, frozen=True):
    version: Literal[3]
    crypto: _Crypto
    address: Annotated[str, Meta(pattern=r"^(0x)?[0-9a-fA-F]{40}$")] | None = None


def encrypt_operator_key(private_key: bytes, password: str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> bytes:
    """The V3 keystore (JSON, with the address) of the 32-byte `private_key` under `password`."""
    keystore = Account.encrypt(private_key, password, kdf="scrypt", iterations=scrypt_n)
    return (json.dumps(keystore, indent=2) + "\n").encode()


def load_operator_account(path: Path, password: str) -> LocalAccount:
    """The account of the V3 keystore at `path`.

    KeyFileError when the file is unreadable or malformed, WrongPasswordError when `password`
    does not open it.
    """
    document, keystore = _parse(path)
    try:
        private_key = Account.decrypt(document, password)
    except ValueError:
        # _parse checked every field decryption reads, so only the MAC check can fail here.
        raise WrongPasswordError(f"wrong password for operator keystore {path}") from None
    account: LocalAccount = Account.from_key(private_key)
    if keystore.address is not None and account.address != to_checksum_address(keystore.address):
        raise KeyFileError(f"operator keystore {path}: its address is not that of the key it holds")
    return account


def read_operator_address(path: Path) -> str | None:
    """The checksummed address a V3 keystore records (None if it records none); no password needed."""
    address = _parse(path)[1].address
    return None if address is None else to_checksum_address(address)


def _parse(path: Path) -> tuple[dict[str, Any], _V3Keystore]:
    data = read_key_file(path, "operator keystore")
    try:
        document = json.loads(data)
        keystore = msgspec.convert(document, _V3Keystore)
    except ValueError as error:  # JSON errors and msgspec.ValidationError
        detail = " ".join(str(error).split())
        raise KeyFileError(f"operator keystore {path}: not a V3 keystore: {detail}") from None
    params = keystore.crypto.kdfparams
    if keystore.crypto.kdf == "scrypt":
        valid = None not in (params.n, params.r, params.p) and params.n & (params.n - 1) == 0
        expected = "n (a power of two), r and p"
    else:
        valid = params.c is not None and params.prf is not None
        expected = "c and prf"
    if not valid:
        raise KeyFileError(f"operator keystore {path}: crypto.kdfparams: expected {expected}")
    return document, keystore
