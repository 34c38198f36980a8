"""The OperatorRegistry as `triggerx-node operator` uses it: where an account stands, and the
governance and operator transactions, a revert told as one line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from node.bls import public_key_from_eip2537
from node.chain import (
    Contract,
    Receipt,
    RevertError,
    RpcClient,
    TransactionSender,
    load_artifact,
    revert_decoder,
)
from node.commands import CommandError
from node.commands.operator_sources import Sources
from node.mesh import peer_id_text


class ChainRecord(msgspec.Struct, rename="camel", kw_only=True):
    """An account's place in the OperatorRegistry (its latest operator id, if it has had one);
    the stake in wei as a decimal string, as the gateway's amounts (JSON numbers lose digits)."""

    registered: bool
    operator_id: int | None = None
    active: bool = False
    stake: str = "0"
    bls_public_key: str | None = None
    peer_id: str | None = None
    governor: str


class ChainAction(msgspec.Struct, rename="camel", kw_only=True):
    """A registry transaction sent (or why none was)."""

    sent: bool
    tx_hash: str | None = None
    operator_id: int | None = None
    reason: str = ""


@asynccontextmanager
async def open_registry(sources: Sources) -> AsyncIterator[Contract]:
    """The OperatorRegistry, once it is checked to be a contract on the chain."""
    if sources.rpc_url is None:
        raise CommandError("no chain: give --rpc-url URL (or TRIGGERX_CHAIN_RPC_URL, --config, --devnet)")
    if sources.registry is None:
        raise CommandError("no registry: give --registry ADDRESS (or --genesis, --config, --devnet)")
    async with RpcClient(sources.rpc_url, retries=1, revert_decoder=revert_decoder()) as rpc:
        if int((await rpc.call("eth_getCode", sources.registry, "latest"))[2:] or "0", 16) == 0:
            raise CommandError(f"no contract at {sources.registry} on {sources.rpc_url}")
        yield Contract(rpc, load_artifact("OperatorRegistry"), sources.registry)


async def chain_record(registry: Contract, address: str) -> ChainRecord:
    """Where `address` stands in `registry`: its active id, or else its latest inactive one."""
    governor = to_checksum_address(await registry.call("governor"))
    found, operator_id = await registry.call("activeIdOf", address)
    if not found:
        count = await registry.call("operatorCount")
        replies = await registry.rpc.batch([registry.call_request("getOperator", i) for i in range(count)])
        accounts = [to_checksum_address(registry.decode_result("getOperator", r)["account"]) for r in replies]
        operator_id = max((i for i, account in enumerate(accounts) if account == address), default=None)
        if operator_id is None:
            return ChainRecord(registered=False, governor=governor)
    operator = await registry.call("getOperator", operator_id)
    public_key, _ = await registry.call("keyAndStake", operator_id)
    return ChainRecord(
        registered=True,
        operator_id=operator_id,
        active=operator["active"],
        stake=str(operator["stake"]),
        bls_public_key="0x" + public_key_from_eip2537(public_key).hex(),
        peer_id=peer_id_text(operator["peerId"]),
        governor=governor,
    )


async def register_on_chain(
    registry: Contract, governor: LocalAccount, call: tuple[object, ...]
) -> tuple[str, ChainAction]:
    """Send registerOperator(*call) as `governor`; the line and record of what was done."""
    receipt = await send(registry, governor, "registerOperator", *call)
    [event] = registry.events(receipt, "OperatorRegistered")
    sent = ChainAction(sent=True, tx_hash=receipt.tx_hash, operator_id=event.args["id"])
    stake = tokens(call[-1])  # type: ignore[arg-type]
    return f"registered as operator id {sent.operator_id}, stake {stake} (tx {receipt.tx_hash})", sent


async def send(registry: Contract, signer: LocalAccount, function: str, *call: object) -> Receipt:
    """Send `function(*call)` to `registry` from `signer`; its receipt, or CommandError on a revert."""
    chain_id = int(await registry.rpc.call("eth_chainId"), 16)
    try:
        return await registry.transact(TransactionSender(registry.rpc, signer, chain_id), function, *call)
    except RevertError as error:
        raise CommandError(f"{function} reverted: {error.reason}") from None


def tokens(wei: int) -> str:
    """`wei` as the registry's stake is told: whole units of 10**18 as `<n>eth`, else wei."""
    return f"{wei // 10**18}eth" if wei % 10**18 == 0 else f"{wei} wei"
