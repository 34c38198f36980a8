"""Where `triggerx-node operator` finds an operator's keys, the chain, the registry and the gateway.

Each setting comes from, first to last: its flag, its environment variable, the node's TOML
config (`--config`: a keeper's config names its keys, chain and genesis), the genesis
(`--genesis`, or the config's: the registry, the hub and the chain id) and a devnet's facts file
(`--devnet devnet/devnet.json`: its gateway, chain and genesis).

| setting   | flag             | environment                  | from the config                  |
|-----------|------------------|------------------------------|----------------------------------|
| keys      | `--keys-dir`     | `TRIGGERX_OPERATOR_KEYS_DIR` | `[keys]`, with their passwords   |
| chain     | `--rpc-url`      | `TRIGGERX_CHAIN_RPC_URL`     | `[chain] rpc_url`                |
| genesis   | `--genesis`      | `TRIGGERX_GENESIS_PATH`      | `[genesis] path`                 |
| registry  | `--registry`     | `TRIGGERX_OPERATOR_REGISTRY` | the genesis' operatorRegistry    |
| gateway   | `--gateway`      | `TRIGGERX_CLIENT_GATEWAY`    |                                  |
| metrics   | `--metrics-url`  |                              | `[node] metrics_listen`          |
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address
from libp2p.peer.id import ID

from node.bls import KeystoreError, read_password
from node.commands import CommandError, read_secret
from node.config import Config, Genesis, flag_values, load_config, load_genesis
from node.keys import KeyDirectory, load_bls_secret, load_identity, load_operator_account, peer_id


class _DevnetFacts(msgspec.Struct, rename="camel"):
    gateway_url: str
    rpc_url: str


@dataclass(frozen=True)
class Password:
    """A keystore's password: in a file or in an environment variable."""

    file: Path | None
    env: str | None

    def read(self, what: str) -> str:
        """The password; CommandError when it cannot be read."""
        try:
            return read_password(file=self.file, env=self.env)
        except KeystoreError as error:
            raise CommandError(f"{what}: {error}") from None


@dataclass(frozen=True)
class KeyFiles:
    """An operator's three key files (as `triggerx-node keys new` writes them) and passwords."""

    operator: Path
    bls: Path | None
    identity: Path
    operator_password: Password
    bls_password: Password

    def account(self) -> LocalAccount:
        """The operator account, decrypted."""
        return load_operator_account(self.operator, self.operator_password.read("operator keystore"))

    def bls_secret(self) -> bytes:
        """The BLS secret key, decrypted."""
        if self.bls is None:
            raise CommandError("no BLS keystore: give --keys-dir, or a config with [keys] bls_keystore")
        return load_bls_secret(self.bls, self.bls_password.read("BLS keystore"))

    def peer_id(self) -> ID:
        """The node's libp2p peer id."""
        return peer_id(load_identity(self.identity))


@dataclass(frozen=True)
class Sources:
    """Everything an operator action may need; None where nothing names it."""

    keys: KeyFiles | None
    rpc_url: str | None
    registry: str | None
    gateway: str | None
    genesis: Genesis | None
    metrics_url: str | None

    def key_files(self) -> KeyFiles:
        """The key files; CommandError when none are named."""
        if self.keys is None:
            raise CommandError("no keys: give --keys-dir DIR (or --config with a [keys] table)")
        return self.keys

    def gateway_url(self) -> str:
        """The gateway's URL; CommandError when none is named."""
        if self.gateway is None:
            raise CommandError("no gateway: give --gateway URL (or TRIGGERX_CLIENT_GATEWAY, --devnet FILE)")
        return self.gateway.rstrip("/")


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """The flags every operator action takes."""
    group = parser.add_argument_group("where (flag, then environment, then --config, --genesis, --devnet)")
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS,  # `triggerx-node --config FILE operator ...` works too
        help="the keeper's TOML config: its [keys], [chain] rpc_url, [genesis] and metrics_listen",
    )
    group.add_argument("--keys-dir", type=Path, metavar="DIR", help="the key directory `keys new` made")
    password = group.add_mutually_exclusive_group()
    password.add_argument("--password-file", type=Path, help="file holding the keystores' password")
    password.add_argument("--password-env", help="environment variable holding the keystores' password")
    group.add_argument("--rpc-url", metavar="URL", help="the chain's JSON-RPC HTTP endpoint")
    group.add_argument("--genesis", type=Path, metavar="FILE", help="the network's genesis.json")
    group.add_argument("--registry", metavar="ADDRESS", help="the OperatorRegistry's address")
    group.add_argument("--gateway", metavar="URL", help="the gateway's URL")
    group.add_argument("--metrics-url", metavar="URL", help="the node's metrics endpoint (…/metrics)")
    group.add_argument("--devnet", type=Path, metavar="FILE", help="a devnet's devnet.json")
    group.add_argument("--json", action="store_true", help="print one JSON document")


