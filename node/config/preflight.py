"""What a role needs before it starts, loaded and checked: the genesis and the operator's keys.

Everything is opened here, at startup, so that a wrong password or a broken file stops the
node at once with one line naming the setting, not later in the middle of a task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from eth_account.signers.local import LocalAccount
from libp2p.crypto.keys import KeyPair

from node.bls import KeystoreError, read_password
from node.config.errors import GenesisError
from node.config.genesis import Genesis, load_genesis
from node.config.loader import Config
from node.config.schema import PASSWORDS
from node.keys import KeyFileError, WrongPasswordError, load_bls_secret, load_identity, load_operator_account

_Key = TypeVar("_Key")


@dataclass(frozen=True)
class NodeSetup:
    """A checked config with the genesis it names and its keys, decrypted."""

    config: Config
    genesis: Genesis
    operator: LocalAccount
    bls_secret: bytes | None  # None for roles that sign no votes and were given no BLS key
    identity: KeyPair


def prepare_node(config: Config) -> NodeSetup:
    """Load the genesis and decrypt the keys `config` names; ConfigError names the bad setting."""
    settings = config.settings
    try:
        genesis = load_genesis(settings.genesis.path)
    except GenesisError as error:
        raise config.error("genesis.path", str(error)) from None
    operator = _unlock(config, PASSWORDS[0], load_operator_account)
    bls_secret = None
    if settings.keys.bls_keystore is not None:
        bls_secret = _unlock(config, PASSWORDS[1], load_bls_secret)
    try:
        identity = load_identity(settings.keys.identity)
    except KeyFileError as error:
        raise config.error("keys.identity", str(error)) from None
    return NodeSetup(config, genesis, operator, bls_secret, identity)


def _unlock(config: Config, keys: tuple[str, str, str], load: Callable[[Path, str], _Key]) -> _Key:
    """Decrypt the keystore of `keys` (keystore, password file, password environment variable)."""
    keystore, file_key, env_key = keys
    password_key = file_key if config.value(file_key) is not None else env_key
    try:
        password = read_password(file=config.value(file_key), env=config.value(env_key))
    except KeystoreError as error:
        raise config.error(password_key, str(error)) from None
    try:
        return load(config.value(keystore), password)
    except WrongPasswordError as error:
        raise config.error(password_key, str(error)) from None
    except KeyFileError as error:
        raise config.error(keystore, str(error)) from None
