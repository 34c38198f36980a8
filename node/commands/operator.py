"""`triggerx-node operator register|status|stake|deactivate|admit`: an operator joins a network.

- `register` files the keeper form at the gateway (POST /api/keepers/form): the operator's
  account, its BLS public key with the proof of possession, its peer id, signed by the account
  (`RegisterKeeper`, gateway domain). Admission on chain (OperatorRegistry.registerOperator) is
  the governor's: `register` sends it only when it signs as the governor (`--governor-key-*`,
  or an operator account that is the governor); otherwise it says so, and the network's admin
  runs `admit`.
- `admit` (the admin's): registers an operator's form on chain and marks it approved.
- `status`: the operator on chain, its form (with the admin's credential), what the gateway
  counts of it and the node's own metrics.
- `stake`: the registry's stake is a weight governance sets (updateStake), not a deposit.
- `deactivate`: leaves the set, as the operator or the governor; final (ids are never reused).

Where the keys, chain, registry and gateway come from: node.commands.operator_sources.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import msgspec
import trio
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from node.bls import choose_backend, prove_possession
from node.chain import ChainError, RevertError
from node.commands import CommandError
from node.commands.balance import amount
from node.commands.operator_chain import (
    ChainAction,
    ChainRecord,
    chain_record,
    open_registry,
    register_on_chain,
    send,
    tokens,
)
from node.commands.operator_sources import (
    Sources,
    add_admin_options,
    add_governor_options,
    add_source_options,
    admin_token,
    governor_account,
    resolve_sources,
)
from node.config import ConfigError, GenesisError
from node.keys import KeyFileError, read_bls_public_key, read_operator_address
from protocol import registration_proof

MAX_STAKE = 2**96 - 1  # the registry's uint96


class NodeHealth(msgspec.Struct, rename="camel", kw_only=True):
    """What the node's metrics endpoint says, if it answers."""

    url: str
    up: bool
    tasks_executed: int = 0
    attestations: int = 0
    error: str = ""


@dataclass
class Report:
    """An action's result: a line per thing done or read, and the same as JSON."""

    lines: list[str] = field(default_factory=list)
    records: dict[str, object] = field(default_factory=dict)

    def add(self, name: str, line: str, record: object) -> None:
        """Add `record` as `name`, told as `line`."""
        self.lines.append(f"{name}: {line}")
        self.records[name] = record

    def render(self, as_json: bool) -> str:
        """The report for people, or as one JSON document."""
        return msgspec.json.encode(self.records).decode() if as_json else "\n".join(self.lines)


