"""`triggerx-node keys new|show|import`: an operator's three keys in one directory.

Each command prints the operator's public identity as JSON, in the field names of genesis.json's
`initialOperators`: `{"address", "blsPublicKey", "peerId"}`.

`--scrypt-n` sets scrypt's work factor of both keystores (default 2**18, as geth; tests use 16
so they stay fast). Any power of two from 2 to 2**20 is accepted, which is also the most the
loaders accept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eth_account import Account
from libp2p.crypto.keys import KeyPair

from node.bls import Keystore, KeystoreError, read_password
from node.keys.bls import import_bls_keystore, new_bls_keystore, read_bls_public_key
from node.keys.files import KeyDirectory, KeyFileError, read_key_file, refuse_existing, write_private
from node.keys.identity import decode_identity, encode_identity, load_identity, new_identity, peer_id
from node.keys.operator import DEFAULT_SCRYPT_N, encrypt_operator_key, read_operator_address


def add_keys_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `keys` and its subcommands under the subcommands `commands`."""
    keys = commands.add_parser(
        "keys",
        help="create, import and show an operator's keys",
        description="Manage an operator's keys in a directory: operator.json (ECDSA, V3 keystore), "
        "bls.json (BLS, EIP-2335 keystore) and identity.key (libp2p Ed25519 identity).",
    )
    actions = keys.add_subparsers(dest="keys_command", metavar="action", required=True)
    new = actions.add_parser("new", help="create the three keys", description="Create the three keys.")
    imported = actions.add_parser(
        "import",
        help="store existing secrets as the keys",
        description="Encrypt existing secrets into the key directory; a new identity is created "
        "unless --identity-key-file is given.",
    )
    imported.add_argument(
        "--operator-key-file", type=Path, required=True, help="file holding the ECDSA private key in hex"
    )
    imported.add_argument(
        "--bls-secret-file", type=Path, required=True, help="file holding the BLS secret key in hex"
    )
    imported.add_argument("--identity-key-file", type=Path, help="an existing libp2p Ed25519 key file")
    for action in (new, imported):
        action.add_argument("--dir", type=Path, required=True, help="the key directory")
        password = action.add_mutually_exclusive_group(required=True)
        password.add_argument("--password-file", type=Path, help="file holding the keystores' password")
        password.add_argument("--password-env", help="environment variable holding the keystores' password")
        action.add_argument("--force", action="store_true", help="overwrite existing key files")
        action.add_argument(
            "--scrypt-n",
            type=_scrypt_n,
            default=DEFAULT_SCRYPT_N,
            help="scrypt work factor of the keystores, a power of two (default: %(default)s)",
        )
    show = actions.add_parser(
        "show", help="print the public keys, without a password", description="Print the public keys."
    )
    show.add_argument("--dir", type=Path, required=True, help="the key directory")


def run_keys(args: argparse.Namespace) -> str:
    """Run the `keys` action in `args`; its output, or KeyFileError (one line)."""
    directory = KeyDirectory(args.dir)
    if args.keys_command == "show":
        return _show(directory)
    if not args.force:
        refuse_existing(directory.files())  # before the slow part, and before writing anything
    password = _password(args)
    if args.keys_command == "new":
        operator_key = Account.create().key
        bls = new_bls_keystore(password, scrypt_n=args.scrypt_n)
        identity = new_identity()
    else:
        operator_key, bls, identity = _imported(args, password)
    save_keys(directory, operator_key, bls, identity, password, scrypt_n=args.scrypt_n, overwrite=args.force)
    return _show(directory)


def save_keys(
    directory: KeyDirectory,
    operator_key: bytes,
    bls: Keystore,
    identity: KeyPair,
    password: str,
    *,
    scrypt_n: int,
    overwrite: bool,
) -> None:
    """Write an operator's three key files into `directory` (the operator key encrypted here)."""
    directory.create()
    operator = encrypt_operator_key(operator_key, password, scrypt_n=scrypt_n)
    for path, data in zip(
        directory.files(), (operator, bls.to_json().encode(), encode_identity(identity)), strict=True
    ):
        write_private(path, data, overwrite=overwrite)


def _imported(args: argparse.Namespace, password: str) -> tuple[bytes, Keystore, KeyPair]:
    operator_key = _hex_secret(args.operator_key_file, "operator key file")
    try:
        Account.from_key(operator_key)
    except ValueError:
        raise KeyFileError(
            f"operator key file {args.operator_key_file}: not a secp256k1 private key"
        ) from None
    bls_secret = _hex_secret(args.bls_secret_file, "BLS secret file")
    try:
        bls = import_bls_keystore(bls_secret, password, scrypt_n=args.scrypt_n)
    except ValueError:
        raise KeyFileError(f"BLS secret file {args.bls_secret_file}: not a BLS12-381 secret key") from None
    if args.identity_key_file is None:
        return operator_key, bls, new_identity()
    data = read_key_file(args.identity_key_file, "identity key file")
    return operator_key, bls, decode_identity(data, str(args.identity_key_file))


def _show(directory: KeyDirectory) -> str:
    identity: dict[str, Any] = {
        "address": read_operator_address(directory.operator),
        "blsPublicKey": read_bls_public_key(directory.bls),
        "peerId": str(peer_id(load_identity(directory.identity))),
    }
    return json.dumps(identity, indent=2)


def _password(args: argparse.Namespace) -> str:
    try:
        password = read_password(file=args.password_file, env=args.password_env)
    except KeystoreError as error:
        raise KeyFileError(str(error)) from None
    if not password:
        raise KeyFileError("the password is empty: it would protect nothing")
    return password


def _hex_secret(path: Path, what: str) -> bytes:
    text = read_key_file(path, what).decode("utf-8", "replace").strip().removeprefix("0x")
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise KeyFileError(f"{what} {path}: expected 32 bytes of hex")
    return secret


def _scrypt_n(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 2 <= n <= 2**20 or n & (n - 1):
        raise argparse.ArgumentTypeError(f"expected a power of two from 2 to 2**20, got {text!r}")
    return n
