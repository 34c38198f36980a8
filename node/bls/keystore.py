"""EIP-2335 (version 4) keystores: a BLS secret key encrypted under a password.

The password is normalised (`process_password`), stretched by scrypt or PBKDF2-HMAC-SHA256
into a 32-byte decryption key; its second half checks the password (SHA-256 of it and the
ciphertext), its first half is the AES-128-CTR key of the secret.

Loading checks every field and refuses KDF parameters outside sane bounds, so a hostile file
can neither crash the parser nor make it spend gigabytes or minutes stretching a password.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from Crypto.Cipher import AES

from node.bls.backend import choose_backend

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_CONTROL_CODES = dict.fromkeys([*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)])
_JSON_TYPES = {dict: "an object", str: "a string", int: "an integer"}
_REQUIRED = object()
_SCRYPT_NS = frozenset(2**k for k in range(1, 21))


class KeystoreError(Exception):
    """A keystore or its password could not be read, parsed or decrypted."""


class WrongPasswordError(KeystoreError):
    """The password does not open the keystore (its checksum does not match)."""


class InvalidKeystoreError(KeystoreError):
    """The keystore is malformed; the message names the offending field."""


@dataclass(frozen=True)
class ScryptKdf:
    """scrypt (RFC 7914) with a 32-byte output, bounded to need at most 1 GiB."""

    salt: bytes
    n: int
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        _check(self.n in _SCRYPT_NS, "crypto.kdf.params.n", "expected a power of two in [2, 2**20]")
        _check(1 <= self.r <= 8, "crypto.kdf.params.r", "expected an integer in [1, 8]")
        _check(1 <= self.p <= 16, "crypto.kdf.params.p", "expected an integer in [1, 16]")

    def derive(self, password: bytes) -> bytes:
        """The decryption key for the processed `password`."""
        # OpenSSL refuses to use more than `maxmem` (32 MiB by default); scrypt needs 128·r·(n+p+2).
        maxmem = 128 * self.r * (self.n + self.p + 2) + 2**20
        return hashlib.scrypt(password, salt=self.salt, n=self.n, r=self.r, p=self.p, maxmem=maxmem, dklen=32)

    def to_dict(self) -> dict[str, Any]:
        """The `crypto.kdf` module as JSON."""
        params = {"dklen": 32, "n": self.n, "p": self.p, "r": self.r, "salt": self.salt.hex()}
        return {"function": "scrypt", "params": params, "message": ""}


@dataclass(frozen=True)
class Pbkdf2Kdf:
    """PBKDF2 (RFC 2898) with HMAC-SHA256 and a 32-byte output."""

    salt: bytes
    c: int

    def __post_init__(self) -> None:
        _check(1 <= self.c <= 2**24, "crypto.kdf.params.c", "expected an integer in [1, 2**24]")

    def derive(self, password: bytes) -> bytes:
        """The decryption key for the processed `password`."""
        return hashlib.pbkdf2_hmac("sha256", password, self.salt, self.c, dklen=32)

    def to_dict(self) -> dict[str, Any]:
        """The `crypto.kdf` module as JSON."""
        params = {"dklen": 32, "c": self.c, "prf": "hmac-sha256", "salt": self.salt.hex()}
        return {"function": "pbkdf2", "params": params, "message": ""}


@dataclass(frozen=True)
class KeystoreCrypto:
    """The `crypto` section: KDF, SHA-256 checksum and AES-128-CTR ciphertext of the secret."""

    kdf: ScryptKdf | Pbkdf2Kdf
    checksum: bytes
    iv: bytes
    cipher_message: bytes

    def to_dict(self) -> dict[str, Any]:
        """The section as JSON."""
        checksum = {"function": "sha256", "params": {}, "message": self.checksum.hex()}
        cipher = {
            "function": "aes-128-ctr",
            "params": {"iv": self.iv.hex()},
            "message": self.cipher_message.hex(),
        }
        return {"kdf": self.kdf.to_dict(), "checksum": checksum, "cipher": cipher}


@dataclass(frozen=True)
class Keystore:
    """A parsed EIP-2335 keystore; `source` is the file it was loaded from, if any."""

    crypto: KeystoreCrypto
    description: str
    pubkey: str
    path: str
    uuid: str
    version: int = 4
    source: Path | None = field(default=None, compare=False)

    @classmethod
    def encrypt(
        cls,
        secret: bytes,
        password: str,
        *,
        kdf: Literal["scrypt", "pbkdf2"] = "scrypt",
        path: str = "",
        description: str = "",
        scrypt_n: int = 2**18,
        pbkdf2_c: int = 2**18,
    ) -> Keystore:
        """A new keystore holding the 32-byte BLS secret key `secret` under `password`.

        Raises ValueError for a secret that is not a BLS secret key, and InvalidKeystoreError
        for work factors outside the bounds `from_json` accepts (it could not be loaded back).
        """
        pubkey = choose_backend().secret_to_public(secret).hex()
        salt = secrets.token_bytes(32)
        if kdf == "scrypt":
            stretch: ScryptKdf | Pbkdf2Kdf = ScryptKdf(salt, scrypt_n)
        elif kdf == "pbkdf2":
            stretch = Pbkdf2Kdf(salt, pbkdf2_c)
        else:
            raise ValueError(f"kdf must be 'scrypt' or 'pbkdf2', not {kdf!r}")
        key = stretch.derive(process_password(password))
        iv = secrets.token_bytes(16)
        message = _aes_128_ctr(key[:16], iv, secret)
        checksum = hashlib.sha256(key[16:32] + message).digest()
        crypto = KeystoreCrypto(stretch, checksum, iv, message)
        return cls(crypto, description, pubkey, path, str(uuid.uuid4()))

    def decrypt(self, password: str) -> bytes:
        """The 32-byte secret key; WrongPasswordError if `password` does not open the keystore."""
        key = self.crypto.kdf.derive(process_password(password))
        checksum = hashlib.sha256(key[16:32] + self.crypto.cipher_message).digest()
        if not hmac.compare_digest(checksum, self.crypto.checksum):
            raise WrongPasswordError(f"wrong password for keystore {self._name()}")
        secret = _aes_128_ctr(key[:16], self.crypto.iv, self.crypto.cipher_message)
        try:
            public = choose_backend().secret_to_public(secret).hex()
        except ValueError as e:
            raise InvalidKeystoreError(f"crypto.cipher.message: {e} (in {self._name()})") from None
        if self.pubkey and public != self.pubkey:
            raise InvalidKeystoreError(f"pubkey: not the public key of the secret in {self._name()}")
        return secret

    def to_json(self) -> str:
        """The keystore as EIP-2335 JSON."""
        labels = {"description": self.description, "pubkey": self.pubkey, "path": self.path}
        document = {"crypto": self.crypto.to_dict(), **labels, "uuid": self.uuid, "version": self.version}
        return json.dumps(document, indent=4, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: Path | None = None) -> Keystore:
        """Parse and check EIP-2335 JSON; InvalidKeystoreError names the first bad field."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidKeystoreError(f"not JSON: {e}") from None
        _check(isinstance(document, dict), "keystore", "expected a JSON object")
        version = _field(document, "version", int)
        _check(version == 4, "version", f"expected 4, got {version}")
        identifier = _field(document, "uuid", str)
        try:
            uuid.UUID(identifier)
        except ValueError:
            raise InvalidKeystoreError(f"uuid: expected a UUID, got {identifier!r}") from None
        pubkey = _hex_field(document, "pubkey", default="")
        _check(len(pubkey) in (0, 48), "pubkey", f"expected 48 bytes, got {len(pubkey)}")
        return cls(
            crypto=_parse_crypto(_field(document, "crypto", dict)),
            description=_field(document, "description", str, default=""),
            pubkey=pubkey.hex(),
            path=_field(document, "path", str),
            uuid=identifier,
            version=version,
            source=source,
        )

    @classmethod
    def load(cls, path: Path) -> Keystore:
        """Read and check the keystore file at `path`."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise KeystoreError(f"cannot read keystore {path}: {getattr(e, 'strerror', None) or e}") from None
        try:
            return cls.from_json(text, source=path)
        except InvalidKeystoreError as e:
            raise InvalidKeystoreError(f"keystore {path}: {e}") from None

    def save(self, path: Path) -> None:
        """Write the keystore to `path` atomically, readable by its owner only (mode 0o600)."""
        # A crash mid-write must leave either the old file or the new one, never half of each;
        # mkstemp creates the file with mode 0o600, so the secret is never readable by others.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(self.to_json())
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # makes the rename itself durable
        finally:
            os.close(directory)

    def _name(self) -> str:
        if self.source is not None:
            return str(self.source)
        return f"0x{self.pubkey}" if self.pubkey else f"uuid {self.uuid}"


def process_password(password: str) -> bytes:
    """The EIP-2335 bytes of `password`: NFKD, without C0, C1 and Delete control codes, UTF-8."""
    return unicodedata.normalize("NFKD", password).translate(_CONTROL_CODES).encode("utf-8")


def read_password(*, file: Path | None = None, env: str | None = None) -> str:
    """The password in `file` (one trailing newline removed) or in the environment variable `env`."""
    if file is not None and env is not None:
        raise KeystoreError("give the password in a file or in an environment variable, not both")
    if file is not None:
        try:
            text = file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise KeystoreError(
                f"cannot read password file {file}: {getattr(e, 'strerror', None) or e}"
            ) from None
        return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    if env is not None:
        password = os.environ.get(env)
        if password is None:
            raise KeystoreError(f"environment variable {env} (the keystore password) is not set")
        return password
    raise KeystoreError("no keystore password: give a password file or an environment variable")


def _parse_crypto(crypto: dict[str, Any]) -> KeystoreCrypto:
    kdf = _module(crypto, "kdf", {"scrypt", "pbkdf2"})
    _field(kdf, "crypto.kdf.message", str)
    params = _field(kdf, "crypto.kdf.params", dict)
    dklen = _field(params, "crypto.kdf.params.dklen", int)
    _check(dklen == 32, "crypto.kdf.params.dklen", f"expected 32, got {dklen}")
    salt = _hex_field(params, "crypto.kdf.params.salt")
    _check(16 <= len(salt) <= 1024, "crypto.kdf.params.salt", f"expected 16 to 1024 bytes, got {len(salt)}")
    if kdf["function"] == "scrypt":
        n, r, p = (_field(params, f"crypto.kdf.params.{key}", int) for key in "nrp")
        stretch: ScryptKdf | Pbkdf2Kdf = ScryptKdf(salt, n, r, p)
    else:
        prf = _field(params, "crypto.kdf.params.prf", str)
        _check(prf == "hmac-sha256", "crypto.kdf.params.prf", f"expected 'hmac-sha256', got {prf!r}")
        stretch = Pbkdf2Kdf(salt, _field(params, "crypto.kdf.params.c", int))
    checksum = _module(crypto, "checksum", {"sha256"})
    _check(not _field(checksum, "crypto.checksum.params", dict), "crypto.checksum.params", "expected {}")
    cipher = _module(crypto, "cipher", {"aes-128-ctr"})
    return KeystoreCrypto(
        kdf=stretch,
        checksum=_hex_field(checksum, "crypto.checksum.message", 32),
        iv=_hex_field(_field(cipher, "crypto.cipher.params", dict), "crypto.cipher.params.iv", 16),
        cipher_message=_hex_field(cipher, "crypto.cipher.message", 32),
    )


def _module(crypto: Mapping[str, Any], name: str, functions: set[str]) -> dict[str, Any]:
    module = _field(crypto, f"crypto.{name}", dict)
    function = _field(module, f"crypto.{name}.function", str)
    expected = " or ".join(repr(f) for f in sorted(functions))
    _check(function in functions, f"crypto.{name}.function", f"expected {expected}, got {function!r}")
    return module


def _field(obj: Mapping[str, Any], name: str, kind: type | None, default: Any = _REQUIRED) -> Any:
    """`obj[key]`, `key` being the last part of the dotted `name`, checked to be a `kind`."""
    key = name.rpartition(".")[2]
    if key not in obj:
        _check(default is not _REQUIRED, name, "missing")
        return default
    value = obj[key]
    # JSON true/false parse as bool, which Python counts as int.
    if kind is not None:
        _check(isinstance(value, kind) and not isinstance(value, bool), name, f"expected {_JSON_TYPES[kind]}")
    return value


def _hex_field(obj: Mapping[str, Any], name: str, size: int | None = None, default: Any = _REQUIRED) -> bytes:
    value = _field(obj, name, None, default)
    _check(isinstance(value, str) and _HEX.fullmatch(value) is not None, name, "expected a hex string")
    data = bytes.fromhex(value)
    _check(size is None or len(data) == size, name, f"expected {size} bytes, got {len(data)}")
    return data


def _check(condition: bool, name: str, problem: str) -> None:
    if not condition:
        raise InvalidKeystoreError(f"{name}: {problem}")


def _aes_128_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    # The whole 16-byte IV is the initial counter block, as in OpenSSL's aes-128-ctr.
    return AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=iv).encrypt(data)
