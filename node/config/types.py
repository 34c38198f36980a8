"""Value types of the node config and of genesis.json that check themselves when decoded.

Each is a `str` subclass, so a decoded value is used as the plain string it is; msgspec hands
the raw value of any field of such a type to `dec_hook`, which checks it and raises
TypeError/ValueError with a one-line message that msgspec reports at the field's path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from eth_utils import is_address, is_checksum_address, to_checksum_address
from libp2p.crypto.ed25519 import Ed25519PublicKey
from libp2p.peer.id import ID
from multiaddr import Multiaddr as ParsedMultiaddr
from py_ecc.bls import G2ProofOfPossession

_BLS_PUBLIC_KEY = re.compile(r"0x[0-9a-fA-F]{96}")
_PORT = re.compile(r"[0-9]{1,5}")
_HOST = re.compile(r"[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,253}")


class CheckedStr(str):
    """A string with a format, checked by `check` when msgspec decodes it."""

    what: ClassVar[str] = "a string"

    @classmethod
    def check(cls, text: str) -> str:
        """`text` in canonical form; ValueError with a one-line message when it is malformed."""
        return text


class HttpUrl(CheckedStr):
    """An http:// or https:// URL with a host."""

    what = "an http(s) URL"
    schemes: ClassVar[tuple[str, ...]] = ("http", "https")

    @classmethod
    def check(cls, text: str) -> str:
        try:
            parts = urlsplit(text)
            port = parts.port  # raises ValueError unless it is a number in [0, 65535]
        except ValueError as error:
            raise ValueError(f"expected {cls.what}, got {text!r}: {error}") from None
        if parts.scheme not in cls.schemes or not parts.hostname or port == 0:
            raise ValueError(f"expected {cls.what}, got {text!r}")
        return text


class WsUrl(HttpUrl):
    """A ws:// or wss:// URL with a host."""

    what = "a ws(s) URL"
    schemes = ("ws", "wss")


class HostPort(CheckedStr):
    """`host:port` to listen on (an IPv6 host in brackets); port 0 lets the system choose."""

    what = "host:port"

    @classmethod
    def check(cls, text: str) -> str:
        host, _, port = text.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        if bracketed:
            host = host[1:-1]
        # An IPv6 host holds colons itself: only brackets tell where it ends and the port starts.
        if not host or (":" in host and not bracketed) or not _PORT.fullmatch(port):
            raise ValueError(f"expected host:port, got {text!r}")
        if int(port) > 65535:
            raise ValueError(f"port {port} in {text!r} is not in [0, 65535]")
        return text


class PeerId(CheckedStr):
    """A libp2p peer id of an Ed25519 key, base58 (`12D3KooW...`), as nodes of this network have."""

    what = "an Ed25519 libp2p peer id (12D3KooW...)"

    @classmethod
    def check(cls, text: str) -> str:
        try:
            peer = ID.from_base58(text)
        except ValueError:
            raise ValueError(f"expected {cls.what}, got {text!r}") from None
        # Any base58 string decodes to some bytes; only an identity multihash of an Ed25519
        # public key, re-encoded to the same text, is a peer id a node of this network can have.
        if peer.to_base58() != text or not isinstance(peer.extract_public_key(), Ed25519PublicKey):
            raise ValueError(f"expected {cls.what}, got {text!r}")
        return text


class Multiaddr(CheckedStr):
    """A libp2p multiaddr such as `/ip4/0.0.0.0/tcp/4001`."""

    what = "a multiaddr"

    @classmethod
    def check(cls, text: str) -> str:
        if not text.startswith("/"):
            raise ValueError(f"expected {cls.what} (like /ip4/127.0.0.1/tcp/4001), got {text!r}")
        try:
            ParsedMultiaddr(text)
        except ValueError as error:
            raise ValueError(
                f"expected {cls.what}, got {text!r}: {getattr(error, 'message', error)}"
            ) from None
        return text


class PeerMultiaddr(Multiaddr):
    """A multiaddr that ends in `/p2p/<peer id>`: dialing a peer securely needs its id."""

    what = "a multiaddr ending in /p2p/<peer id>"

    @classmethod
    def check(cls, text: str) -> str:
        super().check(text)
        _, marker, peer = text.rpartition("/p2p/")
        if not marker or "/" in peer:
            raise ValueError(f"expected {cls.what}, got {text!r}")
        PeerId.check(peer)
        return text


