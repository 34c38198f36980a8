"""Where the client commands (`jobs`, `balance`) find their gateway, chain and owner key: the
node's conventions (docs/architecture.md, "Configuration"), for a client.

Each setting comes from, first to last: its flag, its environment variable, the `[client]`
table of the TOML file given with `--config`, and a devnet's facts file (`--devnet
devnet/devnet.json`: its gateway, chain and demo owner).

| setting  | flag          | environment                 | [client] key |
|----------|---------------|-----------------------------|--------------|
| gateway  | `--gateway`   | `TRIGGERX_CLIENT_GATEWAY`   | `gateway`    |
| chain    | `--rpc-url`   | `TRIGGERX_CLIENT_RPC_URL`   | `rpc_url`    |
| key file | `--key-file`  | `TRIGGERX_CLIENT_KEY_FILE`  | `key_file`   |
| key      |               | `TRIGGERX_CLIENT_KEY`       |              |
| API key  | `--api-key`   | `TRIGGERX_CLIENT_API_KEY`   | `api_key`    |
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from node.commands import CommandError, read_secret
from triggerx import Client, TriggerxError

Result = TypeVar("Result")
_SETTINGS = ("gateway", "rpc_url", "key_file", "api_key")


@dataclass(frozen=True)
class ClientOptions:
    """A client command's gateway, chain, owner key and API key."""

    gateway: str
    rpc_url: str | None
    key: str | None
    api_key: str | None

    def client(self) -> Client:
        """A client with these options (close it when done)."""
        return Client(self.gateway, self.key, rpc_url=self.rpc_url, api_key=self.api_key)


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """The flags of every client command."""
    group = parser.add_argument_group("where and as whom (flags, then TRIGGERX_CLIENT_* env, then [client])")
    group.add_argument("--gateway", metavar="URL", help="the gateway's URL")
    group.add_argument("--rpc-url", metavar="URL", help="the chain's JSON-RPC (for the gas balance)")
    group.add_argument(
        "--key-file", type=Path, metavar="FILE", help="a file holding the owner's hex private key"
    )
    group.add_argument("--api-key", metavar="KEY", help="an API key (lifts the anonymous rate limit)")
    group.add_argument(
        "--devnet", type=Path, metavar="FILE", help="a devnet's devnet.json: its gateway and owner"
    )
    group.add_argument(
        "--json", action="store_true", help="print JSON (one document, or one a line for watch)"
    )


def client_options(args: argparse.Namespace, environ: Mapping[str, str]) -> ClientOptions:
    """The options from `args`, `environ`, the `--config` file's [client] table and `--devnet`."""
    table = _client_table(args.config)
    devnet = _devnet_facts(args.devnet)
    found: dict[str, Any] = {}
    for name in _SETTINGS:
        flag = getattr(args, name)
        found[name] = (
            flag if flag is not None else environ.get(f"TRIGGERX_CLIENT_{name.upper()}") or table.get(name)
        )
    gateway = found["gateway"] or devnet.get("gatewayUrl")
    if not gateway:
        raise CommandError("no gateway: pass --gateway URL (or --devnet FILE, TRIGGERX_CLIENT_GATEWAY)")
    key = environ.get("TRIGGERX_CLIENT_KEY") or None
    if found["key_file"] is not None:
        key = read_secret(Path(found["key_file"]), None, "key")
    return ClientOptions(
        gateway=gateway,
        rpc_url=found["rpc_url"] or devnet.get("rpcUrl"),
        key=key or devnet.get("demoOwnerKey"),
        api_key=found["api_key"],
    )


def run_with_client(
    args: argparse.Namespace, action: Callable[[Client], Result], show: Callable[[Result], str] | None
) -> int:
    """Run `action` with the client `args` describe and print its result (`show` for people,
    JSON with --json; None: the action prints); a refusal or a bad option is one line on stderr
    and exit code 1, Ctrl-C a quiet exit 130."""
    try:
        with client_options(args, os.environ).client() as client:
            result = action(client)
    except (CommandError, TriggerxError, ValueError) as error:
        print(f"triggerx-node: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if show is not None:
        print(as_json(result) if args.json else show(result))
    return 0


def as_json(value: object) -> str:
    """`value` (views, lists of them, plain values) as JSON text."""
    return msgspec.json.encode(value).decode()


def _client_table(config: Path | None) -> dict[str, Any]:
    if config is None:
        return {}
    try:
        table = tomllib.loads(config.read_text()).get("client", {})
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise CommandError(f"--config: cannot read {config}: {error}") from None
    unknown = sorted(set(table) - set(_SETTINGS))
    if unknown:
        raise CommandError(
            f"{config}: [client] has no setting {unknown[0]!r} (it has {', '.join(_SETTINGS)})"
        )
    return table


def _devnet_facts(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CommandError(f"--devnet: cannot read {path}: {error}") from None
