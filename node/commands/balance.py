"""`triggerx-node balance show|deposit|withdraw`: the owner's gas balance in the hub, on the SDK.

Amounts are wei, or ether with an `eth` suffix (`0.5eth`)."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

from node.commands.client_options import add_client_options, run_with_client

WEI_PER_ETH = 10**18


def amount(text: str) -> int:
    """Wei from `text`: an integer (wei) or a decimal with `eth` (ether)."""
    try:
        if text.lower().endswith("eth"):
            wei = Decimal(text[:-3]) * WEI_PER_ETH
            if wei != wei.to_integral_value():
                raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of wei")
            value = int(wei)
        else:
            value = int(text)
    except (ValueError, InvalidOperation):
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount (wei, or ether as '0.5eth')") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the amount must be more than 0")
    return value


def add_balance_command(commands: argparse._SubParsersAction) -> None:
    """The `balance` command and its actions."""
    balance = commands.add_parser(
        "balance", help="the owner's gas balance in the hub: show, deposit, withdraw"
    )
    actions = balance.add_subparsers(dest="balance_action", metavar="action", required=True)
    show = actions.add_parser("show", help="the balance")
    show.add_argument("--address", help="whose (default: the owner's)")
    deposit = actions.add_parser("deposit", help="add to the owner's balance")
    deposit.add_argument("amount", type=amount, metavar="AMOUNT")
    withdraw = actions.add_parser("withdraw", help="take from the owner's balance")
    withdraw.add_argument("amount", type=amount, metavar="AMOUNT")
    withdraw.add_argument("--to", help="where to (default: the owner)")
    for parser in (show, deposit, withdraw):
        add_client_options(parser)


def run_balance(args: argparse.Namespace) -> int:
    """Run a `balance` action; its exit code."""
    if args.balance_action == "show":
        return run_with_client(args, lambda client: client.balance(args.address), _eth)
    if args.balance_action == "deposit":
        return run_with_client(
            args, lambda client: client.deposit(args.amount), lambda tx: f"deposited: {tx}"
        )
    return run_with_client(
        args, lambda client: client.withdraw(args.amount, args.to), lambda tx: f"withdrawn: {tx}"
    )


def _eth(wei: int) -> str:
    return f"{Decimal(wei) / WEI_PER_ETH} ETH ({wei} wei)"