def add_operator_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `operator` and its actions under the subcommands `commands`."""
    operator = commands.add_parser(
        "operator",
        help="join a network as a keeper operator: register, status, stake, deactivate, admit",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = operator.add_subparsers(dest="operator_command", metavar="action", required=True)
    register = actions.add_parser(
        "register", help="file the keeper form at the gateway (and register on chain, as the governor)"
    )
    register.add_argument("--name", default="", help="the operator's name, for the admin")
    register.add_argument("--email", default="", help="how the admin reaches the operator")
    register.add_argument(
        "--listen-addr", action="append", default=[], help="a multiaddr ending in /p2p/<peer id> (repeat)"
    )
    register.add_argument(
        "--stake", type=_stake_amount, help="stake to register with (on chain, as the governor)"
    )
    status = actions.add_parser("status", help="the operator on chain, at the gateway and its node's health")
    stake = actions.add_parser("stake", help="change the operator's stake (the governor's: updateStake)")
    change = stake.add_mutually_exclusive_group(required=True)
    change.add_argument("--add", type=_stake_amount, metavar="AMOUNT", help="add this (wei, or '500eth')")
    change.add_argument("--set", type=_stake_amount, metavar="AMOUNT", help="set the stake to this")
    deactivate = actions.add_parser("deactivate", help="leave the operator set (final)")
    deactivate.add_argument("--yes", action="store_true", help="confirm: an id is never reused")
    admit = actions.add_parser("admit", help="the admin's: register an operator's form on chain, approve it")
    admit.add_argument("address", type=_address, help="the operator whose form to admit")
    admit.add_argument("--stake", type=_stake_amount, required=True, help="its stake (wei, or '1000eth')")
    admit.add_argument("--note", default="", help="a note on the form, for the record")
    for action in (status, stake, deactivate):
        action.add_argument("--operator", type=_address, help="whose (default: the keys' operator)")
    for action in (register, stake, deactivate, admit):
        add_governor_options(action)
    for action in (status, admit):
        add_admin_options(action)
    for action in (register, status, stake, deactivate, admit):
        add_source_options(action)


def run_operator(args: argparse.Namespace) -> int:
    """Run the `operator` action in `args` and print what it did; the exit code (a problem is
    one line on stderr and 1)."""
    action = _ACTIONS[args.operator_command]
    try:
        sources = resolve_sources(args)
        report = trio.run(action, args, sources)
    except KeyboardInterrupt:
        return 130
    except BaseException as error:
        problem = _problem(error)
        if problem is None:
            raise
        print(f"triggerx-node: error: operator {args.operator_command}: {problem}", file=sys.stderr)
        return 1
    print(report.render(args.json))
    return 0


async def _register(args: argparse.Namespace, sources: Sources) -> Report:
    keys = sources.key_files()
    if sources.gateway is None and sources.rpc_url is None:
        raise CommandError("nowhere to register: give --gateway URL and/or --rpc-url (or --config, --devnet)")
    account, secret, peer = keys.account(), keys.bls_secret(), keys.peer_id()
    public_key = "0x" + choose_backend().secret_to_public(secret).hex()
    report = Report()
    identity = _Identity(address=account.address, bls_public_key=public_key, peer_id=peer.to_base58())
    report.add("operator", f"{account.address}, BLS key {public_key}, peer {identity.peer_id}", identity)
    if sources.gateway is not None:
        from node.commands.operator_gateway import Gateway, submit_form  # gateway's modules: on use

        proof = prove_possession(secret)
        async with Gateway(sources.gateway_url()) as gateway:
            form = await submit_form(
                gateway, sources.genesis, account, public_key, proof, identity.peer_id, args
            )
        report.add("form", f"{form.status} at {gateway.url} (the gateway's admin decides)", form)
    if sources.rpc_url is None:
        return report
    async with open_registry(sources) as registry:
        record = await chain_record(registry, account.address)
        if record.active:
            line = f"already registered: operator id {record.operator_id}, stake {tokens(int(record.stake))}"
            report.add("chain", line, ChainAction(sent=False, operator_id=record.operator_id, reason=line))
            return report
        signer = governor_account(args) or account
        if signer.address != record.governor:
            reason = (
                f"registerOperator is the governor's ({record.governor}); the network's admin admits forms"
            )
            report.add("chain", f"not sent: {reason}", ChainAction(sent=False, reason=reason))
            return report
        if args.stake is None:
            raise CommandError("--stake: needed to register on chain")
        key, proof = registration_proof(choose_backend(), secret)
        call = (account.address, key, proof, peer.to_bytes(), args.stake)
        report.add("chain", *await register_on_chain(registry, signer, call))
    return report


async def _admit(args: argparse.Namespace, sources: Sources) -> Report:
    from node.commands.operator_gateway import Gateway, keeper_form

    token, governor = admin_token(args), governor_account(args)
    if token is None or governor is None:
        raise CommandError("needs the gateway admin's credential (--admin-token-file or --admin-token-env) "
                            "and the governor's key (--governor-key-file or --governor-key-env)")  # fmt: skip
    report = Report()
    async with Gateway(sources.gateway_url(), token) as gateway:
        form = await keeper_form(gateway, args.address)
        if form is None:
            raise CommandError(f"no form of {args.address} at {gateway.url}")
        if form.status == "rejected":
            raise CommandError(f"{args.address}'s form was rejected ({form.note or 'no note'})")
        async with open_registry(sources) as registry:
            record = await chain_record(registry, form.operator)
            if record.active:
                sent = ChainAction(sent=False, operator_id=record.operator_id, reason="already registered")
                report.add("chain", f"already registered: operator id {record.operator_id}", sent)
            else:
                fields = (form.registry_public_key, form.registry_proof, form.peer_id_bytes)
                call = (form.operator, *(bytes.fromhex(value[2:]) for value in fields), args.stake)
                line, sent = await register_on_chain(registry, governor, call)
                report.add("chain", line, sent)
        if form.status != "approved":
            note = args.note or f"registered on chain as operator id {sent.operator_id}"
            form = await gateway.decide(form.operator, "approved", note)
        report.add("form", f"{form.status} ({form.note})", form)
    return report


async def _status(args: argparse.Namespace, sources: Sources) -> Report:
    from node.commands.operator_gateway import Gateway, keeper_form

    address = args.operator or _keys_address(sources)
    keys = None if args.operator is not None else sources.keys
    local_key = read_bls_public_key(keys.bls) if keys is not None and keys.bls is not None else None
    if sources.rpc_url is None and sources.gateway is None and sources.metrics_url is None:
        raise CommandError(
            "nothing to ask: give --rpc-url, --gateway or --metrics-url (or --config, --devnet)"
        )
    report = Report()
    report.add("operator", address, _Identity(address=address, bls_public_key=local_key))
    if sources.rpc_url is not None:
        async with open_registry(sources) as registry:
            record = await chain_record(registry, address)
        report.add("chain", _record_line(record, local_key), record)
    if sources.gateway is not None:
        async with Gateway(sources.gateway_url(), admin_token(args)) as gateway:
            if gateway.token is not None:
                form = await keeper_form(gateway, address)
                line = "none at the gateway" if form is None else f"{form.status} {form.note}".strip()
                report.add("form", line, form)
            keeper = await gateway.keeper(address)
        line = "not heard from since the gateway started" if keeper is None else (
            f"{'online' if keeper.online else 'offline'}, uptime {keeper.uptime:.0%}, "
            f"{keeper.tasks_executed} tasks executed, {keeper.tasks_attested} attested"
        )  # fmt: skip
        report.add("keeper", line, keeper)
    if sources.metrics_url is not None:
        health = await _health(sources.metrics_url)
        counts = f"{health.tasks_executed} tasks executed, {health.attestations} attestations"
        report.add(
            "health", f"up ({counts})" if health.up else f"down at {health.url}: {health.error}", health
        )
    return report


async def _stake(args: argparse.Namespace, sources: Sources) -> Report:
    address = args.operator or _keys_address(sources)
    report = Report()
    async with open_registry(sources) as registry:
        record = await chain_record(registry, address)
        if not record.active or record.operator_id is None:
            raise CommandError(f"{address} is not an active operator")
        stake = args.set if args.set is not None else int(record.stake) + args.add
        if stake > MAX_STAKE:
            raise CommandError(f"a stake of {stake} does not fit the registry's uint96")
        why = (
            "updateStake is the governor's (the registry's stake is a weight governance sets, not a deposit)"
        )
        signer = _signer(args, sources, {record.governor}, why)
        receipt = await send(registry, signer, "updateStake", record.operator_id, stake)
        sent = ChainAction(sent=True, tx_hash=receipt.tx_hash, operator_id=record.operator_id)
        change = f"{tokens(int(record.stake))} -> {tokens(stake)}"
        report.add("chain", f"operator id {record.operator_id}: stake {change} (tx {receipt.tx_hash})", sent)
    return report


async def _deactivate(args: argparse.Namespace, sources: Sources) -> Report:
    address = args.operator or _keys_address(sources)
    if not args.yes:
        raise CommandError(
            f"deactivating {address} is final (its id and BLS key are never reused): pass --yes"
        )
    report = Report()
    async with open_registry(sources) as registry:
        record = await chain_record(registry, address)
        if not record.active or record.operator_id is None:
            raise CommandError(f"{address} is not an active operator")
        why = "deactivate is the operator's or the governor's"
        signer = _signer(args, sources, {address, record.governor}, why)
        receipt = await send(registry, signer, "deactivate", record.operator_id)
        sent = ChainAction(sent=True, tx_hash=receipt.tx_hash, operator_id=record.operator_id)
        report.add("chain", f"operator id {record.operator_id} deactivated (tx {receipt.tx_hash})", sent)
    return report


_ACTIONS: dict[str, Callable[[argparse.Namespace, Sources], Awaitable[Report]]] = {
    "register": _register,
    "status": _status,
    "stake": _stake,
    "deactivate": _deactivate,
    "admit": _admit,
}


def _signer(args: argparse.Namespace, sources: Sources, allowed: set[str], why: str) -> LocalAccount:
    """The governor's account if given, else the operator's, once it is one of `allowed`
    (checked before the operator keystore is decrypted)."""
    governor = governor_account(args)
    address = governor.address if governor is not None else _keys_address(sources)
    if address not in allowed:
        raise CommandError(f"{why}; {address} is neither (give --governor-key-file to act as the governor)")
    return governor or sources.key_files().account()


async def _health(url: str) -> NodeHealth:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(url)
        answer.raise_for_status()
        families = {family.name: family for family in text_string_to_metric_families(answer.text)}
    except (httpx.HTTPError, ValueError) as error:
        return NodeHealth(url=url, up=False, error=str(error) or type(error).__name__)

    def total(name: str) -> int:
        family = families.get(name)
        return 0 if family is None else int(sum(sample.value for sample in family.samples))

    return NodeHealth(
        url=url,
        up=True,
        tasks_executed=total("triggerx_keeper_tasks_executed"),
        attestations=total("triggerx_keeper_attestations"),
    )


class _Identity(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    address: str
    bls_public_key: str | None = None
    peer_id: str | None = None


def _keys_address(sources: Sources) -> str:
    """The operator account of the key files, read without the password when the keystore
    records it."""
    keys = sources.key_files()
    address = read_operator_address(keys.operator)
    return address if address is not None else keys.account().address


def _record_line(record: ChainRecord, local_key: str | None) -> str:
    if not record.registered:
        return "not registered"
    state = "active" if record.active else "deactivated"
    key = record.bls_public_key or ""
    if local_key is not None:
        key += " (the keys' own)" if key == local_key else " (NOT the keys' BLS key)"
    stake = tokens(int(record.stake))
    return f"operator id {record.operator_id}, {state}, stake {stake}, BLS key {key}, peer {record.peer_id}"


def _stake_amount(text: str) -> int:
    value = amount(text)
    if value > MAX_STAKE:
        raise argparse.ArgumentTypeError(f"{text!r}: more than the registry's uint96 holds")
    return value


def _address(text: str) -> str:
    if not is_address(text):
        raise argparse.ArgumentTypeError(f"not an Ethereum address: {text!r}")
    return to_checksum_address(text)


_USER_ERRORS = (CommandError, ConfigError, GenesisError, KeyFileError, ChainError)


def _problem(error: BaseException) -> str | None:
    """The one line telling the user what went wrong, or None for an error that is a bug."""
    if isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        return _problem(error.exceptions[0])
    if isinstance(error, ChainError) and not isinstance(error, RevertError):
        return f"chain: {error}"
    return str(error) if isinstance(error, _USER_ERRORS) else None