class ChecksumAddress(CheckedStr):
    """An Ethereum address in its EIP-55 mixed-case checksum form."""

    what = "a checksummed Ethereum address"

    @classmethod
    def check(cls, text: str) -> str:
        if not is_address(text) or not text.startswith("0x"):
            raise ValueError(f"expected {cls.what}, got {text!r}")
        if not is_checksum_address(text):
            raise ValueError(f"{text!r} is not checksummed: expected {to_checksum_address(text)}")
        return text


class BlsPublicKey(CheckedStr):
    """A compressed BLS12-381 G1 public key, `0x` and 48 bytes of hex; stored in lower case."""

    what = "a BLS public key (0x and 48 bytes of hex)"

    @classmethod
    def check(cls, text: str) -> str:
        if not _BLS_PUBLIC_KEY.fullmatch(text):
            raise ValueError(f"expected {cls.what}, got {text!r}")
        if not G2ProofOfPossession.KeyValidate(bytes.fromhex(text[2:])):
            raise ValueError(f"{text!r} is not a valid BLS12-381 public key")
        return text.lower()


@dataclass(frozen=True)
class Endpoint:
    """A chain this node reads besides its own: its id, its nodes' URLs and how to read it
    (None: the gateway's defaults)."""

    chain_id: int
    rpc_url: str
    ws_url: str | None
    confirmations: int | None
    poll_ms: int | None


class ChainEndpoint(CheckedStr):
    """`<chain id> <rpc url> [<ws url>] [confirmations=N] [poll_ms=N]`: another chain to read."""

    what = "`<chain id> <http(s) rpc url> [<ws url>] [confirmations=N] [poll_ms=N]`"
    _BOUNDS: ClassVar[dict[str, tuple[int, int]]] = {"confirmations": (0, 10_000), "poll_ms": (100, 60_000)}

    @classmethod
    def check(cls, text: str) -> str:
        cls.parse(text)
        return " ".join(text.split())

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """The parts of `text`; ValueError naming what is wrong."""
        words = text.split()
        if len(words) < 2 or not words[0].isdigit() or not 1 <= int(words[0]) <= 2**53:
            raise ValueError(f"expected {cls.what}, got {text!r}")
        rpc_url, ws_url, options = HttpUrl.check(words[1]), None, {}
        for word in words[2:]:
            name, equals, number = word.partition("=")
            if not equals:
                if ws_url is not None or options:
                    raise ValueError(f"expected {cls.what}, got {text!r}")
                ws_url = WsUrl.check(word)
                continue
            low, high = cls._BOUNDS.get(name, (1, 0))
            if not number.isdigit() or not low <= int(number) <= high or name in options:
                raise ValueError(
                    f"{word!r} in {text!r}: expected confirmations in [0, 10000], poll_ms in [100, 60000]"
                )
            options[name] = int(number)
        return Endpoint(int(words[0]), rpc_url, ws_url, options.get("confirmations"), options.get("poll_ms"))

    @property
    def endpoint(self) -> Endpoint:
        """This chain's parts."""
        return self.parse(self)


def dec_hook(kind: type, value: Any) -> Any:
    """Decode `value` into `kind` (a CheckedStr or Path) for msgspec; other types are unsupported."""
    if kind is Path:
        if not isinstance(value, str) or not value:
            raise TypeError(f"expected a path, got {value!r}")
        return Path(value).expanduser()
    if isinstance(kind, type) and issubclass(kind, CheckedStr):
        if not isinstance(value, str):
            raise TypeError(f"expected {kind.what}, got {value!r}")
        return kind(kind.check(value))
    raise TypeError(f"no decoder for {kind!r}")  # msgspec reports it as a validation error


class HostName(CheckedStr):
    """A host name or IP address to connect to (no port, no spaces)."""

    what = "a host name or IP address"

    @classmethod
    def check(cls, text: str) -> str:
        if not _HOST.fullmatch(text):
            raise ValueError(f"expected {cls.what}, got {text!r}")
        return text


class EmailAddress(CheckedStr):
    """A bare email address, `local@domain` (no display name, nothing a header could break on)."""

    what = "an email address (name@example.com)"

    @classmethod
    def check(cls, text: str) -> str:
        if len(text) > 254 or not _EMAIL.fullmatch(text):
            raise ValueError(f"expected {cls.what}, got {text!r}")
        return text
