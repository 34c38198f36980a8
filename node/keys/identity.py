"""The node's libp2p identity: an Ed25519 key file, from which its peer id follows.

File format: the libp2p key encoding of the peer-id spec (what go-libp2p's
`MarshalPrivateKey` and kubo write), a protobuf `PrivateKey{Type = 1 (Ed25519), Data}`, 68
bytes: `08 01 12 40`, then the 32-byte private key (the seed), then its 32-byte public key.
Loading also accepts `Data` holding the seed alone (`08 01 12 20 || seed`, which py-libp2p's
own `serialize()` writes). The file is not encrypted, like every libp2p identity: it is
protected by its mode, 0o600.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf.message import DecodeError
from libp2p.crypto.ed25519 import Ed25519PrivateKey, create_new_key_pair
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.pb import crypto_pb2
from libp2p.peer.id import ID

from node.keys.files import KeyFileError, read_key_file


def new_identity() -> KeyPair:
    """A new random Ed25519 identity."""
    return create_new_key_pair()


def encode_identity(identity: KeyPair) -> bytes:
    """The identity file's bytes for the Ed25519 `identity`."""
    data = identity.private_key.to_bytes() + identity.public_key.to_bytes()
    return crypto_pb2.PrivateKey(key_type=KeyType.Ed25519.value, data=data).SerializeToString()


def decode_identity(data: bytes, source: str) -> KeyPair:
    """The identity in the identity file bytes `data`; KeyFileError names `source` if malformed."""
    try:
        message = crypto_pb2.PrivateKey.FromString(data)
    except DecodeError:
        message = None
    if message is None or not message.IsInitialized() or message.key_type != KeyType.Ed25519.value:
        raise KeyFileError(f"identity {source}: not a libp2p Ed25519 private key")
    if len(message.data) not in (32, 64):
        raise KeyFileError(
            f"identity {source}: expected a 32- or 64-byte Ed25519 key, got {len(message.data)}"
        )
    private_key = Ed25519PrivateKey.from_bytes(message.data[:32])
    public_key = private_key.get_public_key()
    if len(message.data) == 64 and message.data[32:] != public_key.to_bytes():
        raise KeyFileError(f"identity {source}: its public key is not that of its private key")
    return KeyPair(private_key, public_key)


def load_identity(path: Path) -> KeyPair:
    """The identity in the identity file at `path`; KeyFileError when unreadable or malformed."""
    return decode_identity(read_key_file(path, "identity"), str(path))


def peer_id(identity: KeyPair) -> ID:
    """The libp2p peer id of `identity`."""
    return ID.from_pubkey(identity.public_key)
