"""An operator's keys: the ECDSA operator key (V3 keystore), the BLS key (EIP-2335 keystore)
and the libp2p identity (Ed25519 key file), and the loaders a node starts with.

Public API: the loaders (load_operator_account, load_bls_secret, load_identity) and readers of
the public parts, the makers (encrypt_operator_key, import_bls_keystore, new_identity,
save_keys), the `keys` command (add_keys_command, run_keys), KeyDirectory and the errors.
"""

from node.keys.bls import import_bls_keystore, load_bls_secret, read_bls_public_key
from node.keys.cli import add_keys_command, run_keys, save_keys
from node.keys.files import KeyDirectory, KeyFileError, WrongPasswordError
from node.keys.identity import decode_identity, load_identity, new_identity, peer_id
from node.keys.operator import encrypt_operator_key, load_operator_account, read_operator_address

__all__ = [
    "KeyDirectory",
    "KeyFileError",
    "WrongPasswordError",
    "add_keys_command",
    "decode_identity",
    "encrypt_operator_key",
    "import_bls_keystore",
    "load_bls_secret",
    "load_identity",
    "load_operator_account",
    "new_identity",
    "peer_id",
    "read_bls_public_key",
    "read_operator_address",
    "run_keys",
    "save_keys",
]
