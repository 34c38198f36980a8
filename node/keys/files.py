"""An operator's key directory, and writing secrets to it safely.

A key directory holds the three keys of one operator:

- `operator.json`: the ECDSA operator key, an Ethereum V3 keystore (scrypt);
- `bls.json`: the BLS key, an EIP-2335 keystore (scrypt);
- `identity.key`: the libp2p identity, an Ed25519 key file (see `node.keys.identity`).

Every file is written atomically with mode 0o600 in a directory of mode 0o700.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


class KeyFileError(Exception):
    """A key file cannot be read, parsed, decrypted or written; the message is one line."""


class WrongPasswordError(KeyFileError):
    """The password does not open the keystore."""


@dataclass(frozen=True)
class KeyDirectory:
    """Where the three keys of an operator live."""

    root: Path

    @property
    def operator(self) -> Path:
        """The operator's V3 keystore."""
        return self.root / "operator.json"

    @property
    def bls(self) -> Path:
        """The operator's EIP-2335 keystore."""
        return self.root / "bls.json"

    @property
    def identity(self) -> Path:
        """The node's libp2p identity key file."""
        return self.root / "identity.key"

    def files(self) -> tuple[Path, Path, Path]:
        """All three, in the order they are written."""
        return self.operator, self.bls, self.identity

    def create(self) -> None:
        """Create the directory (readable by its owner only) when it does not exist."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise KeyFileError(f"cannot create key directory {self.root}: {error.strerror}") from None


def read_key_file(path: Path, what: str) -> bytes:
    """The bytes of the `what` (e.g. "operator keystore") at `path`; KeyFileError if unreadable."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read {what} {path}: {error.strerror}") from None


def write_private(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write `data` to `path` atomically, readable by its owner only (mode 0o600).

    Without `overwrite`, KeyFileError when `path` exists, even if it appeared while writing.
    """
    # A crash mid-write leaves the old file or the new one, never half of one: the data goes to
    # a temporary file (mkstemp creates it 0o600) that is then renamed or linked into place.
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise KeyFileError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # unlike a rename, fails when `path` exists
    except FileExistsError:
        raise KeyFileError(f"{path} already exists (pass --force to overwrite it)") from None
    except OSError as error:
        raise KeyFileError(f"cannot write {path}: {error.strerror}") from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # makes the new directory entry itself durable
    finally:
        os.close(directory)


def refuse_existing(paths: tuple[Path, ...]) -> None:
    """KeyFileError naming the first of `paths` that exists, before anything is written."""
    for path in paths:
        if path.exists():
            raise KeyFileError(f"{path} already exists (pass --force to overwrite it)")
