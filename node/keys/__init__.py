"""An operator's keys: the ECDSA operator key (V3 keystore), the BLS key (EIP-2335 keystore)
and the libp2p identity (Ed25519 key file), and the loaders a node starts with."""

from node.keys.bls import load_bls_secret, read_bls_public_key
from node.keys.files import KeyDirectory, KeyFileError, WrongPasswordError
from node.keys.identity import load_identity, peer_id
from node.keys.operator import load_operator_account, read_operator_address

__all__ = [
    "KeyDirectory",
    "KeyFileError",
    "WrongPasswordError",
    "load_bls_secret",
    "load_identity",
    "load_operator_account",
    "peer_id",
    "read_bls_public_key",
    "read_operator_address",
]