_ENVIRONMENT = {
    "keys_dir": "TRIGGERX_OPERATOR_KEYS_DIR",
    "rpc_url": "TRIGGERX_CHAIN_RPC_URL",
    "genesis": "TRIGGERX_GENESIS_PATH",
    "registry": "TRIGGERX_OPERATOR_REGISTRY",
    "gateway": "TRIGGERX_CLIENT_GATEWAY",
}


def resolve_sources(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Sources:
    """The sources `args`, `environ`, the config, the genesis and the devnet name; ConfigError,
    GenesisError or CommandError (one line) for a file that cannot be read."""

    def given(name: str) -> str | None:
        value = getattr(args, name, None)
        return str(value) if value is not None else environ.get(_ENVIRONMENT[name]) or None

    config_file = getattr(args, "config", None)
    config = load_config(config_file, environ, flag_values(args)) if config_file is not None else None
    devnet_file = getattr(args, "devnet", None)
    devnet = _devnet_facts(devnet_file) if devnet_file is not None else None
    genesis_path = given("genesis")
    if genesis_path is None and config is not None:
        genesis_path = str(config.settings.genesis.path)
    if genesis_path is None and devnet_file is not None:
        genesis_path = str(devnet_file.parent / "genesis.json")
    genesis = load_genesis(Path(genesis_path)) if genesis_path is not None else None
    rpc_url = _first(
        given("rpc_url"),
        config and str(config.settings.chain.rpc_url),
        genesis and genesis.rpc_urls and str(genesis.rpc_urls[0]),
        devnet and devnet.rpc_url,
    )
    registry = _first(given("registry"), genesis and genesis.contracts.operator_registry)
    if registry is not None and not is_address(registry):
        raise CommandError(f"registry: not an address: {registry!r}")
    metrics_url = getattr(args, "metrics_url", None)
    if metrics_url is None and config is not None and config.settings.node.metrics_listen is not None:
        host, _, port = str(config.settings.node.metrics_listen).rpartition(":")
        metrics_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/metrics"
    return Sources(
        keys=_key_files(args, given("keys_dir"), config),
        rpc_url=rpc_url,
        registry=None if registry is None else to_checksum_address(registry),
        gateway=_first(given("gateway"), devnet and devnet.gateway_url),
        genesis=genesis,
        metrics_url=metrics_url,
    )


def _first(*values: str | None) -> str | None:
    """The first of `values` given (not None, not empty)."""
    return next((value for value in values if value), None)


def _key_files(args: argparse.Namespace, keys_dir: str | None, config: Config | None) -> KeyFiles | None:
    given = Password(getattr(args, "password_file", None), getattr(args, "password_env", None))
    explicit = given if given.file is not None or given.env is not None else None
    if keys_dir is not None:
        directory = KeyDirectory(Path(keys_dir))
        password = explicit or Password(None, None)
        return KeyFiles(directory.operator, directory.bls, directory.identity, password, password)
    if config is None:
        return None
    keys = config.settings.keys
    return KeyFiles(
        keys.operator_keystore,
        keys.bls_keystore,
        keys.identity,
        explicit or Password(keys.operator_password_file, keys.operator_password_env),
        explicit or Password(keys.bls_password_file, keys.bls_password_env),
    )


def _devnet_facts(path: Path) -> _DevnetFacts:
    try:
        return msgspec.json.decode(path.read_bytes(), type=_DevnetFacts)
    except OSError as error:
        raise CommandError(f"--devnet: cannot read {path}: {error.strerror}") from None
    except msgspec.DecodeError as error:
        raise CommandError(f"--devnet: {path} is not a devnet's devnet.json: {error}") from None


def governor_account(args: argparse.Namespace) -> LocalAccount | None:
    """The governor's account from `--governor-key-file` or `--governor-key-env`, if given."""
    key = read_secret(args.governor_key_file, args.governor_key_env, "governor-key")
    if key is None:
        return None
    try:
        return Account.from_key(key)
    except ValueError:
        raise CommandError("the governor key is not a hex secp256k1 private key") from None


def add_governor_options(parser: argparse.ArgumentParser) -> None:
    """`--governor-key-file` / `--governor-key-env`: act as the registry's governor."""
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--governor-key-file", type=Path, help="file holding the governor's hex private key")
    key.add_argument("--governor-key-env", help="environment variable holding the governor's hex private key")


def admin_token(args: argparse.Namespace) -> str | None:
    """The gateway's admin credential from `--admin-token-file` or `--admin-token-env`, if given."""
    return read_secret(args.admin_token_file, args.admin_token_env, "admin-token")


def add_admin_options(parser: argparse.ArgumentParser) -> None:
    """`--admin-token-file` / `--admin-token-env`: the gateway admin's credential."""
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--admin-token-file", type=Path, help="file holding the gateway's admin credential")
    token.add_argument(
        "--admin-token-env", help="environment variable holding the gateway's admin credential"
    )
