"""The `triggerx-node` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import trio
from eth_account import Account
from eth_utils import is_address, to_checksum_address

from node.chain.contracts import revert_decoder
from node.chain.deployment import deploy_core
from node.chain.errors import ChainError
from node.chain.rpc import RpcClient
from node.chain.transactions import TransactionSender

ROLES = {
    "keeper": "executes tasks assigned to it and attests to other keepers' tasks",
    "aggregator": "collects attesters' BLS votes and submits quorum proofs on chain",
    "gateway": "serves the HTTP API and schedules, dispatches and monitors tasks",
}


class CliError(Exception):
    """A problem with what the user asked for; printed as one line."""


def _address(text: str) -> str:
    if not is_address(text):
        raise argparse.ArgumentTypeError(f"not an Ethereum address: {text!r}")
    return to_checksum_address(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with every role and subcommand this build has."""
    roles = "\n".join(f"  {name:<11} {what}" for name, what in ROLES.items())
    parser = argparse.ArgumentParser(
        prog="triggerx-node",
        description="A node of the TriggerX keeper network.",
        epilog=f"roles:\n{roles}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--role", choices=sorted(ROLES), help="the role this node plays on the mesh")
    commands = parser.add_subparsers(dest="command", metavar="command")
    deploy = commands.add_parser(
        "deploy",
        help="deploy JobRegistry, TriggerGasRegistry and TaskExecutionHub to a chain",
        description="Deploy the execution contracts, let the hub charge fees, and print their "
        "addresses as JSON. The deployer becomes their governor.",
    )
    deploy.add_argument("--rpc-url", required=True, help="the chain's JSON-RPC HTTP endpoint")
    deploy.add_argument("--dispatcher", required=True, type=_address, help="address that signs assignments")
    key = deploy.add_mutually_exclusive_group()
    key.add_argument("--key-file", type=Path, help="file holding the deployer's hex private key")
    key.add_argument(
        "--key-env",
        default="TRIGGERX_DEPLOYER_KEY",
        help="environment variable holding the deployer's hex private key (default: %(default)s)",
    )
    deploy.add_argument("--out", type=Path, help="also write the addresses to this JSON file")
    return parser


def _deployer_key(args: argparse.Namespace) -> str:
    if args.key_file is not None:
        try:
            return args.key_file.read_text().strip()
        except OSError as error:
            raise CliError(f"--key-file: cannot read {args.key_file}: {error.strerror}") from None
    key = os.environ.get(args.key_env, "").strip()
    if not key:
        raise CliError(f"no deployer key: set {args.key_env} or pass --key-file")
    return key


async def _deploy(args: argparse.Namespace) -> dict[str, object]:
    try:
        account = Account.from_key(_deployer_key(args))
    except ValueError:
        raise CliError("the deployer key is not a valid hex private key") from None
    async with RpcClient(args.rpc_url, revert_decoder=revert_decoder()) as rpc:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        core = await deploy_core(TransactionSender(rpc, account, chain_id), dispatcher=args.dispatcher)
    return {
        "chainId": chain_id,
        "governor": account.address,
        "dispatcher": args.dispatcher,
        "jobRegistry": core.job_registry.address,
        "triggerGasRegistry": core.gas_registry.address,
        "taskExecutionHub": core.hub.address,
    }


def _fail(message: str) -> NoReturn:
    print(f"triggerx-node: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `triggerx-node` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "deploy":
        try:
            addresses = trio.run(_deploy, args)
        except (CliError, ChainError) as error:
            _fail(str(error))
        text = json.dumps(addresses, indent=2)
        if args.out is not None:
            args.out.write_text(text + "\n")
        print(text)
    elif args.role is not None:
        _fail(f"the {args.role} role's services are not part of this build yet")
    else:
        parser.print_help()
