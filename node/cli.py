"""The `triggerx-node` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import NoReturn

import trio
from eth_account import Account
from eth_utils import is_address, to_checksum_address

from node.chain import ChainError, RpcClient, TransactionSender, deploy_consensus, deploy_core, revert_decoder
from node.commands.balance import add_balance_command, run_balance
from node.commands.jobs import add_jobs_command, run_jobs
from node.commands.operator import add_operator_command, run_operator
from node.config import (
    ROLES,
    ConfigError,
    NodeSetup,
    add_flags,
    flag_values,
    load_config,
    prepare_node,
    sole_instance,
)
from node.keys import KeyFileError, add_keys_command, run_keys


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
        allow_abbrev=False,  # the client commands' --gateway is not an abbreviation of --gateway-*
        description="A node of the TriggerX keeper network.",
        epilog=f"roles:\n{roles}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the node's TOML config file (its keys are the settings below)",
    )
    add_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="command")
    devnet = commands.add_parser(
        "devnet",
        help="start a local network (anvil, contracts, an aggregator, a gateway and keepers); status; stop",
        description="Start anvil, deploy and wire the contracts, make keys and configs for every node, "
        "start them as separate processes (a line per step), and print what runs where and how to make "
        "a first job. Ctrl-C stops it all; --detach leaves it running, for `status` and `stop`.",
        epilog="A start refuses a --dir that holds a running devnet (stop it first), an earlier run or "
        "other files (unless --force: wiped). `status` exits 0 when a devnet runs there, 1 when none "
        "does; `stop` exits 0 once it stopped one, 1 when none ran there.",
    )
    devnet.add_argument(
        "action",
        nargs="?",
        choices=("start", "status", "stop"),
        default="start",
        help="start one in --dir (the default), report on the one there, or stop it",
    )
    devnet.add_argument("--keepers", type=int, help="how many keepers (default: 3)")
    devnet.add_argument(
        "--instant", action="store_true", help="mine on every transaction (default: 1 s blocks)"
    )
    devnet.add_argument(
        "--dir", type=Path, default=Path("devnet"), help="the devnet's folder (default: devnet)"
    )
    devnet.add_argument(
        "--force", action="store_true", help="wipe --dir if it holds an earlier run or other files"
    )
    devnet.add_argument(
        "--detach",
        action="store_true",
        help="return once it is ready, leaving it running in the background (its log: <dir>/devnet.log)",
    )
    devnet.add_argument("--supervise", action="store_true", help=argparse.SUPPRESS)  # --detach's own process
    devnet.add_argument("--http-port", type=int, help="gateway HTTP port (default: a free one)")
    devnet.add_argument("--anvil-port", type=int, help="anvil port (default: a free one)")
    devnet.add_argument(
        "--chains",
        type=int,
        help="chains to start (default: 1); the others (ids 31338, ...) are read for event "
        "and condition jobs, whose tasks execute on the first",
    )
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
    add_keys_command(commands)
    add_jobs_command(commands)
    add_balance_command(commands)
    add_operator_command(commands)
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
        deployer = TransactionSender(rpc, account, chain_id)
        core = await deploy_core(deployer, dispatcher=args.dispatcher)
        consensus = await deploy_consensus(deployer, core.hub)
    return {
        "chainId": chain_id,
        "governor": account.address,
        "dispatcher": args.dispatcher,
        "taskExecutionHub": core.hub.address,
        "operatorRegistry": consensus.operator_registry.address,
        "attestationCenter": consensus.attestation_center.address,
    }


def _run_role(args: argparse.Namespace) -> None:
    """Load and check the config and keys, then run the role until SIGINT or SIGTERM, as the
    only process with its identity (node.config.instance)."""
    with ExitStack() as stack:
        try:
            setup = prepare_node(load_config(args.config, os.environ, flag_values(args)))
            stack.enter_context(sole_instance(setup.config.settings.keys.identity))
        except ConfigError as error:
            _fail(str(error))
        logging.basicConfig(
            level=setup.config.settings.node.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per JSON-RPC call is noise
        try:
            trio.run(_serve, setup)
        except BaseException as error:  # one line for the user; the traceback goes to the log
            leaves = _leaves(error)
            if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
                return
            logging.getLogger("triggerx").debug("the role stopped", exc_info=error)
            _fail("; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in leaves[:3]))


async def _serve(setup: NodeSetup) -> None:
    from node.roles import ROLE_RUNNERS

    role = ROLE_RUNNERS[setup.config.settings.node.role]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(role, setup)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


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
    elif args.command == "devnet":
        from node.devnet.control import devnet_usage_error, run_devnet_command

        if problem := devnet_usage_error(args):
            _fail(problem)
        sys.exit(run_devnet_command(args))
    elif args.command == "jobs":
        sys.exit(run_jobs(args))
    elif args.command == "balance":
        sys.exit(run_balance(args))
    elif args.command == "operator":
        sys.exit(run_operator(args))
    elif args.command == "keys":
        try:
            output = run_keys(args)
        except KeyFileError as error:
            _fail(str(error))
        print(output)
    elif args.config is not None or flag_values(args):
        _run_role(args)
    else:
        parser.print_help()
